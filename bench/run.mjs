#!/usr/bin/env node
/**
 * `npm run bench`: br GET requests for a tiny (41 B), a mid (sqlite3.wasm, ~850 KB) and a big
 * (ffmpeg-core.wasm, ~32 MB) real wasm module against three servers, each a separate process pinned
 * to CPU 0 while the load generator (wrk, else autocannon) is pinned to CPU 1:
 *
 *   ceiling     bare Fastify route sending pre-read buffers with precomputed headers
 *   wasm-serve  the plugin from dist/ (`npm run build` first)
 *   static      @fastify/static with preCompressed: true (the baseline)
 *
 * Every server is checked first (200, the expected Content-Encoding, Content-Length and bytes);
 * a server that fails the check is not measured and the run exits 1. Results: markdown table on
 * stdout and in bench/results/latest.md.
 *
 * Options: --duration S (10) --warmup S (2) --rounds N (1, median of N) --only tiny,mid,big
 *          --servers ceiling,wasm-serve,static --memory (RSS of wasm-serve over a root larger
 *          than a 64MB memoryBudget, see bench/memory.mjs)
 */
import { existsSync } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { cpus, loadavg } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { ensureFixtures, FIXTURE_DIR } from './fixtures.mjs'
import { loadTool, runLoad } from './load.mjs'
import { machineBusySeconds, startServer, verify } from './harness.mjs'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')

const FILES = [
  { key: 'tiny', name: 'tiny.wasm', connections: 50 },
  { key: 'mid', name: 'sqlite3.wasm', connections: 20 },
  { key: 'big', name: 'ffmpeg-core.wasm', connections: 4 },
]
const SERVERS = ['ceiling', 'wasm-serve', 'static']
/** The throughput target (docs/benchmarks.md): share of the ceiling's req/s wasm-serve must reach. */
const TARGET = { tiny: 0.8, mid: 0.85, big: 0.85 }

const { values: opts } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '1' },
    only: { type: 'string', default: FILES.map(f => f.key).join(',') },
    'no-on-the-fly': { type: 'boolean', default: false },
    servers: { type: 'string', default: SERVERS.join(',') },
    memory: { type: 'boolean', default: false },
  },
})

const fmt = (n, digits = 0) => n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

/** The representation a br request must get: the .br sibling if the fixture has one, else identity. */
function expectation (manifest, name) {
  const byName = new Map(manifest.files.map(f => [f.name, f]))
  const br = byName.get(`${name}.br`)
  const file = br ?? byName.get(name)
  if (!file) throw new Error(`fixture ${name} missing from manifest.json`)
  return { encoding: br ? 'br' : undefined, size: file.size, sha256: file.sha256 }
}

/** Start one server, check it, warm it up, measure it, stop it. */
async function measureCell (file, kind, expected) {
  const server = await startServer(kind, FIXTURE_DIR)
  if (server.notBuilt) return { kind, note: 'not built (run `npm run build`)' }
  try {
    const url = `http://127.0.0.1:${server.port}/${file.name}`
    await verify(url, expected)
    const load = { url, connections: file.connections, headers: { 'accept-encoding': 'br' } }
    await runLoad({ ...load, seconds: Number(opts.warmup) })
    const runs = []
    for (let i = 0; i < Number(opts.rounds); i++) {
      const [cpu0, busy0] = [server.cpuSeconds(), machineBusySeconds()]
      const r = await runLoad({ ...load, seconds: Number(opts.duration) })
      const cpu = server.cpuSeconds() - cpu0
      r.cpu = cpu / r.seconds
      r.others = (machineBusySeconds() - busy0 - cpu - r.cpuSeconds) / r.seconds
      if (r.errors > 0) throw new Error(`${r.errors} failed or non-2xx responses under load`)
      if (r.bytes / r.requests < expected.size) throw new Error(`only ${fmt(r.bytes / r.requests)} B per response under load`)
      runs.push(r)
    }
    const r = runs.find(x => x.rps === median(runs.map(y => y.rps)))
    return { kind, rps: r.rps, mbps: r.bytes / r.seconds / 1e6, cpu: r.cpu, others: r.others, rssKiB: server.peakRssKiB() }
  } catch (err) {
    console.error(`\n*** ${kind} on ${file.name}: ${err.message}\n`)
    return { kind, note: `FAILED: ${err.message}`, failed: true }
  } finally {
    await server.stop()
  }
}

function table (rows) {
  const out = [
    '| file | server | req/s | MB/s | vs ceiling | server CPU | others\' CPU | peak RSS |',
    '|---|---|--:|--:|--:|--:|--:|--:|',
  ]
  for (const row of rows) {
    const label = `${row.file.key} (${row.file.name}, ${fmt(row.expected.size)} B${row.expected.encoding ? ' br' : ' identity'})`
    if (row.note) {
      out.push(`| ${label} | ${row.kind} | ${row.kind}: ${row.note} | | | | | |`)
      continue
    }
    const ceiling = rows.find(r => r.file === row.file && r.kind === 'ceiling' && r.rps)
    let ratio = ceiling ? `${fmt(100 * row.rps / ceiling.rps)} %` : ''
    if (ceiling && row.kind === 'wasm-serve') ratio += row.rps / ceiling.rps >= TARGET[row.file.key] ? ' ✓' : ` ✗ (target ${TARGET[row.file.key] * 100} %)`
    out.push(`| ${label} | ${row.kind} | ${fmt(row.rps)} | ${fmt(row.mbps, 1)} | ${ratio} | ${fmt(100 * row.cpu)} % | ${Number.isNaN(row.others) ? '?' : `${fmt(100 * Math.max(0, row.others))} %`} | ${fmt(row.rssKiB / 1024)} MB |`)
  }
  return out.join('\n')
}

function conditions (started, load0) {
  const cpu = cpus()
  return [
    `Machine: ${cpu.length} × ${cpu[0]?.model.trim()}, Node ${process.versions.node}, ${loadTool()}.`,
    'Servers pinned to CPU 0 (taskset -c 0), load generator to CPU 1; 127.0.0.1; `Accept-Encoding: br`;',
    `${opts.warmup} s warm-up then ${opts.duration} s${Number(opts.rounds) > 1 ? ` × ${opts.rounds} (median)` : ''} per cell;`,
    `connections: ${FILES.map(f => `${f.key} ${f.connections}`).join(', ')}. MB/s = 10⁶ bytes/s on the wire (headers + body).`,
    'server CPU = the server\'s user+sys time / wall time (100 % = its core saturated); others\' CPU = what',
    'everything else (other processes, kernel) used of the 2 cores meanwhile: above a few % the numbers are noisy.',
    `Load average before/after: ${load0.map(n => n.toFixed(2)).join(' ')} / ${loadavg().map(n => n.toFixed(2)).join(' ')}.`,
    `Run ${started.toISOString()}, command: \`node bench/run.mjs${process.argv.slice(2).map(a => ` ${a}`).join('')}\`.`,
  ].join('\n')
}

async function main () {
  await ensureFixtures()
  if (opts.memory) {
    const { runMemory } = await import('./memory.mjs')
    process.exitCode = await runMemory()
    return
  }
  const started = new Date()
  const load0 = loadavg()
  const manifest = JSON.parse(await readFile(join(FIXTURE_DIR, 'manifest.json'), 'utf8'))
  if (!existsSync(join(ROOT, 'dist', 'plugin.js'))) console.error('wasm-serve: not built (dist/plugin.js missing; `npm run build`)')
  const files = FILES.filter(f => opts.only.split(',').includes(f.key))
  const kinds = SERVERS.filter(k => opts.servers.split(',').includes(k))
  const rows = []
  for (const file of files) {
    const expected = expectation(manifest, file.name)
    for (const kind of kinds) {
      process.stderr.write(`bench: ${file.key} / ${kind} … `)
      const row = { file, expected, ...await measureCell(file, kind, expected) }
      process.stderr.write(row.note ? `${row.note}\n` : `${fmt(row.rps)} req/s\n`)
      rows.push(row)
    }
  }
  const busiest = Math.max(0, ...rows.map(r => r.others).filter(Number.isFinite))
  const warning = busiest > 0.2 ? `\n\n**Not reliable:** other work used up to ${fmt(100 * busiest)} % CPU during a cell; rerun on an idle machine.` : ''
  const report = `${table(rows)}${warning}\n\n${conditions(started, load0)}\n`
  console.log(`\n${report}`)
  await mkdir(join(ROOT, 'bench', 'results'), { recursive: true })
  await writeFile(join(ROOT, 'bench', 'results', 'latest.md'), `# wasm-serve benchmark\n\n${report}`)
  if (rows.some(r => r.failed)) process.exitCode = 1
}

main().catch((err) => {
  console.error(`bench: ${err.stack ?? err}`)
  process.exitCode = 1
})
