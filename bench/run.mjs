#!/usr/bin/env node
/**
 * `npm run bench`: every throughput figure the README gives, in one table, each as a ratio to a
 * ceiling or a peer measured in the same run. Absolute numbers on a shared 2-core machine move by
 * ±30 % between runs, so each ratio is the median of `--rounds` alternating runs: both servers are
 * up (pinned to CPU 0; the one not under load sits idle), and the order flips every round (A B, B A,
 * A B …), so drift in the machine's speed falls on both alike. The load generator runs on CPU 1:
 * wrk for HTTP/1.1 (autocannon when wrk is missing), h2load for HTTP/2.
 *
 * Comparisons (subject vs reference):
 *   cli          the CLI as shipped (`node dist/cli.js ROOT --quiet`) vs a bare node:http server
 *                answering from memory with the same headers as flat arrays (target ≥ 0.9);
 *   cli-policy   the same with --isolate --cors --preload (more headers per response) (≥ 0.9);
 *   plugin       the plugin in a Fastify app vs a Fastify route answering from memory with the
 *                same headers (≥ 0.85: an app's hooks still run for every request);
 *   nginx        the CLI vs nginx (one worker, brotli_static, gzip_static, sendfile);
 *   static       the CLI vs @fastify/static with preCompressed (the usual Fastify answer);
 *   h2           HTTP/2 over TLS (h2load): the CLI vs nginx's http2, same certificate;
 *   workers      the CLI with --workers 2 (CPUs 0–1) vs one process, and vs nginx with 2 workers,
 *                the load generator on CPU 2 (skipped, with the reason, on fewer than 3 CPUs);
 *   startup      cold start to the last file served over a root of 10,000 files / 160 MB (≤ 2 s),
 *                and 100,000 files / 100 MB (time and RSS stated): bench/startup.mjs.
 *
 * The ceilings send exactly what wasm-serve sent: bench/run.mjs captures the subject's response
 * (headers and bytes) for each workload first and gives it to the ceiling. Every server is checked
 * before it is measured (status, bytes); a failing one is not measured and the run exits 1.
 * Results: a markdown table on stdout and in bench/results/latest.md.
 *
 * Options: --duration S (5) --warmup S (2) --rounds N (3) --only cli,plugin,… --workloads tiny,html,…
 *          --memory (RSS of wasm-serve over a root larger than a 64MB memoryBudget, bench/memory.mjs)
 */
import { createHash } from 'node:crypto'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { cpus, loadavg, tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { Agent, request } from 'undici'
import { ensureFixtures, FIXTURE_DIR } from './fixtures.mjs'
import { loadTool, runH2load, runLoad } from './load.mjs'
import { machineBusySeconds, startServer, treeCpuSeconds } from './harness.mjs'
import { measureStartup } from './startup.mjs'
import { benchCertificate, noH2load, noNginx, startNginx } from './peers.mjs'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const BR = { 'accept-encoding': 'br' }

/** What is requested: one path, its request headers, and the connections (streams for HTTP/2) it is loaded with. */
const WORKLOADS = {
  tiny: { path: '/tiny.wasm', headers: BR, connections: 50, label: 'tiny.wasm, 41 B (identity: too small to encode)' },
  mid: { path: '/sqlite3.wasm', headers: BR, connections: 20, label: 'sqlite3.wasm, 339,551 B br' },
  big: { path: '/ffmpeg-core.wasm', headers: BR, connections: 4, label: 'ffmpeg-core.wasm, 8,367,469 B br' },
  html: { path: '/index.html', headers: {}, connections: 50, label: 'index.html, 1,613 B, no Accept-Encoding' },
}

const CLI = { kind: 'cli', label: 'CLI' }
const TWO_WORKERS = { kind: 'cli', label: 'CLI --workers 2', cliArgs: ['--workers', '2'], cpus: '0,1' }
const COMPARISONS = [
  { key: 'cli', subject: CLI, reference: { kind: 'raw', label: 'node:http', capture: true }, workloads: ['tiny', 'mid', 'big', 'html'], target: 0.9 },
  { key: 'cli-policy', subject: { kind: 'cli', label: 'CLI --isolate --cors --preload', cliArgs: ['--isolate', '--cors', '--preload', '/sqlite3.wasm'] }, reference: { kind: 'raw', label: 'node:http, same headers', capture: true }, workloads: ['tiny', 'html'], target: 0.9 },
  { key: 'plugin', subject: { kind: 'wasm-serve', label: 'plugin' }, reference: { kind: 'ceiling', label: 'Fastify route', capture: true }, workloads: ['tiny', 'mid', 'big'], target: 0.85 },
  { key: 'nginx', subject: CLI, reference: { kind: 'nginx', label: 'nginx, 1 worker' }, workloads: ['tiny', 'mid', 'big', 'html'] },
  { key: 'static', subject: CLI, reference: { kind: 'static', label: '@fastify/static' }, workloads: ['tiny', 'mid', 'big'] },
  { key: 'h2', protocol: 'h2', subject: { kind: 'cli', label: 'CLI, HTTP/2', tls: true }, reference: { kind: 'nginx', label: 'nginx http2, 1 worker', tls: true }, workloads: ['tiny', 'mid'] },
  // Two workers on CPUs 0 and 1, the load generator on CPU 2: a machine of three cores or more.
  { key: 'workers', subject: TWO_WORKERS, reference: { kind: 'cli', label: 'CLI, one process' }, workloads: ['tiny', 'mid', 'html'], loadCpu: '2' },
  { key: 'workers-nginx', subject: TWO_WORKERS, reference: { kind: 'nginx', label: 'nginx, 2 workers', workers: 2, cpus: '0,1' }, workloads: ['tiny', 'mid', 'big', 'html'], loadCpu: '2' },
]

/** Start-up over generated roots (bench/startup.mjs): spawn to the last file served, with a target for the 10,000-file root. */
const STARTUP = [
  { key: 'startup', files: 10_000, totalBytes: 160e6, targetS: 2 },
  { key: 'startup-100k', files: 100_000, totalBytes: 100e6 },
]

const { values: opts } = parseArgs({
  options: {
    duration: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '3' },
    only: { type: 'string', default: [...COMPARISONS, ...STARTUP].map(c => c.key).join(',') },
    workloads: { type: 'string', default: Object.keys(WORKLOADS).join(',') },
    memory: { type: 'boolean', default: false },
  },
})

const fmt = (n, digits = 0) => n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const pct = (x) => `${fmt(100 * x)} %`
const insecure = new Agent({ connect: { rejectUnauthorized: false }, allowH2: false })

/** Headers a ceiling must not copy: per response, or per connection. */
const NOT_COPIED = new Set(['date', 'connection', 'keep-alive', 'transfer-encoding'])

/** GET one workload from a running server: status, headers, body. */
async function fetchOnce (base, workload) {
  const res = await request(base + workload.path, { headers: workload.headers, dispatcher: insecure })
  const body = Buffer.from(await res.body.arrayBuffer())
  return { status: res.statusCode, headers: res.headers, body }
}

const sha = (buf) => createHash('sha256').update(buf).digest('hex')

/** The fixture bytes a response must carry: the sibling it names by its Content-Encoding, else the file. */
function expectedBytes (manifest, workload, encoding) {
  const name = workload.path.slice(1) + ({ br: '.br', gzip: '.gz', zstd: '.zst' }[encoding] ?? '')
  const file = manifest.files.find(f => f.name === name)
  if (!file) throw new Error(`${name} is not a fixture (manifest.json)`)
  return file
}

/** Throws unless the server answers the workload with 200 and the fixture's exact bytes. */
async function check (base, workload, manifest) {
  const got = await fetchOnce(base, workload)
  const file = expectedBytes(manifest, workload, got.headers['content-encoding'])
  if (got.status !== 200) throw new Error(`${workload.path}: status ${got.status}`)
  if (got.body.length !== file.size || sha(got.body) !== file.sha256) throw new Error(`${workload.path}: ${got.body.length} B that are not ${file.name} (${file.size} B)`)
  return { ...got, size: file.size }
}

/** Starts one side of a comparison on CPU 0; `routes` are the captured answers a ceiling sends. */
async function start (side, routes) {
  if (side.kind === 'nginx') {
    const nginx = await startNginx(FIXTURE_DIR, { workers: side.workers, cpus: side.cpus })
    return { base: side.tls ? `https://127.0.0.1:${nginx.tlsPort}` : `http://127.0.0.1:${nginx.port}`, pid: nginx.pid, stop: nginx.stop }
  }
  const tls = side.tls ? benchCertificate() : undefined
  const cliArgs = [...(side.cliArgs ?? []), ...(tls ? ['--tls-cert', tls.cert, '--tls-key', tls.key] : [])]
  const server = await startServer(side.kind, FIXTURE_DIR, routes ? { routes } : undefined, { cliArgs, cpus: side.cpus })
  if (server.notBuilt) throw new Error('not built (run `npm run build`)')
  return { base: `${tls ? 'https' : 'http'}://127.0.0.1:${server.port}`, pid: server.pid, stop: server.stop }
}

/** The subject's answer to each workload, written where a ceiling reads it: { path: { body, headers } }. */
async function capture (base, workloads, manifest, dir) {
  const routes = {}
  for (const key of workloads) {
    const got = await check(base, WORKLOADS[key], manifest)
    const body = join(dir, `${key}.body`)
    writeFileSync(body, got.body)
    routes[WORKLOADS[key].path] = { body, headers: Object.entries(got.headers).filter(([name]) => !NOT_COPIED.has(name)).flatMap(([name, value]) => [name, String(value)]) }
  }
  return routes
}

/**
 * One measurement: `seconds` of load on one server, after checking nothing failed. Returns its rps
 * and `others`: the CPU (in cores) that neither server nor the load generator used meanwhile, i.e.
 * other work on the machine (the load generator counted as a whole core when it does not say).
 */
async function measure (comparison, server, workload, seconds, size, servers) {
  const url = server.base + workload.path
  const cpu = comparison.loadCpu ?? '1'
  const [busy0, own0, t0] = [machineBusySeconds(), servers.reduce((sum, s) => sum + treeCpuSeconds(s.pid), 0), performance.now()]
  const r = comparison.protocol === 'h2'
    ? await runH2load({ url, connections: 4, streams: Math.max(1, Math.round(workload.connections / 4)), seconds, warmup: 0, headers: workload.headers, cpu })
    : await runLoad({ url, connections: workload.connections, seconds, headers: workload.headers, cpu })
  const wall = (performance.now() - t0) / 1000
  const own = servers.reduce((sum, s) => sum + treeCpuSeconds(s.pid), 0) - own0
  const others = (machineBusySeconds() - busy0 - own - (Number.isFinite(r.cpuSeconds) ? r.cpuSeconds : wall)) / wall
  if (r.errors > 0) throw new Error(`${r.errors} failed or non-2xx responses under load`)
  if (comparison.protocol !== 'h2' && r.bytes / r.requests < size) throw new Error(`only ${fmt(r.bytes / r.requests)} B per response under load`)
  return { rps: r.rps, others }
}

/** One comparison on one workload: both servers up, warmed, then alternating rounds. */
async function compareOn (comparison, key, manifest, scratch) {
  const workload = WORKLOADS[key]
  const subject = await start(comparison.subject)
  let reference
  try {
    const routes = comparison.reference.capture ? await capture(subject.base, [key], manifest, scratch) : undefined
    reference = await start(comparison.reference, routes)
    const { size } = await check(subject.base, workload, manifest)
    await check(reference.base, workload, manifest)
    const sides = [subject, reference]
    for (const side of sides) await measure(comparison, side, workload, Number(opts.warmup), size, sides)
    const rounds = []
    let others = 0
    for (let i = 0; i < Number(opts.rounds); i++) {
      const order = i % 2 === 0 ? sides : [...sides].reverse()
      const rps = new Map()
      for (const side of order) {
        const m = await measure(comparison, side, workload, Number(opts.duration), size, sides)
        rps.set(side, m.rps)
        others = Math.max(others, m.others)
      }
      rounds.push({ subject: rps.get(subject), reference: rps.get(reference), ratio: rps.get(subject) / rps.get(reference) })
    }
    return { rounds, others }
  } finally {
    await reference?.stop()
    await subject.stop()
  }
}

function table (rows) {
  const out = [
    '| comparison | workload | subject req/s | reference req/s | ratio (median) | ratios per round | target |',
    '|---|---|--:|--:|--:|--:|:-:|',
  ]
  for (const row of rows) {
    const { comparison: c, workload } = row
    const name = `${c.subject.label} vs ${c.reference.label}`
    if (row.failed) {
      out.push(`| ${name} | ${workload.label} | FAILED: ${row.failed} | | | | |`)
      continue
    }
    const ratio = median(row.rounds.map(r => r.ratio))
    const target = c.target === undefined ? '' : ratio >= c.target ? `≥ ${pct(c.target)} ✓` : `≥ ${pct(c.target)} ✗`
    out.push(`| ${name} | ${workload.label} | ${fmt(median(row.rounds.map(r => r.subject)))} | ${fmt(median(row.rounds.map(r => r.reference)))} | **${pct(ratio)}** | ${row.rounds.map(r => pct(r.ratio)).join(', ')} | ${target} |`)
  }
  return out.join('\n')
}

function conditions (started, load0, busiest) {
  const cpu = cpus()
  return [
    `Machine: ${cpu.length} × ${cpu[0]?.model.trim()}, Node ${process.versions.node}, ${loadTool()}${noH2load() ? '' : ', h2load'}.`,
    'Servers pinned to CPU 0 (taskset -c 0), load generator to CPU 1; 127.0.0.1. The CLI runs as shipped',
    '(`node dist/cli.js fixtures --quiet`); the plugin and the Fastify route in a Fastify app without a logger.',
    `${opts.warmup} s warm-up per server, then ${opts.rounds} rounds of ${opts.duration} s per server, alternating which goes first;`,
    `the ratio is the median of the rounds' ratios. Connections: ${Object.entries(WORKLOADS).map(([k, w]) => `${k} ${w.connections}`).join(', ')}`,
    '(HTTP/2: 4 connections with a quarter as many streams each).',
    `Other work on the machine during a measurement: up to ${fmt(100 * busiest)} % of a core${busiest > 0.2 ? ' — **not reliable; rerun on an idle machine**' : ''}.`,
    'Start-up: a new CLI process per run over a generated root (bench/startup.mjs), not pinned; median of the runs.',
    `Load average before/after: ${load0.map(n => n.toFixed(2)).join(' ')} / ${loadavg().map(n => n.toFixed(2)).join(' ')}.`,
    `Run ${started.toISOString()}, command: \`node bench/run.mjs${process.argv.slice(2).map(a => ` ${a}`).join('')}\`.`,
  ].join('\n')
}

/** Why a comparison cannot run on this machine, or undefined. */
function unavailable (comparison) {
  if (comparison.loadCpu !== undefined && cpus().length <= Number(comparison.loadCpu)) return `needs ${Number(comparison.loadCpu) + 1} CPUs (the servers' and one for the load generator); this machine has ${cpus().length}`
  if (comparison.reference.kind === 'nginx') return noNginx() ?? (comparison.protocol === 'h2' ? noH2load() : undefined)
  return undefined
}

/** Start-up rows: medians of `rounds` cold starts. */
async function startupRows () {
  const rows = []
  for (const c of STARTUP.filter(c => opts.only.split(',').includes(c.key))) {
    process.stderr.write(`bench: start-up, ${fmt(c.files)} files … `)
    try {
      const r = await measureStartup({ files: c.files, totalBytes: c.totalBytes, runs: Number(opts.rounds) })
      rows.push({ ...c, ...r })
      process.stderr.write(`${r.all.map(x => `${fmt(x.served / 1000, 2)} s`).join(', ')}\n`)
    } catch (err) {
      rows.push({ ...c, failed: err.message })
      process.stderr.write(`FAILED: ${err.message}\n`)
    }
  }
  return rows
}

function startupTable (rows) {
  if (rows.length === 0) return ''
  const out = [
    '| start-up (CLI, cold) | serving line | last file served | runs | CPU user+sys | RSS after | target |',
    '|---|--:|--:|--:|--:|--:|:-:|',
  ]
  for (const r of rows) {
    const root = `${fmt(r.files)} files, ${fmt(r.totalBytes / 1e6)} MB`
    if (r.failed) { out.push(`| ${root} | FAILED: ${r.failed} | | | | | |`); continue }
    const target = r.targetS === undefined ? '' : r.servedS <= r.targetS ? `≤ ${r.targetS} s ✓` : `≤ ${r.targetS} s ✗`
    out.push(`| ${root} | ${fmt(r.listeningS, 2)} s | **${fmt(r.servedS, 2)} s** | ${r.all.map(x => fmt(x.served / 1000, 2)).join(', ')} s | ${fmt(r.cpuS, 2)} s | ${fmt(r.rssMB)} MB | ${target} |`)
  }
  return `\n\n${out.join('\n')}`
}

async function main () {
  await ensureFixtures()
  if (opts.memory) {
    const { runMemory } = await import('./memory.mjs')
    process.exitCode = await runMemory()
    return
  }
  if (!existsSync(join(ROOT, 'dist', 'cli.js'))) throw new Error('not built: dist/cli.js is missing (`npm run build`)')
  const started = new Date()
  const load0 = loadavg()
  const manifest = JSON.parse(await readFile(join(FIXTURE_DIR, 'manifest.json'), 'utf8'))
  const scratch = mkdtempSync(join(tmpdir(), 'wasm-serve-bench-'))
  process.once('exit', () => rmSync(scratch, { recursive: true, force: true }))
  const rows = []
  const skipped = []
  for (const comparison of COMPARISONS.filter(c => opts.only.split(',').includes(c.key))) {
    const why = unavailable(comparison)
    if (why) { skipped.push(`${comparison.key}: ${why}`); continue }
    for (const key of comparison.workloads.filter(k => opts.workloads.split(',').includes(k))) {
      process.stderr.write(`bench: ${comparison.subject.label} vs ${comparison.reference.label}, ${key} … `)
      try {
        const result = await compareOn(comparison, key, manifest, scratch)
        rows.push({ comparison, workload: WORKLOADS[key], ...result })
        process.stderr.write(`${result.rounds.map(r => pct(r.ratio)).join(', ')}\n`)
      } catch (err) {
        rows.push({ comparison, workload: WORKLOADS[key], failed: err.message })
        process.stderr.write(`FAILED: ${err.message}\n`)
      }
    }
  }
  const startup = await startupRows()
  const busiest = Math.max(0, ...rows.map(r => r.others).filter(Number.isFinite))
  const notes = skipped.length > 0 ? `\n\nNot measured here: ${skipped.join('; ')}.` : ''
  const report = `${table(rows)}${startupTable(startup)}${notes}\n\n${conditions(started, load0, busiest)}\n`
  console.log(`\n${report}`)
  await mkdir(join(ROOT, 'bench', 'results'), { recursive: true })
  await writeFile(join(ROOT, 'bench', 'results', 'latest.md'), `# wasm-serve benchmark\n\n${report}`)
  if (rows.some(r => r.failed) || startup.some(r => r.failed)) process.exitCode = 1
}

main().catch((err) => {
  console.error(`bench: ${err.stack ?? err}`)
  process.exitCode = 1
})
