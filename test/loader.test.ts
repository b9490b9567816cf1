/**
 * The browser loader (public/loader.js) run in Node against a real HTTP server: Node's fetch and
 * WebAssembly streaming APIs behave like a browser's for everything tested here (decoded bodies,
 * the application/wasm type check, clone/tee, AbortSignal).
 */
import t, { type Test } from 'tap'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { loadWasm, detectFeatures, pickVariant, isWasmType, WasmLoadError, type WasmProgress } from '../public/loader.js'
import { BR, GZ, SQLITE, TINY } from './helpers/site.js'

const HTML = Buffer.from('<!doctype html><title>Not found</title><h1>404</h1>\n')

/** Import object for sqlite3.wasm without its Emscripten glue: stubs and a 16 MiB memory. */
function sqliteImports (module: WebAssembly.Module): WebAssembly.Imports {
  const imports: Record<string, Record<string, WebAssembly.ImportValue>> = {}
  for (const d of WebAssembly.Module.imports(module)) {
    imports[d.module] ??= {}
    imports[d.module][d.name] = d.kind === 'memory'
      ? new WebAssembly.Memory({ initial: 256, maximum: 32768 })
      : () => 0
  }
  return imports
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void
const routes = new Map<string, Handler>()
const hits = new Map<string, number>()
const server = createServer((req, res) => {
  const path = req.url ?? '/'
  hits.set(path, (hits.get(path) ?? 0) + 1)
  const handler = routes.get(path)
  if (handler) return handler(req, res)
  res.writeHead(404, { 'content-type': 'text/html; charset=utf-8', 'content-length': HTML.length })
  res.end(HTML)
})
await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
t.teardown(() => { server.closeAllConnections(); server.close() })

function serve (path: string, body: Buffer, headers: Record<string, string | number>): string {
  routes.set(path, (_req, res) => { res.writeHead(200, headers); res.end(body) })
  return base + path
}

/** Collects progress events and checks the invariants every event must hold. */
function recorder (t: Test) {
  const events: WasmProgress[] = []
  const onProgress = (p: WasmProgress) => {
    if (p.total !== undefined && p.loaded > p.total) t.fail(`progress above 100 %: ${p.loaded}/${p.total}`)
    const last = events.at(-1)
    if (last && p.loaded < last.loaded) t.fail('progress went backwards')
    if (last?.done) t.fail('progress event after the final one')
    events.push(p)
  }
  return { events, onProgress }
}

t.test('progress ends at exactly the decoded size for a br response with X-Decoded-Content-Length', async t => {
  const url = serve('/sqlite3.br.wasm', BR, {
    'content-type': 'application/wasm',
    'content-encoding': 'br',
    'content-length': BR.length,
    'x-decoded-content-length': SQLITE.length,
  })
  const { events, onProgress } = recorder(t)
  const result = await loadWasm(url, sqliteImports, { onProgress })
  t.equal(result.encoding, 'br')
  t.equal(result.streamed, true, 'compiled with the streaming API (code cache eligible)')
  t.equal(result.contentLength, BR.length, 'Content-Length is the encoded size')
  t.equal(result.total, SQLITE.length, 'total comes from X-Decoded-Content-Length')
  t.equal(result.decodedSize, SQLITE.length)
  t.ok(events.length > 2, 'several progress events')
  t.same(events[0], { loaded: 0, total: SQLITE.length, done: false }, 'first event announces the total')
  t.ok(events.slice(0, -1).every(e => e.total === SQLITE.length), 'the total is known throughout')
  t.same(events.at(-1), { loaded: SQLITE.length, total: SQLITE.length, done: true }, 'ends at exactly 100 %')
  t.equal(Object.keys(result.instance.exports).length, 252, 'instantiated for real')
  t.ok(result.timing.ready >= result.timing.downloaded && result.timing.downloaded >= result.timing.headers)
})

t.test('identity response: the total is Content-Length', async t => {
  const url = serve('/identity.wasm', SQLITE, { 'content-type': 'application/wasm', 'content-length': SQLITE.length })
  const { events, onProgress } = recorder(t)
  const result = await loadWasm(url, sqliteImports, { onProgress })
  t.equal(result.encoding, 'identity')
  t.equal(events[0].total, SQLITE.length)
  t.same(events.at(-1), { loaded: SQLITE.length, total: SQLITE.length, done: true })
})

t.test('encoded response without a decoded length: indeterminate, never the encoded Content-Length', async t => {
  const url = serve('/gzip.wasm', GZ, { 'content-type': 'application/wasm', 'content-encoding': 'gzip', 'content-length': GZ.length })
  const { events, onProgress } = recorder(t)
  const result = await loadWasm(url, sqliteImports, { onProgress })
  t.equal(result.encoding, 'gzip')
  t.equal(result.total, undefined)
  t.ok(events.slice(0, -1).every(e => e.total === undefined), 'indeterminate while downloading')
  t.same(events.at(-1), { loaded: SQLITE.length, total: SQLITE.length, done: true }, 'the last event is 100 %')
})

t.test('no length at all (chunked): indeterminate, then 100 %', async t => {
  routes.set('/chunked.wasm', (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/wasm' })
    res.write(SQLITE.subarray(0, 100_000))
    // The rest a moment later, as a server streaming what it produces: the client sees progress first.
    setTimeout(() => res.end(SQLITE.subarray(100_000)), 10)
  })
  const { events, onProgress } = recorder(t)
  const result = await loadWasm(`${base}/chunked.wasm`, sqliteImports, { onProgress })
  t.equal(result.total, undefined)
  t.equal(events[0].total, undefined)
  t.same(events.at(-1), { loaded: SQLITE.length, total: SQLITE.length, done: true })
})

t.test('a decoded length that is too small never shows more than 100 %', async t => {
  const url = serve('/liar.wasm', BR, {
    'content-type': 'application/wasm',
    'content-encoding': 'br',
    'x-decoded-content-length': 1000,
  })
  const { events, onProgress } = recorder(t)
  await loadWasm(url, sqliteImports, { onProgress })
  t.ok(events.some(e => e.total === undefined && !e.done), 'turns indeterminate once the header is proven wrong')
  t.same(events.at(-1), { loaded: SQLITE.length, total: SQLITE.length, done: true })
})

t.test('works without onProgress, with a plain import object and a URL object', async t => {
  const url = serve('/tiny.wasm', TINY, { 'content-type': 'application/wasm' })
  const result = await loadWasm(new URL(url))
  t.equal(typeof result.instance.exports.f, 'function')
  t.equal(result.decodedSize, TINY.length)
  t.equal(result.attempts, 1)
})

t.test('a wrong Content-Type falls back to arrayBuffer with exactly one warning naming the header', async t => {
  for (const type of ['application/octet-stream', 'application/wasm; charset=utf-8', '']) {
    const url = serve('/wrong-type.wasm', SQLITE, type ? { 'content-type': type, 'content-length': SQLITE.length } : { 'content-length': SQLITE.length })
    const warnings = t.capture(console, 'warn')
    const { events, onProgress } = recorder(t)
    const result = await loadWasm(url, sqliteImports, { onProgress })
    const calls = warnings()
    t.equal(calls.length, 1, `one warning for ${JSON.stringify(type)}`)
    t.match(String(calls[0].args[0]), 'Content-Type: application/wasm')
    t.match(String(calls[0].args[0]), url, 'the warning names the URL')
    t.equal(result.streamed, false)
    t.equal(Object.keys(result.instance.exports).length, 252)
    t.same(events.at(-1), { loaded: SQLITE.length, total: SQLITE.length, done: true })
  }
})

t.test('a 404 throws a clear error naming the URL and the status, without retrying', async t => {
  const url = `${base}/missing.wasm`
  const err = await loadWasm(url, {}, { retryDelay: 1 }).catch(e => e)
  t.type(err, WasmLoadError)
  t.equal(err.status, 404)
  t.match(err.message, url)
  t.match(err.message, 'HTTP 404')
  t.equal(hits.get('/missing.wasm'), 1, 'a 4xx is not retried')
})

t.test('an HTML page answered with 200 (SPA fallback) is reported, never compiled', async t => {
  const url = serve('/spa.wasm', HTML, { 'content-type': 'text/html; charset=utf-8' })
  const warnings = t.capture(console, 'warn')
  const err = await loadWasm(url).catch(e => e)
  t.type(err, WasmLoadError)
  t.match(err.message, 'is not a WebAssembly module')
  t.match(err.message, '<!do')
  t.equal(warnings().length, 1)
})

t.test('HTML served as application/wasm: a clear error instead of "expected magic word"', async t => {
  const url = serve('/html-as-wasm.wasm', HTML, { 'content-type': 'application/wasm' })
  const err = await loadWasm(url).catch(e => e)
  t.type(err, WasmLoadError)
  t.match(err.message, 'is not a WebAssembly module')
  t.type(err.cause, WebAssembly.CompileError, 'the compiler error is kept as the cause')
})

t.test('a broken module rejects with the CompileError and is not retried', async t => {
  const broken = Buffer.concat([TINY.subarray(0, 8), Buffer.from([0x01, 0xff])])
  const url = serve('/broken.wasm', broken, { 'content-type': 'application/wasm' })
  const err = await loadWasm(url, {}, { retryDelay: 1 }).catch(e => e)
  t.type(err, WebAssembly.CompileError)
  t.equal(hits.get('/broken.wasm'), 1)
})

t.test('network errors are retried with backoff, then succeed', async t => {
  let n = 0
  routes.set('/flaky.wasm', (_req, res) => {
    n++
    if (n === 1) return res.socket?.destroy() // connection reset before any response
    if (n === 2) { // reset in the middle of the body
      res.writeHead(200, { 'content-type': 'application/wasm', 'content-length': SQLITE.length })
      res.write(SQLITE.subarray(0, 50_000), () => res.socket?.destroy())
      return
    }
    if (n === 3) { res.writeHead(503); return res.end() }
    res.writeHead(200, { 'content-type': 'application/wasm', 'content-length': SQLITE.length })
    res.end(SQLITE)
  })
  const started = Date.now()
  const result = await loadWasm(`${base}/flaky.wasm`, sqliteImports, { retries: 3, retryDelay: 20 })
  t.equal(result.attempts, 4)
  t.equal(result.decodedSize, SQLITE.length)
  t.ok(Date.now() - started >= 20 + 40 + 80, 'waited 20, 40 and 80 ms between attempts')
})

t.test('retries are bounded: the last network error is thrown', async t => {
  let n = 0
  routes.set('/down.wasm', (_req, res) => { n++; res.socket?.destroy() })
  const err = await loadWasm(`${base}/down.wasm`, {}, { retries: 2, retryDelay: 1 }).catch(e => e)
  t.type(err, WasmLoadError)
  t.match(err.message, 'Network error while loading')
  t.equal(err.retryable, true)
  t.equal(n, 3, 'one attempt plus two retries')
})

t.test('abort during the download rejects with the AbortError and stops retrying', async t => {
  routes.set('/slow.wasm', (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/wasm', 'content-length': SQLITE.length })
    res.write(SQLITE.subarray(0, 64_000)) // and never the rest
  })
  const controller = new AbortController()
  const onProgress = (p: WasmProgress) => { if (p.loaded > 0) controller.abort() }
  const err = await loadWasm(`${base}/slow.wasm`, sqliteImports, { onProgress, signal: controller.signal, retryDelay: 1 }).catch(e => e)
  t.equal(err.name, 'AbortError')
  t.equal(hits.get('/slow.wasm'), 1)
})

t.test('abort during a backoff wait, and an already aborted signal', async t => {
  routes.set('/reset.wasm', (_req, res) => { res.socket?.destroy() })
  const controller = new AbortController()
  let attempts = 0
  // Abort once the first attempt has failed and the loader has gone on to its backoff: the failure
  // settles through promise callbacks only, so by the next turn of the event loop it is waiting.
  const failing: typeof fetch = (input, init) => {
    attempts++
    return fetch(input, init).catch((err: unknown) => { setImmediate(() => controller.abort()); throw err })
  }
  const started = Date.now()
  const err = await loadWasm(`${base}/reset.wasm`, {}, { signal: controller.signal, retryDelay: 10_000, fetch: failing }).catch(e => e)
  t.equal(err.name, 'AbortError')
  t.equal(attempts, 1, 'aborted during the backoff, before a second attempt')
  t.ok(Date.now() - started < 5000, 'did not sit out the backoff')
  const aborted = await loadWasm(`${base}/tiny.wasm`, {}, { signal: AbortSignal.abort() }).catch(e => e)
  t.equal(aborted.name, 'AbortError')
})

t.test('fetch options pass through, and an injected fetch is used', async t => {
  const seen: RequestInit[] = []
  const url = serve('/tiny2.wasm', TINY, { 'content-type': 'application/wasm' })
  const result = await loadWasm(url, {}, {
    init: { cache: 'no-store', headers: { 'x-test': '1' } },
    fetch: (input, init) => { seen.push(init ?? {}); return fetch(input, init) },
  })
  t.equal(result.status, 200)
  t.equal(seen[0].cache, 'no-store')
  t.ok(seen[0].signal === undefined, 'no signal unless given')
})

t.test('isWasmType accepts exactly application/wasm', async t => {
  t.ok(isWasmType('application/wasm'))
  t.ok(isWasmType(' Application/WASM '))
  t.notOk(isWasmType('application/wasm;'))
  t.notOk(isWasmType('application/wasm; charset=utf-8'))
  t.notOk(isWasmType('application/octet-stream'))
  t.notOk(isWasmType(null))
})

t.test('detectFeatures and pickVariant', async t => {
  const features = detectFeatures()
  for (const name of ['simd', 'threads', 'exceptions', 'tailCall', 'bulkMemory', 'signExtension']) {
    t.equal(features[name as keyof typeof features], true, `${name} (supported by every Node >= 20)`)
  }
  t.ok(Object.values(features).every(v => typeof v === 'boolean'))
  const variants = { 'app.simd-threads.wasm': ['simd', 'threads'], 'app.simd.wasm': ['simd'], 'app.wasm': [] } as const
  t.equal(pickVariant(variants), 'app.simd-threads.wasm')
  t.equal(pickVariant(variants, { simd: true, threads: false }), 'app.simd.wasm')
  t.equal(pickVariant(variants, {}), 'app.wasm')
  t.throws(() => pickVariant({ 'app.simd.wasm': ['simd'] }, { simd: false }), /app\.simd\.wasm needs simd/)
})
