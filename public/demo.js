// The wasm-serve demo: loads sqlite3.wasm with loader.js and shows how it was delivered.
// No build step, no dependencies. The outcome is also left on `window.wasmDemo` for the e2e tests.
import { loadWasm, detectFeatures } from './loader.js'

// Named by the page (<meta name="wasm-module">), so a release can point it at a hashed file; relative,
// so the demo works when mounted under a prefix.
const MODULE_URL = document.querySelector('meta[name="wasm-module"]')?.content || 'sqlite3.wasm'
const $ = (id) => document.getElementById(id)
const demo = { state: 'loading', progress: [], maxPercent: 0 }
window.wasmDemo = demo

function formatBytes (n) {
  if (n === undefined || n === null || Number.isNaN(n)) return '–'
  if (n < 1024) return `${n} B`
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10 * 1024 ? 1 : 0)} KB`
  return `${(n / 1024 / 1024).toFixed(2)} MB`
}

/** How much smaller `part` is than `whole`, with enough decimals that a delta does not read "100 %". */
function formatSaving (part, whole) {
  const saved = (1 - part / whole) * 100
  return `${saved > 99 ? saved.toFixed(2) : Math.round(saved)} %`
}

function formatMs (ms) {
  if (ms === undefined || Number.isNaN(ms)) return '–'
  return ms < 10 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`
}

function setText (id, text) { $(id).textContent = text }

// ---- progress bar: painted once per frame, never above 100 % -------------------------------------
let pending
function onProgress (p) {
  const percent = p.total ? Math.min(100, (p.loaded / p.total) * 100) : undefined
  demo.progress.push({ loaded: p.loaded, total: p.total, done: p.done })
  if (percent !== undefined) demo.maxPercent = Math.max(demo.maxPercent, percent)
  if (pending === undefined) requestAnimationFrame(() => paintProgress(pending))
  pending = { ...p, percent }
}

function paintProgress (p) {
  pending = undefined
  const bar = $('progress')
  bar.classList.toggle('indeterminate', p.percent === undefined)
  bar.classList.toggle('done', p.done)
  if (p.percent !== undefined) {
    $('fill').style.transform = `scaleX(${p.percent / 100})`
    bar.setAttribute('aria-valuenow', String(Math.floor(p.percent)))
    setText('progress-pct', `${Math.floor(p.percent)} %`)
    setText('progress-bytes', `${formatBytes(p.loaded)} of ${formatBytes(p.total)} decoded`)
  } else {
    bar.removeAttribute('aria-valuenow')
    setText('progress-pct', 'size unknown')
    setText('progress-bytes', `${formatBytes(p.loaded)} decoded`)
  }
  if (!p.done) setText('state', 'Downloading + compiling…')
}

// ---- sqlite3.wasm without its Emscripten glue ------------------------------------------------------
const ENOSYS = 52 // Emscripten's errno numbering: syscalls return -errno, WASI calls return errno

function buildImports (module) {
  const memory = new WebAssembly.Memory({ initial: 256, maximum: 32768 }) // 16 MiB, as the glue does
  const imports = {}
  const described = WebAssembly.Module.imports(module)
  for (const { module: ns, name, kind } of described) {
    imports[ns] ??= {}
    if (kind === 'memory') imports[ns][name] = memory
    else if (kind === 'function') imports[ns][name] = stub(ns, name)
  }
  demo.imports = described.length
  demo.memory = memory
  return imports
}

function stub (ns, name) {
  if (name === 'emscripten_date_now') return () => Date.now()
  if (name === 'emscripten_get_now') return () => performance.now()
  if (name === '_emscripten_get_now_is_monotonic') return () => 1
  if (name.startsWith('__syscall_')) return () => -ENOSYS
  if (ns === 'wasi_snapshot_preview1' && name !== 'environ_sizes_get' && name !== 'environ_get') return () => ENOSYS
  return () => 0 // environ_*, tz, mmap/munmap, resize_heap: "nothing to do" is a valid answer
}

/** Runs one query through the raw C API: proof that the instance really works. */
function runQuery (exports, memory, sql) {
  const e = exports
  const heap = () => new Uint8Array(memory.buffer)
  const cstr = (ptr) => { const h = heap(); let end = ptr; while (h[end]) end++; return new TextDecoder().decode(h.subarray(ptr, end)) }
  const alloc = (text) => { const b = new TextEncoder().encode(`${text}\0`); const p = e.sqlite3_malloc(b.length); heap().set(b, p); return p }
  const ptrAt = (p) => new DataView(memory.buffer).getUint32(p, true)
  e.__wasm_call_ctors?.()
  const out = e.sqlite3_malloc(8)
  if (e.sqlite3_open_v2(alloc(':memory:'), out, 6 /* READWRITE|CREATE */, 0) !== 0) throw new Error('sqlite3_open_v2 failed')
  const db = ptrAt(out)
  if (e.sqlite3_prepare_v2(db, alloc(sql), -1, out, 0) !== 0) throw new Error(cstr(e.sqlite3_errmsg(db)))
  const stmt = ptrAt(out)
  const row = []
  if (e.sqlite3_step(stmt) === 100 /* SQLITE_ROW */) {
    for (let i = 0; i < e.sqlite3_column_count(stmt); i++) row.push(cstr(e.sqlite3_column_text(stmt, i)))
  }
  e.sqlite3_finalize(stmt)
  e.sqlite3_close_v2(db)
  return row
}

// ---- the report -----------------------------------------------------------------------------------
function showDelivery (r) {
  const res = r.resource
  const wire = r.transferSize
  const encoded = r.encodedSize ?? r.contentLength
  const encoding = r.encoding ?? (res && res.encodedBodySize < res.decodedBodySize ? 'compressed' : undefined)
  $('encoding').innerHTML = ''
  $('encoding').append(encoding ?? 'unknown')
  setText('encoding-hint', encoding === 'identity'
    ? 'not compressed'
    : encoded && r.decodedSize ? `${formatSaving(encoded, r.decodedSize)} smaller than the module` : 'from Content-Encoding')

  setText('wire', wire === undefined ? formatBytes(encoded) : formatBytes(wire))
  setText('wire-hint', wire === undefined
    ? 'encoded body (Content-Length)'
    : r.cache === 'cache'
      ? 'nothing: no request was made'
      : r.cache === 'revalidated'
        ? 'headers only: the body came from the cache'
        : `${formatBytes(encoded)} body + ${formatBytes(Math.max(0, wire - encoded))} headers`)

  setText('decoded', formatBytes(r.decodedSize))
  setText('decoded-hint', r.total === r.decodedSize ? 'matches X-Decoded-Content-Length' : r.total === undefined ? 'size was not announced' : `announced ${formatBytes(r.total)}`)

  const cache = {
    network: ['Network', `full ${r.status} download`],
    revalidated: ['304', 'revalidated: cached copy reused'],
    cache: ['HTTP cache', 'no request at all'],
  }[r.cache] ?? ['unknown', 'no Resource Timing data']
  setText('cache', cache[0])
  setText('cache-hint', cache[1])
  if (r.cache === 'revalidated' || r.cache === 'cache') $('cache').insertAdjacentHTML('beforeend', '<span class="tag">✓</span>')
}

function showTimeline (r) {
  const res = r.resource
  const start = res?.startTime ?? r.timing.start
  const firstByte = res?.responseStart || r.timing.headers
  const lastByte = Math.max(res?.responseEnd || 0, r.timing.downloaded)
  const ready = r.timing.ready
  const parts = { wait: firstByte - start, download: lastByte - firstByte, compile: Math.max(0, ready - lastByte) }
  const total = ready - start
  demo.timing = { ...parts, total }
  for (const [name, ms] of Object.entries(parts)) {
    $(`seg-${name}`).style.width = `${Math.max(0.5, (ms / total) * 100)}%`
    setText(`t-${name}`, formatMs(ms))
  }
  setText('time-total', formatMs(total))
  setText('compile-note', r.streamed
    ? 'Compiled with WebAssembly.instantiateStreaming: compilation ran while the bytes arrived, so only the tail is left after the last byte. Chrome also caches the compiled code for the next visit.'
    : `Compiled without streaming (Content-Type was "${r.contentType}"): the whole module was downloaded first, then compiled.`)
}

const HEADER_NOTES = {
  'content-type': 'must be exactly application/wasm for streaming compilation',
  'content-encoding': 'decoded by the browser; the compiler sees the original bytes',
  'content-length': 'bytes on the wire (the encoded size)',
  'x-decoded-content-length': 'the decoded size: lets the progress bar end at exactly 100 %',
  etag: 'content-derived: a revalidation gets a 304 and keeps the compiled code cache',
  'cache-control': 'no-cache = revalidate each visit; hashed names get a year + immutable',
  vary: 'caches keep one copy per encoding (and per dictionary offered)',
  'use-as-dictionary': 'the browser keeps this module and offers it (Available-Dictionary) when it fetches the next release: a delta instead of a download',
  'cross-origin-resource-policy': 'lets a cross-origin isolated page (COOP + COEP or Document-Isolation-Policy, --isolate) embed it',
}

function showHeaders (response) {
  const rows = Object.entries(HEADER_NOTES).map(([name, why]) => {
    const value = response.headers.get(name)
    const tr = document.createElement('tr')
    const th = document.createElement('th')
    th.textContent = name
    const td = document.createElement('td')
    if (value === null) td.className = 'missing'
    td.textContent = value ?? 'not sent'
    const note = document.createElement('span')
    note.className = 'why'
    note.textContent = why
    td.append(note)
    tr.append(th, td)
    return tr
  })
  $('headers').replaceChildren(...rows)
}

// ---- delta updates (RFC 9842) -----------------------------------------------------------------------
// A browser that kept an earlier release of the module (its response said Use-As-Dictionary) sends
// that copy's SHA-256 in Available-Dictionary, and may get the new release compressed against it: dcz
// (zstd) or dcb (brotli). The page never sees which dictionary a response names (the browser takes
// the hash off the start of the body), so it remembers the module it loaded last, by name and
// SHA-256: for a delta that is normally the dictionary the browser offered.
const DELTA_CODINGS = new Set(['dcz', 'dcb'])
const LAST_MODULE = 'wasm-serve-demo-module'

/** fetch, also hashing the decoded body on a copy (the original goes to the streaming compiler). */
function fetchAndHash (url, init) {
  return fetch(url, init).then((response) => {
    demo.hashing = response.ok && globalThis.crypto?.subtle
      ? response.clone().arrayBuffer().then((bytes) => crypto.subtle.digest('SHA-256', bytes)).then(toBase64, () => undefined)
      : Promise.resolve(undefined)
    return response
  })
}

function toBase64 (buffer) {
  return btoa(String.fromCharCode(...new Uint8Array(buffer)))
}

function lastModule () {
  try { return JSON.parse(localStorage.getItem(LAST_MODULE)) ?? undefined } catch { return undefined }
}

function rememberModule (entry) {
  try { localStorage.setItem(LAST_MODULE, JSON.stringify(entry)) } catch {} // storage off: nothing to compare with next time
}

const fileName = (url) => new URL(url, location.href).pathname.split('/').pop()

/**
 * The version a dcz/dcb module was made from, as far as the page can know: on a download, the module
 * it loaded last (unless that is this very module); from the cache, what this module arrived as.
 */
function deltaSource (fresh, sha256, previous) {
  if (previous === undefined || sha256 === undefined) return undefined
  if (fresh) return previous.sha256 !== sha256 ? previous : undefined
  return previous.sha256 === sha256 ? previous.deltaFrom : undefined
}

/** What a dcz/dcb response saved, and the version it was made from; undefined for other encodings. */
function describeDelta (r, sha256, previous) {
  if (!DELTA_CODINGS.has(r.encoding)) return undefined
  const decoded = r.total ?? r.decodedSize
  const encoded = r.encodedSize || r.contentLength
  // A cached copy of a delta still says dcz: it arrived as one on the visit that downloaded it.
  const fresh = r.cache === 'network' || r.cache === undefined
  const from = deltaSource(fresh, sha256, previous)
  return {
    coding: r.encoding,
    fresh,
    from: from?.name,
    fromVersion: from?.version,
    dictionary: from?.sha256,
    encoded,
    decoded,
    saved: encoded === undefined ? undefined : decoded - encoded,
  }
}

function showDelta (delta) {
  $('delta').hidden = false
  setText('delta-coding', delta.coding)
  const version = delta.fromVersion ? ` (SQLite ${delta.fromVersion})` : ''
  const from = delta.from ? `delta from ${delta.from}${version}` : 'delta from a version this browser kept earlier'
  setText('delta-from', delta.fresh ? from : `from the HTTP cache: it arrived as a ${from}`)
  setText('delta-saving', delta.encoded === undefined
    ? `${formatBytes(delta.decoded)} module; the bytes on the wire are unknown here`
    : `${formatBytes(delta.encoded)} instead of ${formatBytes(delta.decoded)}: ${formatBytes(delta.saved)} saved (${formatSaving(delta.encoded, delta.decoded)} smaller than the module)`)
  setText('delta-dictionary', delta.dictionary
    ? `Dictionary: the copy of ${delta.from} this browser kept (SHA-256 :${delta.dictionary}:, the hash a browser sends as Available-Dictionary to offer it).`
    : '')
}

/** Shows a delta if the module came as one, and remembers this module for the next release's. */
async function trackVersions (r) {
  const sha256 = await demo.hashing
  const previous = lastModule()
  const delta = describeDelta(r, sha256, previous)
  demo.sha256 = sha256
  demo.result.delta = delta
  if (delta !== undefined) showDelta(delta)
  if (sha256 === undefined) return
  const deltaFrom = delta?.from === undefined ? undefined : { name: delta.from, sha256: delta.dictionary, version: delta.fromVersion }
  rememberModule({ name: fileName(r.url), sha256, version: demo.sql?.[0], deltaFrom })
}

function showEnvironment () {
  const isolated = globalThis.crossOriginIsolated === true
  const pill = $('isolation')
  pill.classList.add(isolated ? 'ok' : 'off')
  pill.textContent = isolated ? 'crossOriginIsolated' : 'not cross-origin isolated'
  $('coi').innerHTML = isolated ? '<span class="yes">true</span>' : '<span class="no">false</span>'
  $('sab').innerHTML = typeof SharedArrayBuffer === 'function' ? '<span class="yes">available</span>' : '<span class="no">not available</span>'
  $('secure').innerHTML = window.isSecureContext ? '<span class="yes">yes</span>' : '<span class="no">no (brotli is only offered over HTTPS or localhost)</span>'
  setText('env-note', isolated ? 'Threads (SharedArrayBuffer + shared memory) are available.' : 'Start the server with --isolate to send COOP/COEP and enable threads.')
  showIsolation().catch(err => setText('isolation-sent', `could not read this page's headers: ${err.message}`))
  const features = detectFeatures()
  demo.features = features
  $('features').replaceChildren(...Object.entries(features).map(([name, on]) => {
    const span = document.createElement('span')
    span.className = `feature ${on ? 'on' : 'off'}`
    span.textContent = name
    return span
  }))
}

// ---- why the page is (not) cross-origin isolated (D12) -----------------------------------------------
// The page reads its own response headers (a HEAD of its URL) to tell what the server asked for from
// what the browser did: browsers ignore every isolation header outside a secure context, and only
// Chromium 137+ (desktop) knows Document-Isolation-Policy.

/** What the headers ask for: 'COOP + COEP', 'Document-Isolation-Policy', 'report-only', or null. */
function isolationAsked (headers) {
  const value = name => (headers.get(name) ?? '').split(';')[0].trim().toLowerCase()
  if (value('cross-origin-opener-policy') === 'same-origin' && ['require-corp', 'credentialless'].includes(value('cross-origin-embedder-policy'))) return 'COOP + COEP'
  if (['isolate-and-require-corp', 'isolate-and-credentialless'].includes(value('document-isolation-policy'))) return 'Document-Isolation-Policy'
  if (value('cross-origin-embedder-policy-report-only') !== '' || value('cross-origin-opener-policy-report-only') !== '') return 'report-only'
  return null
}

/** Why a page whose headers ask for isolation is not isolated; null when it is, or nothing was asked. */
function isolationReason ({ asked, isolated, secure, host, port }) {
  if (asked === null || isolated) return null
  if (!secure) return `not a secure context (plain HTTP to ${host}): browsers ignore isolation headers here. Start the server with --https, or open the page as http://localhost${port ? `:${port}` : ''} on the server's machine.`
  if (asked === 'report-only') return 'report-only mode (--isolate=report): nothing is enforced, so the page is not isolated; what would break is reported to the server.'
  if (asked === 'Document-Isolation-Policy') return 'this browser does not support Document-Isolation-Policy (Chromium 137+ on desktop does; Firefox and Safari do not), so threads are off here. --isolate (COOP + COEP) isolates in every browser, but severs cross-origin popups from their opener.'
  return 'COOP and COEP were sent, but this document is not isolated: a frame inside a page that is not isolated, or a browser without cross-origin isolation.'
}

async function showIsolation () {
  const response = await fetch(location.href, { method: 'HEAD', cache: 'no-store' })
  const asked = isolationAsked(response.headers)
  const isolated = globalThis.crossOriginIsolated === true
  const reason = isolationReason({ asked, isolated, secure: window.isSecureContext, host: location.hostname, port: location.port })
  demo.isolation = { asked, isolated, reason }
  setText('isolation-sent', asked ?? 'none')
  if (isolated) setText('env-note', `Threads (SharedArrayBuffer + shared memory) are available: isolated by ${asked ?? 'the browser'}.`)
  else if (reason !== null) setText('env-note', `Isolation was asked for (${asked}) but is off: ${reason}`)
  else setText('env-note', 'Start the server with --isolate (COOP + COEP, every browser) or --isolate=document (Document-Isolation-Policy, Chromium 137+; popups keep their opener) to enable threads.')
  $('isolation').title = reason ?? (isolated ? `crossOriginIsolated, by ${asked}` : 'not cross-origin isolated: no isolation headers were sent')
}

function showVisit () {
  const n = Number(sessionStorage.getItem('wasm-serve-visits') ?? 0) + 1
  sessionStorage.setItem('wasm-serve-visits', String(n))
  const pill = $('visit')
  pill.textContent = n === 1 ? 'first visit' : `visit ${n} in this tab`
  if (n > 1) pill.classList.add('info')
}

function showRun (r) {
  setText('exports', `${Object.keys(r.instance.exports).length} functions and objects`)
  setText('imports', `${demo.imports} (stubbed, incl. a 16 MiB memory)`)
  try {
    const row = runQuery(r.instance.exports, demo.memory, $('sql').textContent)
    demo.sql = row
    setText('sql-result', row.join('  ·  '))
  } catch (err) {
    setText('sql-result', `instantiated, but the query failed: ${err.message}`)
  }
}

function showError (err) {
  demo.state = 'failed'
  demo.error = String(err?.message ?? err)
  $('state').className = 'state failed'
  setText('state', 'Failed')
  $('progress').classList.remove('indeterminate')
  $('progress').classList.add('failed')
  const box = document.createElement('div')
  box.className = 'error-box'
  box.textContent = demo.error
  if (err?.status === 404) box.textContent += ' — the demo module is created by `node scripts/demo-wasm.mjs` (run by npm install).'
  $('progress').parentElement.querySelector('.progress-text').after(box)
}

async function main () {
  showVisit()
  showEnvironment()
  $('reload').addEventListener('click', () => { location.href = location.pathname })
  $('fresh').addEventListener('click', () => { location.href = `${location.pathname}?fresh` })
  const fresh = new URLSearchParams(location.search).has('fresh')
  try {
    setText('module-name', fileName(MODULE_URL))
    const r = await loadWasm(MODULE_URL, buildImports, { onProgress, fetch: fetchAndHash, init: fresh ? { cache: 'reload' } : undefined })
    demo.result = {
      encoding: r.encoding,
      decodedSize: r.decodedSize,
      total: r.total,
      streamed: r.streamed,
      cache: r.cache,
      transferSize: r.transferSize,
      encodedSize: r.encodedSize,
      exports: Object.keys(r.instance.exports).length,
    }
    showDelivery(r)
    showTimeline(r)
    setText('state', `Ready in ${formatMs(demo.timing.total)}`)
    $('state').className = 'state ready'
    showHeaders(r.response)
    showRun(r)
    await trackVersions(r)
    demo.state = 'ready'
  } catch (err) {
    console.error(err)
    showError(err)
  }
}

main()
