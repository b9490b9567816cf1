#!/usr/bin/env node
/**
 * Browser benchmark (results in docs/benchmarks.md): time to a ready instance (compiled + instantiated) of the
 * ~32 MB ffmpeg-core.wasm in real headless Chromium over a throttled connection (Chrome DevTools
 * Protocol network emulation), served by the real CLI, comparing:
 *   stream-br    WebAssembly.instantiateStreaming(fetch(url)) on a br response
 *   stream-id    the same on an identity response (a copy of the module without siblings)
 *   buffer-br    (await fetch(url)).arrayBuffer() + WebAssembly.instantiate, br response
 *   loader-br    public/loader.js loadWasm() (streaming on the original response, progress on a clone)
 *
 * Every run is a fresh browser context (own renderer, own HTTP cache) with the cache disabled via
 * CDP and a unique query string, so every run downloads and compiles from scratch.
 *
 * Usage: node bench/browser.mjs [--runs 5] [--down 50] [--up 20] [--latency 20]
 *                               [--variants stream-br,stream-id,buffer-br,loader-br]
 * Writes the table to stdout and bench/results/browser.md.
 * Needs: dist/ (npm run build) and Chromium (CHROMIUM_PATH or /usr/bin/chromium); builds its
 * fixtures (bench/fixtures.mjs) first.
 */
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { chromium } from 'playwright-core'
import { request } from 'undici'
import { ensureFixtures, FIXTURE_DIR as FIXTURES } from './fixtures.mjs'
import { startCli, stubImports } from './harness.mjs'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const CLI = join(ROOT, 'dist/cli.js')
const MODULE = 'ffmpeg-core.wasm'
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const OUT = join(ROOT, 'bench/results/browser.md')

const VARIANTS = {
  'stream-br': { label: '(a) instantiateStreaming, br', path: `/${MODULE}`, encoding: 'br', how: 'stream' },
  'stream-id': { label: '(b) instantiateStreaming, identity', path: '/identity/' + MODULE, encoding: 'identity', how: 'stream' },
  'buffer-br': { label: '(c) arrayBuffer() + instantiate, br', path: `/${MODULE}`, encoding: 'br', how: 'buffer' },
  'loader-br': { label: '(d) loader.js loadWasm(), br', path: `/${MODULE}`, encoding: 'br', how: 'loader' },
}

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    down: { type: 'string', default: '50' }, // Mbit/s
    up: { type: 'string', default: '20' }, // Mbit/s
    latency: { type: 'string', default: '20' }, // ms
    variants: { type: 'string', default: Object.keys(VARIANTS).join(',') },
    // lazy = Chrome's default (V8 compiles function bodies on first call); eager = every function
    // compiled up front (--js-flags=--no-wasm-lazy-compilation), the regime the 2018-era
    // streaming-compilation articles measured.
    modes: { type: 'string', default: 'lazy,eager' },
    'eager-variants': { type: 'string', default: 'stream-br,buffer-br' },
    help: { type: 'boolean', short: 'h', default: false },
  },
})
if (args.help) {
  console.log('node bench/browser.mjs [--runs 5] [--down 50] [--up 20] [--latency 20] [--variants ' + Object.keys(VARIANTS).join(',') + ']')
  process.exit(0)
}
const RUNS = Math.max(1, Number(args.runs))
const DOWN_MBIT = Number(args.down)
const UP_MBIT = Number(args.up)
const LATENCY_MS = Number(args.latency)
const list = s => s.split(',').map(x => x.trim()).filter(Boolean)
const MODES = {
  lazy: { label: 'lazy compilation (Chrome default)', jsFlags: [], variants: list(args.variants) },
  eager: { label: 'eager compilation (--js-flags=--no-wasm-lazy-compilation)', jsFlags: ['--js-flags=--no-wasm-lazy-compilation'], variants: list(args['eager-variants']) },
}
const chosenModes = list(args.modes)
for (const m of chosenModes) if (!MODES[m]) throw new Error(`unknown mode ${m} (known: ${Object.keys(MODES).join(', ')})`)
for (const m of chosenModes) {
  for (const v of MODES[m].variants) if (!VARIANTS[v]) throw new Error(`unknown variant ${v} (known: ${Object.keys(VARIANTS).join(', ')})`)
}
const allVariants = [...new Set(chosenModes.flatMap(m => MODES[m].variants))]

// ---------------------------------------------------------------------------------------------
// Preconditions

for (const [what, path, fix] of [
  ['the CLI', CLI, 'npm run build'],
  ['Chromium', CHROMIUM, 'apt-get install chromium, or set CHROMIUM_PATH'],
]) {
  if (!existsSync(path)) {
    console.error(`bench:browser: ${what} is missing at ${path} (${fix})`)
    process.exit(1)
  }
}
await ensureFixtures()

// Does the module link against stub imports? (ffmpeg-core: 71 function imports, exports its memory.)
const wasmBytes = readFileSync(join(FIXTURES, MODULE))
const importDescriptors = WebAssembly.Module.imports(await WebAssembly.compile(wasmBytes))
let MODE = 'instantiate'
try {
  await WebAssembly.instantiate(await WebAssembly.compile(wasmBytes), stubImports(importDescriptors))
} catch (err) {
  MODE = 'compile'
  console.error(`bench:browser: ${MODULE} does not instantiate with stub imports (${err.message}); measuring compile only`)
}

// ---------------------------------------------------------------------------------------------
// Server: one CLI serving a temp dir with the module + its .br (br) and identity/ffmpeg-core.wasm
// (no siblings, on-the-fly compression off, so identity is the only representation).

const dir = mkdtempSync(join(tmpdir(), 'wasm-serve-bench-browser-'))
cpSync(join(FIXTURES, MODULE), join(dir, MODULE), { preserveTimestamps: true })
cpSync(join(FIXTURES, MODULE + '.br'), join(dir, MODULE + '.br'), { preserveTimestamps: true })
mkdirSync(join(dir, 'identity'))
cpSync(join(FIXTURES, MODULE), join(dir, 'identity', MODULE), { preserveTimestamps: true })
cpSync(join(ROOT, 'public/loader.js'), join(dir, 'loader.js'))
writeFileSync(join(dir, 'index.html'), '<!doctype html><meta charset="utf-8"><title>bench</title><p>wasm-serve browser bench</p>\n')
const configFile = join(dir, '.bench-config.json')
writeFileSync(configFile, JSON.stringify({ precompressed: ['br', 'gzip'], compress: { onTheFly: false } }))

let server
let browser
const cleanup = async () => {
  await browser?.close().catch(() => {})
  await server?.stop().catch(() => {})
  rmSync(dir, { recursive: true, force: true })
}
process.on('SIGINT', () => { cleanup().finally(() => process.exit(130)) })

try {
  server = await startCli(dir, { flags: ['--config', configFile, '--log-level', 'warn', '--memory-budget', '128MB'] })
  for (const v of allVariants) await expectEncoding(server.url + VARIANTS[v].path, VARIANTS[v].encoding)
  const conditions = {
    offline: false,
    latency: LATENCY_MS,
    downloadThroughput: DOWN_MBIT * 1e6 / 8,
    uploadThroughput: UP_MBIT * 1e6 / 8,
  }

  const started = Date.now()
  const loadBefore = loadavg()
  const sections = []
  let version
  for (const mode of chosenModes) {
    const { label, jsFlags, variants: chosen } = MODES[mode]
    if (!chosen.length) continue
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync', ...jsFlags],
    })
    version = browser.version()
    const results = Object.fromEntries(chosen.map(v => [v, []]))
    // Warm-up (not counted): one run of each variant, so process start-up noise hits nobody.
    console.error(`bench:browser: ${label}: Chromium ${version}, ${DOWN_MBIT} Mbit/s down, ${UP_MBIT} up, ${LATENCY_MS} ms latency, ${RUNS} runs x ${chosen.length} variants (+1 warm-up round)`)
    for (const v of chosen) await runOnce(v, `${mode}-warmup`)
    for (let run = 0; run < RUNS; run++) {
      // Alternate the order: rotate by one each round, reverse every other round.
      let order = chosen.slice(run % chosen.length).concat(chosen.slice(0, run % chosen.length))
      if (run % 2 === 1) order = order.reverse()
      for (const v of order) {
        const r = await runOnce(v, `${mode}-r${run}`)
        results[v].push(r)
        console.error(`  ${mode} run ${run + 1}/${RUNS} ${v.padEnd(9)} ready ${fmt(r.ready)} ms, last byte ${fmt(r.downloadEnd)} ms, tail ${fmt(r.tail)} ms, ${r.encoding}, ${r.wireBytes} B on the wire`)
      }
    }
    await browser.close()
    browser = undefined
    sections.push(renderSection(label, results))
  }
  const elapsed = (Date.now() - started) / 1000

  const report = renderReport(sections, { version, elapsed, load: [loadBefore, loadavg()] })
  console.log(report)
  mkdirSync(dirname(OUT), { recursive: true })
  writeFileSync(OUT, report + '\n')
  console.error(`bench:browser: wrote ${OUT}`)

  /** One measured load in a fresh context (own renderer process and HTTP cache). */
  async function runOnce (variant, tag) {
    const spec = VARIANTS[variant]
    const context = await browser.newContext()
    try {
      const page = await context.newPage()
      const cdp = await context.newCDPSession(page)
      await cdp.send('Network.enable')
      await cdp.send('Network.setCacheDisabled', { cacheDisabled: true })
      await cdp.send('Network.emulateNetworkConditions', conditions)
      const wire = {}
      let finished
      const loadingFinished = new Promise(resolve => { finished = resolve })
      cdp.on('Network.responseReceived', e => { if (e.response.url.includes(MODULE)) wire[e.requestId] = { url: e.response.url, encoding: e.response.headers['content-encoding'] ?? e.response.headers['Content-Encoding'] } })
      cdp.on('Network.loadingFinished', e => { if (wire[e.requestId]) { wire[e.requestId].bytes = e.encodedDataLength; finished() } })
      await page.goto(server.url + '/')
      const url = `${server.url}${spec.path}?bench=${tag}-${variant}-${Date.now()}`
      const r = await page.evaluate(measureInPage, { url, how: spec.how, mode: MODE, descriptors: importDescriptors, stubSource: stubImports.toString() })
      if (r.error) throw new Error(`${variant}: ${r.error}`)
      await Promise.race([loadingFinished, new Promise(resolve => setTimeout(resolve, 5000))])
      const requests = Object.values(wire)
      if (requests.length !== 1) throw new Error(`${variant}: expected 1 request for the module, saw ${requests.length}`)
      const [req] = requests
      if ((req.encoding ?? 'identity') !== spec.encoding) throw new Error(`${variant}: got ${req.encoding ?? 'identity'}, expected ${spec.encoding}`)
      return { ...r, encoding: req.encoding ?? 'identity', wireBytes: req.bytes, tail: r.ready - r.downloadEnd }
    } finally {
      await context.close()
    }
  }
} finally {
  await cleanup()
}

// ---------------------------------------------------------------------------------------------
// Runs inside the page. Times are performance.now() relative to the start of the fetch.

async function measureInPage ({ url, how, mode, descriptors, stubSource }) {
  // eslint-disable-next-line no-new-func
  const stubImports = new Function(`return (${stubSource})`)()
  const imports = stubImports(descriptors)
  const loader = how === 'loader' ? await import('/loader.js') : undefined
  try {
    const t0 = performance.now()
    let bufferedAt
    let exports
    if (how === 'stream') {
      const result = mode === 'instantiate'
        ? await WebAssembly.instantiateStreaming(fetch(url), imports)
        : { module: await WebAssembly.compileStreaming(fetch(url)) }
      exports = result.instance ? Object.keys(result.instance.exports).length : WebAssembly.Module.exports(result.module).length
    } else if (how === 'buffer') {
      const buf = await (await fetch(url)).arrayBuffer()
      bufferedAt = performance.now()
      const result = mode === 'instantiate' ? await WebAssembly.instantiate(buf, imports) : { module: await WebAssembly.compile(buf) }
      exports = result.instance ? Object.keys(result.instance.exports).length : WebAssembly.Module.exports(result.module).length
    } else {
      if (mode !== 'instantiate') throw new Error('the loader always instantiates')
      const r = await loader.loadWasm(url, imports, { retries: 0 })
      if (!r.streamed) throw new Error('the loader did not stream')
      exports = Object.keys(r.instance.exports).length
    }
    const ready = performance.now()
    const entry = performance.getEntriesByName(new URL(url, location.href).href, 'resource').at(-1)
    if (!entry) return { error: 'no Resource Timing entry' }
    return {
      ready: ready - t0,
      firstByte: entry.responseStart - t0,
      downloadEnd: entry.responseEnd - t0,
      buffered: bufferedAt === undefined ? undefined : bufferedAt - t0,
      transferSize: entry.transferSize,
      encodedSize: entry.encodedBodySize,
      decodedSize: entry.decodedBodySize,
      exports,
    }
  } catch (err) {
    return { error: String(err?.stack ?? err) }
  }
}

// ---------------------------------------------------------------------------------------------
// Report

function loadavg () {
  try { return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ') } catch { return '?' }
}

function renderReport (sections, { version, elapsed, load }) {
  const what = MODE === 'instantiate' ? 'ready instance (compiled + instantiated)' : 'compiled module (COMPILE ONLY: the module would not link with stub imports)'
  const nominal = bytes => `${(bytes * 8 / (DOWN_MBIT * 1e6) * 1000).toFixed(0)} ms`
  const br = readFileSync(join(FIXTURES, MODULE + '.br')).length
  return [
    `## Browser: time to a ${what}`,
    '',
    `\`${MODULE}\` (${wasmBytes.length.toLocaleString('en')} B decoded, ${br.toLocaleString('en')} B br) served by \`node dist/cli.js\`, fetched by headless Chromium ${version}`,
    `over CDP network emulation (\`Network.emulateNetworkConditions\`): ${DOWN_MBIT} Mbit/s down, ${UP_MBIT} Mbit/s up, ${LATENCY_MS} ms latency`,
    `(nominal body time: br ${nominal(br)}, identity ${nominal(wasmBytes.length)}). HTTP cache disabled (\`Network.setCacheDisabled\`), fresh browser`,
    `context per run, unique URL per run. ${RUNS} runs per variant (order rotated and alternated, after one uncounted warm-up round);`,
    `${cpus().length} CPU cores shared by Chromium and the server (load average ${load[0]} before, ${load[1]} after). Times in ms from \`fetch()\`: median (min–max).`,
    '"Last byte" is Resource Timing `responseEnd`; "tail" is ready minus last byte (compile/instantiate work left after the download).',
    '',
    ...sections,
    `Command: \`npm run bench:browser -- --runs ${RUNS} --down ${DOWN_MBIT} --latency ${LATENCY_MS} --modes ${chosenModes.join(',')}\` (took ${elapsed.toFixed(0)} s).`,
  ].join('\n')
}

function renderSection (label, results) {
  const s = Object.fromEntries(Object.entries(results).map(([v, rs]) => [v, {
    ready: stats(rs.map(r => r.ready)),
    downloadEnd: stats(rs.map(r => r.downloadEnd)),
    tail: stats(rs.map(r => r.tail)),
    wire: rs[0].wireBytes,
    encoded: rs[0].encodedSize,
    decoded: rs[0].decodedSize,
  }]))
  const lines = [
    `### ${label}`,
    '',
    '| variant | wire bytes | ready, ms | last byte, ms | tail after last byte, ms |',
    '|---|---:|---:|---:|---:|',
  ]
  for (const [v, x] of Object.entries(s)) {
    lines.push(`| ${VARIANTS[v].label} | ${x.wire?.toLocaleString('en') ?? '?'} | ${cell(x.ready)} | ${cell(x.downloadEnd)} | ${cell(x.tail)} |`)
  }
  lines.push('')
  const pct = (a, b) => `${((1 - a / b) * 100).toFixed(1)} %`
  if (s['stream-br'] && s['buffer-br']) {
    lines.push(`- Streaming vs arrayBuffer (both br): ready ${fmt(s['stream-br'].ready.median)} vs ${fmt(s['buffer-br'].ready.median)} ms, **${pct(s['stream-br'].ready.median, s['buffer-br'].ready.median)} faster**` +
      ` (tail after last byte ${fmt(s['stream-br'].tail.median)} vs ${fmt(s['buffer-br'].tail.median)} ms).`)
  }
  if (s['stream-br'] && s['stream-id']) {
    lines.push(`- br vs identity (both streaming): ready ${fmt(s['stream-br'].ready.median)} vs ${fmt(s['stream-id'].ready.median)} ms, ${pct(s['stream-br'].ready.median, s['stream-id'].ready.median)} faster; ` +
      `${s['stream-br'].wire?.toLocaleString('en')} vs ${s['stream-id'].wire?.toLocaleString('en')} B on the wire (CDP encodedDataLength, headers included).`)
  }
  if (s['loader-br'] && s['stream-br']) {
    lines.push(`- loader.js vs bare instantiateStreaming (both br): ${fmt(s['loader-br'].ready.median)} vs ${fmt(s['stream-br'].ready.median)} ms (difference ${fmt(s['loader-br'].ready.median - s['stream-br'].ready.median)} ms; its extra work is the progress tee on a clone and a Resource Timing lookup).`)
  }
  lines.push('')
  return lines.join('\n')
}

function stats (xs) {
  const sorted = [...xs].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
  return { median, min: sorted[0], max: sorted.at(-1) }
}
function cell ({ median, min, max }) { return `${fmt(median)} (${fmt(min)}–${fmt(max)})` }
function fmt (ms) { return ms === undefined ? '?' : Math.round(ms).toLocaleString('en') }

// ---------------------------------------------------------------------------------------------
// Plumbing

/** Checks the server answers `url` with Content-Encoding `encoding` for a browser's Accept-Encoding. */
async function expectEncoding (url, encoding) {
  const res = await request(url, { method: 'HEAD', headers: { 'accept-encoding': 'gzip, deflate, br, zstd' } })
  await res.body.dump()
  const got = res.headers['content-encoding'] ?? 'identity'
  if (res.statusCode !== 200 || got !== encoding || res.headers['content-type'] !== 'application/wasm') {
    throw new Error(`${url}: HTTP ${res.statusCode}, ${res.headers['content-type']}, ${got}; expected 200 application/wasm ${encoding}`)
  }
}
