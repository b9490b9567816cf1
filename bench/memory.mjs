/**
 * `node bench/run.mjs --memory`: does wasm-serve's RSS stay within memoryBudget + ~100 MB while
 * serving a root larger than the budget (the goal in docs/memory.md)? The real CLI is measured, as `npm start`
 * and the Docker image run it and as `npx wasm-serve` does; @fastify/static (streams everything,
 * holds nothing, no logger) is measured next to it for reference.
 *
 * The root (in the OS temp dir, built once and reused) holds ~215 MB of distinct modules: 4 copies
 * of ffmpeg-core.wasm and 100 of sqlite3.wasm, each with its own custom section appended so no two
 * files share bytes or a content hash (a server may not dedupe its way under the budget). Requests
 * go round-robin over every file with `Accept-Encoding: identity`, so no server compresses anything.
 */
import { createHash } from 'node:crypto'
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FIXTURE_DIR } from './fixtures.mjs'
import { startServer, verify } from './harness.mjs'
import { runLoad } from './load.mjs'

/** How `npm start` and the Docker image run node (package.json, Dockerfile). */
const SHIPPED_FLAGS = ['--max-semi-space-size=1']
const BUDGET_MB = 64
const ALLOWANCE_MB = 100
const MEMORY_ROOT = join(tmpdir(), 'wasm-serve-bench-memory')
const COPIES = [{ from: 'ffmpeg-core.wasm', count: 4 }, { from: 'sqlite3.wasm', count: 100 }]

/** A wasm custom section (id 0) named "bench" carrying `payload`; appending one keeps a module valid. */
function customSection (payload) {
  const name = Buffer.from('bench')
  const body = Buffer.concat([Buffer.from([name.length]), name, Buffer.from(payload)])
  const size = []
  for (let n = body.length; ; n >>>= 7) {
    size.push((n & 0x7f) | (n > 0x7f ? 0x80 : 0))
    if (n <= 0x7f) break
  }
  return Buffer.concat([Buffer.from([0, ...size]), body])
}

/** Build (or reuse) the root; returns [{ path, size, sha256 }]. */
async function buildRoot () {
  await mkdir(MEMORY_ROOT, { recursive: true })
  const files = []
  for (const { from, count } of COPIES) {
    const original = await readFile(join(FIXTURE_DIR, from))
    for (let i = 0; i < count; i++) {
      const name = from.replace('.wasm', `-${String(i).padStart(3, '0')}.wasm`)
      const bytes = Buffer.concat([original, customSection(`copy ${i} of ${from}`)])
      const path = join(MEMORY_ROOT, name)
      if ((await stat(path).catch(() => null))?.size !== bytes.length) {
        await writeFile(`${path}.tmp`, bytes)
        await rename(`${path}.tmp`, path)
      }
      files.push({ path: `/${name}`, size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') })
    }
  }
  return files
}

/** One row: `how` names the way the server was started, `options` the config it got. */
async function measure ({ how, kind, options, start }, files) {
  const server = await startServer(kind, MEMORY_ROOT, options, start)
  if (server.notBuilt) return `| ${how} | not built (run \`npm run build\`) | | | | |`
  try {
    const startPeak = server.peakRssKiB() / 1024
    const base = `http://127.0.0.1:${server.port}`
    for (const f of files) await verify(base + f.path, { size: f.size, sha256: f.sha256 }, 'identity')
    const r = await runLoad({ url: base + files[0].path, paths: files.map(f => f.path), connections: 4, seconds: 10, headers: { 'accept-encoding': 'identity' } })
    if (r.errors > 0) throw new Error(`${r.errors} failed or non-2xx responses under load`)
    const [rss, peak] = [server.rssKiB() / 1024, server.peakRssKiB() / 1024]
    const verdict = kind === 'cli' ? (peak <= BUDGET_MB + ALLOWANCE_MB ? ' ✓' : ' ✗') : ''
    return `| ${how} | ${Math.round(r.rps)} | ${Math.round(r.bytes / r.seconds / 1e6)} | ${Math.round(startPeak)} MB | ${Math.round(rss)} MB | ${Math.round(peak)} MB${verdict} |`
  } finally {
    await server.stop()
  }
}

/** Returns the process exit code. */
export async function runMemory () {
  const files = await buildRoot()
  const total = files.reduce((n, f) => n + f.size, 0)
  const noFly = process.argv.includes('--no-on-the-fly')
  const cli = (nodeFlags) => ({
    cliArgs: ['--memory-budget', `${BUDGET_MB}MB`],
    nodeFlags,
    env: noFly ? { WASM_SERVE_COMPRESS: '{"onTheFly":false}' } : {},
  })
  const runs = [
    { how: `wasm-serve CLI as \`npm start\` and Docker run it (node ${SHIPPED_FLAGS.join(' ')})${noFly ? ', no on-the-fly' : ''}`, kind: 'cli', start: cli(SHIPPED_FLAGS) },
    { how: `wasm-serve CLI as \`npx wasm-serve\` runs it (V8 defaults)${noFly ? ', no on-the-fly' : ''}`, kind: 'cli', start: cli([]) },
    { how: '@fastify/static (preCompressed), for reference', kind: 'static' },
  ]
  const rows = []
  for (const run of runs) rows.push(await measure(run, files))
  console.log([
    `Root: ${files.length} distinct modules, ${Math.round(total / 1e6)} MB (${MEMORY_ROOT}); identity GETs round-robin`,
    `over all of them, 4 connections, 10 s; budget ${BUDGET_MB}MB; target: wasm-serve peak RSS ≤ ${BUDGET_MB} + ${ALLOWANCE_MB} MB. Node ${process.version}.`,
    '',
    '| server | req/s | MB/s | peak RSS after start-up | RSS at end | peak RSS |',
    '|---|--:|--:|--:|--:|--:|',
    ...rows,
  ].join('\n'))
  return rows[0].includes('✓') ? 0 : 1
}
