#!/usr/bin/env node
/**
 * Delta updates benchmark (RFC 9842; results in docs/benchmarks.md, "Delta updates"): for real
 * consecutive releases of wasm packages on npm, how many bytes the new module costs as br, zstd and
 * as a delta against the previous release (dcz / dcb), how long a delta takes to make, and the time
 * to a ready WebAssembly instance in Chromium at 50 Mbit/s with br against the delta.
 *
 *   npm run build && /path/to/node24 bench/dictionary.mjs [--runs 3] [--down 50] [--latency 10]
 *                                      [--pairs sqlite-3.50.4,ffmpeg-0.12.10,...] [--no-browser]
 *
 * Needs Node 24 (a zlib that compresses with a raw dictionary: zstd and brotli), dist/ and, for the
 * browser part, Chromium (CHROMIUM_PATH or /usr/bin/chromium). The releases are fetched once with
 * `npm pack` into bench/releases/ (git-ignored), with the slow br q11 and zstd -19 encodings of each
 * module cached beside them. Writes the table to stdout, bench/results/dictionary.md and .json.
 *
 * Deltas are made by the server's own code (dist/dictionary.js, `encodeDelta`): 'max' is what a
 * build step would write, 'fast' what the server makes on the fly. Each is decoded again with the
 * old module as dictionary and compared with the new one byte for byte before it counts.
 *
 * The browser part plays a deploy: the CLI serves release 1, a fresh browser context fetches its
 * module (the response carries Use-As-Dictionary, so the browser keeps it as a dictionary); the
 * CLI is restarted on the same port with release 2 as root and release 1 in `--dictionaries`, one
 * HTTP request naming release 1 warms the delta up, and the same context then measures
 * `WebAssembly.instantiateStreaming(fetch(new module))`. The br case is a fresh context that holds
 * no dictionary. Each module is named `<name>.<16 hex of sha256("<package>@<version>")>.wasm`, as a
 * bundler's hashed name, so the new release has a new URL even when its module did not change.
 */
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { basename, dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import * as zlib from 'node:zlib'
import { startCli, stubImports } from './harness.mjs'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const CLI = join(ROOT, 'dist/cli.js')
const CACHE = join(ROOT, 'bench/releases')
const RESULTS = join(ROOT, 'bench/results')
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const CHROMIUM_FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync']
/** What Chromium 156 sends with a dictionary, so the warm-up asks for the delta the browser will. */
const BROWSER_ACCEPT_ENCODING = 'gzip, deflate, br, zstd, dcb, dcz'

/**
 * Consecutive releases that ship a module. @ffmpeg/core 0.12.10 ships the very module of 0.12.9
 * (only its JavaScript changed); its last module change is 0.12.6 → 0.12.9 (0.12.7 was never
 * published, 0.12.8 is a package.json alone). @sqlite.org/sqlite-wasm 3.53.4-build2 ships
 * build1's module.
 */
const PAIRS = [
  { id: 'sqlite-3.50.4', pkg: '@sqlite.org/sqlite-wasm', from: '3.50.3-build1', to: '3.50.4-build1', wasm: 'sqlite3.wasm' },
  { id: 'sqlite-3.54.1', pkg: '@sqlite.org/sqlite-wasm', from: '3.53.4-build2', to: '3.54.1-build1', wasm: 'sqlite3.wasm' },
  { id: 'ffmpeg-0.12.10', pkg: '@ffmpeg/core', from: '0.12.9', to: '0.12.10', wasm: 'ffmpeg-core.wasm' },
  { id: 'ffmpeg-0.12.9', pkg: '@ffmpeg/core', from: '0.12.6', to: '0.12.9', wasm: 'ffmpeg-core.wasm' },
]
/** The deltas measured: build time ('max', as `wasm-serve compress` would write them) and on the fly ('fast'). */
const DELTAS = [
  { key: 'dczMax', coding: 'dcz', level: 'max' },
  { key: 'dcbMax', coding: 'dcb', level: 'max' },
  { key: 'dczFast', coding: 'dcz', level: 'fast' },
]

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    down: { type: 'string', default: '50' }, // Mbit/s, both ways
    latency: { type: 'string', default: '10' }, // ms
    pairs: { type: 'string', default: PAIRS.map(p => p.id).join(',') },
    'no-browser': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
})
if (args.help) {
  console.log(`node bench/dictionary.mjs [--runs 3] [--down 50] [--latency 10] [--pairs ${PAIRS.map(p => p.id).join(',')}] [--no-browser]`)
  process.exit(0)
}
const RUNS = Math.max(1, Number(args.runs))
const DOWN_MBIT = Number(args.down)
const LATENCY_MS = Number(args.latency)
const chosen = args.pairs.split(',').map(s => s.trim()).filter(Boolean).map(id => PAIRS.find(p => p.id === id) ?? refuse(`unknown pair ${id} (known: ${PAIRS.map(p => p.id).join(', ')})`))
const browserWanted = !args['no-browser']
process.once('SIGINT', () => process.exit(130)) // so the 'exit' handlers stop the servers
/** Temp roots of the browser part, removed however the process ends. */
const tempDirs = new Set()
process.once('exit', () => { for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true }) })

// ---------------------------------------------------------------------------------------------
// Preconditions: said before any download or encoding starts.

function refuse (message) {
  console.error(`bench:dictionary: ${message}`)
  process.exit(1)
}

if (!existsSync(CLI)) refuse(`dist/ is missing (${CLI}): run npm run build first`)
const { dictionarySupport, encodeDelta, namedDictionary } = await import('../dist/dictionary.js')
const { encode } = await import('../dist/codecs.js')
if (!dictionarySupport.dcz || !dictionarySupport.dcb) {
  const no = ['dcz', 'dcb'].filter(c => !dictionarySupport[c]).map(c => c === 'dcz' ? 'zstd' : 'brotli').join(' and ')
  refuse(`Node ${process.version} cannot compress ${no} with a raw dictionary, so it cannot make deltas; run this benchmark with Node 24 (e.g. /path/to/node24 bench/dictionary.mjs)`)
}
if (browserWanted && !existsSync(CHROMIUM)) refuse(`Chromium is missing at ${CHROMIUM} (install it, set CHROMIUM_PATH, or pass --no-browser)`)
const { chromium } = browserWanted ? await import('playwright-core') : {}
const { request } = await import('undici')

// ---------------------------------------------------------------------------------------------
// Releases: `npm pack` once into bench/releases/, the module read out of the tarball.

const sha256 = buf => createHash('sha256').update(buf).digest()

/** The tarball of pkg@version in the cache, fetched with `npm pack` when missing. */
function tarballOf (pkg, version) {
  mkdirSync(CACHE, { recursive: true })
  const expected = join(CACHE, `${pkg.replace(/^@/, '').replace('/', '-')}-${version}.tgz`)
  if (existsSync(expected)) return expected
  console.error(`bench:dictionary: npm pack ${pkg}@${version}`)
  const r = spawnSync('npm', ['pack', `${pkg}@${version}`, '--pack-destination', CACHE, '--json'], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`npm pack ${pkg}@${version} failed: ${(r.stderr || r.error?.message || '').trim()}`)
  const file = join(CACHE, JSON.parse(r.stdout)[0].filename)
  if (file !== expected) renameSync(file, expected)
  return expected
}

/** The release's module: the tarball's first `.wasm` named `wasm` (esm and umd copies are identical). */
function moduleOf (pkg, version, wasm) {
  const tgz = tarballOf(pkg, version)
  const list = spawnSync('tar', ['tzf', tgz], { encoding: 'utf8' })
  if (list.status !== 0) throw new Error(`tar tzf ${tgz}: ${list.stderr}`)
  const entry = list.stdout.split('\n').filter(e => basename(e) === wasm).sort()[0]
  if (entry === undefined) throw new Error(`${pkg}@${version} has no ${wasm} (its .wasm files: ${list.stdout.split('\n').filter(e => e.endsWith('.wasm')).join(', ') || 'none'})`)
  const bytes = spawnSync('tar', ['xzOf', tgz, entry], { maxBuffer: 1 << 30 }).stdout
  if (!WebAssembly.validate(bytes)) throw new Error(`${pkg}@${version}: ${entry} is not a valid module`)
  const tag = createHash('sha256').update(`${pkg}@${version}`).digest('hex').slice(0, 16)
  return { version, entry, bytes, hash: sha256(bytes), name: wasm.replace(/\.wasm$/, `.${tag}.wasm`) }
}

// ---------------------------------------------------------------------------------------------
// Sizes and times

const median = xs => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2 }
const DECODE = {
  br: (buf) => zlib.brotliDecompressSync(buf),
  zstd: (buf) => zlib.zstdDecompressSync(buf),
  dcz: (buf, dictionary) => zlib.zstdDecompressSync(buf.subarray(40), { dictionary, params: { [zlib.constants.ZSTD_d_windowLogMax]: 31 } }),
  dcb: (buf, dictionary) => zlib.brotliDecompressSync(buf.subarray(36), { dictionary }),
}

/**
 * br q11 / zstd -19 of a module ('max': the encodings `wasm-serve compress` writes, zstd with a
 * window of at most 8 MB), cached by the module's hash: q11 of a 32 MB module takes minutes.
 */
async function encoded (bytes, token) {
  const file = join(CACHE, 'encoded', `${sha256(bytes).toString('hex')}.${token === 'br' ? 'br-q11' : 'zst-19'}`)
  if (existsSync(file)) {
    const cached = readFileSync(file)
    if (DECODE[token](cached).equals(bytes)) return cached
  }
  console.error(`bench:dictionary: ${token} 'max' of a ${bytes.length.toLocaleString('en')} B module (cached afterwards)`)
  const out = await encode(bytes, token, 'max')
  if (!DECODE[token](out).equals(bytes)) throw new Error(`${token}: round trip failed`)
  mkdirSync(dirname(file), { recursive: true })
  writeFileSync(file + '.tmp', out)
  renameSync(file + '.tmp', file)
  return out
}

/** One delta made RUNS times: its size, the median time, and its bytes (checked by decoding it). */
async function timeDelta (from, to, { coding, level }) {
  const ms = []
  let body
  for (let run = 0; run < RUNS; run++) {
    const started = performance.now()
    body = await encodeDelta({ target: to.bytes, dictionary: from.bytes, dictionaryHash: from.hash, coding, level })
    ms.push(performance.now() - started)
    if (body === undefined) return { skipped: coding === 'dcb' ? 'beyond dcb\'s 16 MB window: the server sends br' : 'beyond the window limits: the server sends br' }
  }
  if (!namedDictionary(body, coding)?.equals(from.hash)) throw new Error(`${coding} ${level}: the header does not name the old module`)
  if (!DECODE[coding](body, from.bytes).equals(to.bytes)) throw new Error(`${coding} ${level}: does not decode to the new module`)
  return { bytes: body.length, ms: median(ms), runs: ms.map(Math.round), body }
}

async function measureBytes (pair, from, to) {
  const br = await encoded(to.bytes, 'br')
  const zstd = await encoded(to.bytes, 'zstd')
  const deltas = {}
  for (const d of DELTAS) {
    console.error(`bench:dictionary: ${pair.id}: ${d.coding} '${d.level}' x${RUNS}`)
    deltas[d.key] = await timeDelta(from, to, d)
  }
  return { br, zstd: zstd.length, deltas }
}

// ---------------------------------------------------------------------------------------------
// Browser: time to a ready instance of the new module, br against the delta.

/**
 * Serves release 1, lets RUNS fresh contexts store its module as a dictionary, restarts the CLI on
 * the same port (same origin: dictionaries are kept per origin) with release 2, and measures each
 * of those contexts (delta) and as many fresh ones (br), alternating.
 */
async function measureBrowser (pair, from, to, sizes) {
  const dir = mkdtempSync(join(tmpdir(), 'wasm-serve-bench-dictionary-'))
  tempDirs.add(dir)
  const [release1, release2] = [join(dir, 'release-1'), join(dir, 'release-2')]
  writeRelease(release1, from)
  writeRelease(release2, to, sizes.br)
  const config = join(dir, 'config.json')
  // No on-the-fly encodings: the br answer is the q11 sibling, and no encoder competes for the CPU.
  writeFileSync(config, JSON.stringify({ precompressed: ['br'], compress: { onTheFly: false } }))
  const fast = sizes.deltas.dczFast
  // The server keeps a delta only when it is smaller than its best encoding (br here).
  const skipDelta = fast.bytes === undefined
    ? fast.skipped
    : fast.bytes >= sizes.br.length ? `the on-the-fly delta (dcz 'fast', ${fast.bytes.toLocaleString('en')} B) is larger than br, so the server sends br` : undefined
  const page = { mode: await instantiable(to.bytes), url: '/' + to.name }
  const contexts = []
  let server
  let browser
  try {
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS })
    server = await startCli(release1, { flags: ['--quiet', '--config', config] })
    const holders = []
    if (skipDelta === undefined) {
      for (let run = 0; run < RUNS; run++) holders.push(await holdDictionary(browser, contexts, server.url, { pair, from }))
    }
    await server.stop()
    server = await startCli(release2, { port: server.port, flags: ['--quiet', '--config', config, '--dictionaries', release1] })
    const warm = skipDelta === undefined ? await warmUp(server.url + page.url, from, to) : undefined
    const br = []
    const delta = []
    for (let run = 0; run < RUNS; run++) {
      const fresh = async () => br.push(await measureOnce(await newContext(browser, contexts), server.url, page, { encoding: 'br', size: to.bytes.length }))
      const held = async () => delta.push(await measureOnce(holders[run], server.url, page, { encoding: 'dcz', size: to.bytes.length, dictionary: from.hash }))
      const order = skipDelta === undefined ? (run % 2 === 0 ? [held, fresh] : [fresh, held]) : [fresh]
      for (const step of order) await step()
      console.error(`  ${pair.id} run ${run + 1}/${RUNS}: br ${fmtMs(br.at(-1).ready)}${delta.length > run ? `, ${delta.at(-1).encoding} ${fmtMs(delta.at(-1).ready)}` : ''}`)
    }
    return { version: browser.version(), mode: page.mode, warm, br: summary(br), delta: skipDelta === undefined ? summary(delta) : { skipped: skipDelta } }
  } finally {
    for (const c of contexts) await c.context.close().catch(() => {})
    await browser?.close().catch(() => {})
    await server?.stop().catch(() => {})
    rmSync(dir, { recursive: true, force: true })
  }
}

/** A release's root: its module under its hashed name (and the br sibling), and an empty page. */
function writeRelease (dir, release, br) {
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, release.name), release.bytes)
  if (br !== undefined) writeFileSync(join(dir, release.name + '.br'), br)
  writeFileSync(join(dir, 'index.html'), '<!doctype html><meta charset="utf-8"><title>bench</title><p>wasm-serve delta bench</p>\n')
  // A sibling older than its original would not be trusted (D3): both get the same time.
  const now = new Date()
  for (const f of [release.name, release.name + '.br', 'index.html']) if (existsSync(join(dir, f))) utimesSync(join(dir, f), now, now)
}

/** Whether the module links against stub imports in Node; the page then instantiates, else compiles only. */
async function instantiable (bytes) {
  const module = await WebAssembly.compile(bytes)
  const descriptors = WebAssembly.Module.imports(module)
  try {
    await WebAssembly.instantiate(module, stubImports(descriptors))
    return { how: 'instantiate', descriptors }
  } catch {
    return { how: 'compile', descriptors }
  }
}

/** A fresh context (own profile, HTTP cache and dictionary store) with CDP's Network domain on. */
async function newContext (browser, contexts) {
  const context = await browser.newContext()
  const page = await context.newPage()
  const cdp = await context.newCDPSession(page)
  await cdp.send('Network.enable')
  const requests = new Map()
  const entry = id => requests.get(id) ?? requests.set(id, {}).get(id)
  cdp.on('Network.requestWillBeSent', e => { entry(e.requestId).url = e.request.url })
  cdp.on('Network.requestWillBeSentExtraInfo', e => { entry(e.requestId).sent = lowerCase(e.headers) })
  cdp.on('Network.responseReceived', e => { entry(e.requestId).received = lowerCase(e.response.headers) })
  cdp.on('Network.loadingFinished', e => { entry(e.requestId).wireBytes = e.encodedDataLength })
  const held = { context, page, cdp, requests }
  contexts.push(held)
  return held
}
const lowerCase = headers => Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]))

/**
 * A fresh context that fetched release 1's module and holds it as a dictionary: polled by fetching a
 * URL its match pattern covers until the request carries its hash in Available-Dictionary.
 */
async function holdDictionary (browser, contexts, base, { pair, from }) {
  const held = await newContext(browser, contexts)
  await held.page.goto(base + '/')
  const got = await held.page.evaluate(async url => { const r = await fetch(url); return { status: r.status, bytes: (await r.arrayBuffer()).byteLength, dictionary: r.headers.get('use-as-dictionary') } }, '/' + from.name)
  if (got.status !== 200 || got.bytes !== from.bytes.length || got.dictionary === null) throw new Error(`release 1's module: ${JSON.stringify(got)}; expected 200, ${from.bytes.length} B and Use-As-Dictionary`)
  const expected = `:${from.hash.toString('base64')}:`
  const probe = '/' + pair.wasm.replace(/\.wasm$/, '.probe.wasm')
  const deadline = Date.now() + 15_000
  for (let n = 0; Date.now() < deadline; n++) {
    await held.page.evaluate(async url => { await (await fetch(url)).arrayBuffer() }, `${probe}?n=${n}`)
    const sent = [...held.requests.values()].filter(r => r.url?.includes(probe) && r.sent !== undefined)
    if (sent.some(r => r.sent['available-dictionary'] === expected)) return held
  }
  throw new Error(`Chromium does not offer release 1's module as a dictionary (requests for ${probe} carried no Available-Dictionary ${expected}); see docs/benchmarks.md, "Delta updates"`)
}

/**
 * Asks the server for the new module as Chromium would, naming release 1, until the delta is made
 * (the first requests get br while it is made off the event loop); checks it decodes to the new module.
 */
async function warmUp (url, from, to) {
  const started = performance.now()
  const headers = { 'accept-encoding': BROWSER_ACCEPT_ENCODING, 'available-dictionary': `:${from.hash.toString('base64')}:` }
  for (;;) {
    const res = await request(url, { headers })
    const body = Buffer.from(await res.body.arrayBuffer())
    const coding = res.headers['content-encoding']
    if (res.statusCode === 200 && (coding === 'dcz' || coding === 'dcb')) {
      if (!DECODE[coding](body, from.bytes).equals(to.bytes)) throw new Error(`the server's ${coding} does not decode to the new module`)
      return { coding, bytes: body.length, ms: performance.now() - started }
    }
    if (res.statusCode !== 200 || coding !== 'br') throw new Error(`${url}: HTTP ${res.statusCode} ${coding ?? 'identity'} while the delta is made; expected br`)
    if (performance.now() - started > 300_000) throw new Error(`${url}: no delta after 300 s`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

/** One measured load in `held`'s context at the emulated speed; checks what came over the wire. */
async function measureOnce (held, base, page, expected) {
  await held.page.goto(base + '/')
  await held.cdp.send('Network.emulateNetworkConditions', { offline: false, latency: LATENCY_MS, downloadThroughput: DOWN_MBIT * 1e6 / 8, uploadThroughput: DOWN_MBIT * 1e6 / 8 })
  const r = await held.page.evaluate(measureInPage, { url: page.url, mode: page.mode.how, descriptors: page.mode.descriptors, stubSource: stubImports.toString() })
  if (r.error !== undefined) throw new Error(`${page.url}: ${r.error}`)
  const req = await until(() => [...held.requests.values()].find(x => x.url?.endsWith(page.url) && x.wireBytes !== undefined), `the loadingFinished event of ${page.url}`)
  const encoding = req.received?.['content-encoding'] ?? 'identity'
  const offered = req.sent?.['available-dictionary']
  if (encoding !== expected.encoding || r.decodedSize !== expected.size) {
    throw new Error(`${page.url}: ${encoding}, ${r.decodedSize} B decoded (Available-Dictionary: ${offered ?? 'none'}); expected ${expected.encoding}, ${expected.size} B`)
  }
  await held.context.close()
  return { ...r, encoding, wireBytes: req.wireBytes, offered }
}

async function until (get, what) {
  const deadline = Date.now() + 10_000
  for (;;) {
    const value = get()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

/** Runs inside the page: times from the start of fetch(), ms. */
async function measureInPage ({ url, mode, descriptors, stubSource }) {
  // eslint-disable-next-line no-new-func
  const stubImports = new Function(`return (${stubSource})`)()
  try {
    const t0 = performance.now()
    if (mode === 'instantiate') await WebAssembly.instantiateStreaming(fetch(url), stubImports(descriptors))
    else await WebAssembly.compileStreaming(fetch(url))
    const ready = performance.now() - t0
    const entry = performance.getEntriesByName(new URL(url, globalThis.location.href).href, 'resource').at(-1)
    if (entry === undefined) return { error: 'no Resource Timing entry' }
    return { ready, downloadEnd: entry.responseEnd - t0, encodedSize: entry.encodedBodySize, decodedSize: entry.decodedBodySize }
  } catch (err) {
    return { error: String(err?.stack ?? err) }
  }
}

function summary (runs) {
  const ready = runs.map(r => r.ready)
  return { ready: median(ready), min: Math.min(...ready), max: Math.max(...ready), lastByte: median(runs.map(r => r.downloadEnd)), wireBytes: runs[0].wireBytes, encoding: runs[0].encoding, runs: ready.map(Math.round) }
}

// ---------------------------------------------------------------------------------------------
// Plumbing

function loadavg () {
  try { return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ') } catch { return '?' }
}

// ---------------------------------------------------------------------------------------------
// Report

const B = n => `${n.toLocaleString('en')} B`
const pct = (n, of) => `${n <= of ? '−' : '+'}${Math.abs((1 - n / of) * 100).toFixed(1)} %`
function fmtMs (ms) { return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s` }

function renderReport (rows, { elapsed, load }) {
  const notes = []
  const note = text => { notes.push(text); return `skipped (${notes.length})` }
  const lines = [
    '| update | new module | br q11 | zstd -19 | dcz, build time | dcb, build time | dcz, on the fly | make dcz / dcb, build time | make dcz, on the fly | ready in Chromium: br | ready: delta |',
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
  ]
  for (const { pair, from, to, sizes, browser } of rows) {
    const br = sizes.br.length
    const delta = d => d.bytes === undefined ? note(`${pair.id}: ${d.skipped}`) : `**${B(d.bytes)}** (${pct(d.bytes, br)})`
    const made = d => d.bytes === undefined ? '—' : fmtMs(d.ms)
    const { dczMax, dcbMax, dczFast } = sizes.deltas
    const ready = x => x === undefined ? 'not run' : x.skipped !== undefined ? note(`${pair.id}: ${x.skipped}`) : `${fmtMs(x.ready)} (${fmtMs(x.min)}–${fmtMs(x.max)})`
    const same = from.hash.equals(to.hash) ? ', the same module' : ''
    lines.push(`| ${pair.pkg} ${pair.from} → ${pair.to}${same} | ${B(to.bytes.length)} | ${B(br)} | ${B(sizes.zstd)} | ${delta(dczMax)} | ${delta(dcbMax)} | ${delta(dczFast)} | ${made(dczMax)} / ${made(dcbMax)} | ${made(dczFast)} | ${ready(browser?.br)} | ${ready(browser?.delta)} |`)
  }
  const wire = rows.filter(r => r.browser !== undefined).map(({ pair, browser }) => {
    const d = browser.delta.skipped === undefined ? `, ${browser.delta.encoding} ${B(browser.delta.wireBytes)} (last byte at ${fmtMs(browser.delta.lastByte)})` : ''
    return `${pair.id}: br ${B(browser.br.wireBytes)} (last byte at ${fmtMs(browser.br.lastByte)})${d}${browser.mode.how === 'compile' ? '; compile only (the module does not link with stub imports)' : ''}`
  })
  return [
    '## Delta updates',
    '',
    ...lines,
    '',
    ...notes.map((n, i) => `(${i + 1}) ${n}.`),
    ...notes.length > 0 ? [''] : [],
    `Bytes: the new module's body; deltas include their RFC 9842 header (40 B dcz, 36 B dcb); percentages against br q11. Times to make: median of ${RUNS} runs, one encoding at a time.`,
    chromiumVersion === undefined
      ? 'Browser: not run (--no-browser).'
      : `Browser: headless Chromium ${chromiumVersion}, CDP \`Network.emulateNetworkConditions\` ${DOWN_MBIT} Mbit/s both ways and ${LATENCY_MS} ms latency, time from \`fetch()\` to a ready instance (\`instantiateStreaming\`, stub imports), median (min–max) of ${RUNS} runs. Bytes on the wire (CDP encodedDataLength, headers included): ${wire.join('; ')}.`,
    '',
    `Machine: ${cpus()[0]?.model ?? 'unknown CPU'} × ${cpus().length}, Node ${process.version}; load average ${load[0]} before, ${load[1]} after; took ${elapsed.toFixed(0)} s.`,
    `Command: \`node bench/dictionary.mjs --runs ${RUNS} --down ${DOWN_MBIT} --latency ${LATENCY_MS} --pairs ${chosen.map(p => p.id).join(',')}${browserWanted ? '' : ' --no-browser'}\``,
  ].join('\n')
}

function jsonRow ({ pair, from, to, sizes, browser }) {
  const release = r => ({ version: r.version, entry: r.entry, bytes: r.bytes.length, sha256: r.hash.toString('hex') })
  const deltas = Object.fromEntries(Object.entries(sizes.deltas).map(([k, { body, ...rest }]) => [k, rest]))
  return { pair: pair.id, pkg: pair.pkg, from: release(from), to: release(to), br: sizes.br.length, zstd: sizes.zstd, deltas, browser }
}

// ---------------------------------------------------------------------------------------------
// Main

const started = Date.now()
const loadBefore = loadavg()
const rows = []
let chromiumVersion
for (const pair of chosen) {
  const from = moduleOf(pair.pkg, pair.from, pair.wasm)
  const to = moduleOf(pair.pkg, pair.to, pair.wasm)
  console.error(`bench:dictionary: ${pair.pkg} ${pair.from} → ${pair.to}: ${from.entry}, ${from.bytes.length.toLocaleString('en')} → ${to.bytes.length.toLocaleString('en')} B${from.hash.equals(to.hash) ? ' (the same module)' : ''}`)
  const sizes = await measureBytes(pair, from, to)
  let browser
  if (browserWanted) {
    browser = await measureBrowser(pair, from, to, sizes)
    chromiumVersion = browser.version
  }
  rows.push({ pair, from, to, sizes, browser })
}
const report = renderReport(rows, { elapsed: (Date.now() - started) / 1000, load: [loadBefore, loadavg()] })
console.log(report)
mkdirSync(RESULTS, { recursive: true })
writeFileSync(join(RESULTS, 'dictionary.md'), report + '\n')
writeFileSync(join(RESULTS, 'dictionary.json'), JSON.stringify(rows.map(jsonRow), null, 2) + '\n')
console.error(`bench:dictionary: wrote ${join(RESULTS, 'dictionary.md')} and dictionary.json`)
