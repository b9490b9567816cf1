/**
 * The CLI's fast path (src/fast-path.ts): files held in memory are answered before Fastify's router.
 * It must answer exactly what the Fastify route answers — status, every header, body — for every
 * request it takes, and leave every other request to Fastify.
 */
import t from 'tap'
import type { Got, Method, RequestHeaders } from './helpers/http.js'
import { Agent } from 'undici'
import { get, getWith } from './helpers/http.js'
import { connectH2, h2get, selfSigned } from './helpers/transports.js'
import { until } from './helpers/poll.js'
import { etagOf, startCliApp } from './helpers/server.js'
import { makeSite, PAGE, SITE, SQLITE } from './helpers/site.js'
import type { WasmServeOptions } from '../src/options.js'

const FILES = { ...SITE, 'docs/index.html': PAGE, '.env': 'SECRET=1', 'big.data': Buffer.alloc(300_000, 7) }

/** Requests over the site: hits in every coding, validators, CORS, and the cases the fast path leaves to Fastify. */
const REQUESTS: Array<{ path: string, headers?: RequestHeaders, method?: Method }> = [
  { path: '/tiny.wasm' },
  { path: '/tiny.wasm', method: 'HEAD' },
  { path: '/sqlite3.wasm', headers: { 'accept-encoding': 'br' } },
  { path: '/sqlite3.wasm', headers: { 'accept-encoding': 'gzip;q=1, br;q=0.5' } },
  { path: '/sqlite3.wasm', headers: { 'accept-encoding': 'br;q=0, gzip;q=0, identity;q=0' } },
  { path: '/sqlite3.wasm', headers: { 'accept-encoding': 'br', 'if-none-match': etagOf(SQLITE) } },
  { path: '/sqlite3.wasm', headers: { 'if-none-match': etagOf(SQLITE) } },
  { path: '/sqlite3.wasm', headers: { 'if-none-match': '"other"' } },
  { path: '/tiny.wasm', headers: { 'if-modified-since': new Date(Date.now() + 60_000).toUTCString() } },
  { path: '/tiny.wasm', headers: { origin: 'https://a.example' } },
  { path: '/tiny.wasm', headers: { origin: 'https://evil.example' } },
  { path: '/tiny.wasm', headers: { range: 'bytes=0-3' } },
  { path: '/tiny.wasm?v=3' },
  { path: '/' },
  { path: '/index.html', method: 'HEAD' },
  { path: '/docs' },
  { path: '/docs/' },
  { path: '/missing.wasm' },
  { path: '/.env' },
  { path: '/%2e%2e/etc/passwd' },
  { path: '/Build/game.wasm', headers: { 'accept-encoding': 'br' } },
  { path: '/Build/game.wasm.br' },
  { path: '/big.data' },
  { path: '/big.data', method: 'HEAD' },
  { path: '/healthz' },
  { path: '/tiny.wasm', method: 'OPTIONS' },
  { path: '/tiny.wasm', method: 'OPTIONS', headers: { origin: 'https://a.example', 'access-control-request-method': 'GET' } },
]

const OPTION_SETS: Array<[string, Omit<WasmServeOptions, 'root'>]> = [
  ['defaults', {}],
  ['isolation, a list of CORS origins, a preload, a small memory budget', {
    crossOriginIsolation: 'require-corp', cors: { origin: ['https://a.example'] }, preload: ['/sqlite3.wasm'], memoryBudget: '200KB',
  }],
  ['CORS for any origin, document isolation', { cors: true, crossOriginIsolation: 'document' }],
  ['the security preset, report-only isolation', { security: true, crossOriginIsolation: 'report' }],
]

/** Everything but the Date a response carries, which moves with the clock. */
function comparable (got: Got) {
  const { date: _date, ...headers } = got.headers
  return { status: got.status, headers, body: got.body.toString('base64') }
}

for (const [name, options] of OPTION_SETS) {
  t.test(`the fast path answers as the Fastify route does: ${name}`, async t => {
    const root = makeSite(t, FILES)
    const fast = await startCliApp(t, { root, ...options })
    const slow = await startCliApp(t, { root, ...options }, undefined, { fastPath: false })
    await Promise.all([fast.app.wasmServe.compressionIdle(), slow.app.wasmServe.compressionIdle()])
    for (const { path, headers = {}, method = 'GET' } of REQUESTS) {
      const [a, b] = await Promise.all([get(fast.url + path, headers, method), get(slow.url + path, headers, method)])
      t.same(comparable(a), comparable(b), `${method} ${path} ${JSON.stringify(headers)}`)
    }
  })
}

t.test('over HTTP/2 and HTTP/1.1 with TLS the fast path answers as the Fastify route does', async t => {
  const root = makeSite(t, FILES)
  const tls = await selfSigned()
  const options = { root, cors: { origin: ['https://a.example'] }, crossOriginIsolation: 'require-corp' as const, memoryBudget: '200KB' }
  let reachedFastify = 0
  const fast = await startCliApp(t, options, tls, { before: app => app.addHook('onRequest', (_request, _reply, done) => { reachedFastify++; done() }) })
  const slow = await startCliApp(t, options, tls, { fastPath: false })
  await Promise.all([fast.app.wasmServe.compressionIdle(), slow.app.wasmServe.compressionIdle()])
  const [a, b] = [connectH2(t, fast.url), connectH2(t, slow.url)]
  for (const { path, headers = {}, method = 'GET' } of REQUESTS.filter(r => r.method !== 'OPTIONS')) {
    const [x, y] = await Promise.all([h2get(a, path, headers, method), h2get(b, path, headers, method)])
    t.same(comparable(x), comparable(y), `HTTP/2 ${method} ${path} ${JSON.stringify(headers)}`)
  }
  const before = reachedFastify
  t.equal((await h2get(a, '/tiny.wasm')).status, 200)
  t.equal(reachedFastify - before, 0, 'an HTTP/2 hit skips Fastify too')
  const dispatcher = new Agent({ connect: { rejectUnauthorized: false } })
  t.teardown(() => dispatcher.close())
  for (const { path, headers = {}, method = 'GET' } of REQUESTS) {
    const [x, y] = await Promise.all([getWith(fast.url + path, { headers, method, dispatcher }), getWith(slow.url + path, { headers, method, dispatcher })])
    t.same(comparable(x), comparable(y), `HTTP/1.1 over TLS ${method} ${path} ${JSON.stringify(headers)}`)
  }
})

t.test('files in memory skip Fastify; every other request reaches it', async t => {
  const root = makeSite(t, FILES)
  let reachedFastify = 0
  const server = await startCliApp(t, { root, memoryBudget: '200KB' }, undefined, {
    before: app => app.addHook('onRequest', (_request, _reply, done) => { reachedFastify++; done() }),
  })
  const through = async (path: string, headers: RequestHeaders = {}, method: Method = 'GET') => {
    const before = reachedFastify
    const got = await get(server.url + path, headers, method)
    return { status: got.status, fastify: reachedFastify - before }
  }
  t.same(await through('/tiny.wasm'), { status: 200, fastify: 0 })
  t.same(await through('/tiny.wasm', {}, 'HEAD'), { status: 200, fastify: 0 })
  t.same(await through('/', { 'if-none-match': etagOf(Buffer.from(PAGE)) }), { status: 304, fastify: 0 })
  t.same(await through('/big.data', {}, 'HEAD'), { status: 200, fastify: 0 }, 'HEAD needs no bytes')
  t.same(await through('/big.data'), { status: 200, fastify: 1 }, 'streamed from disk: beyond the memory budget')
  t.same(await through('/tiny.wasm', { range: 'bytes=0-1' }), { status: 206, fastify: 1 })
  t.same(await through('/missing.wasm'), { status: 404, fastify: 1 })
  t.same(await through('/docs'), { status: 301, fastify: 1 })
  t.same(await through('/healthz'), { status: 200, fastify: 1 })
})

t.test('a request answered by the fast path is logged with the fields of any other request line', async t => {
  const root = makeSite(t, FILES)
  const server = await startCliApp(t, { root, logLevel: 'info' })
  await get(server.url + '/sqlite3.wasm', { 'accept-encoding': 'br' })
  await get(server.url + '/missing.wasm')
  await until(() => server.logs.filter(l => l.msg === 'request').length === 2, { what: 'two request lines' })
  const [hit, miss] = server.logs.filter(l => l.msg === 'request')
  t.match(hit, { method: 'GET', url: '/sqlite3.wasm', status: 200, encoding: 'br', bytes: Number((await get(server.url + '/sqlite3.wasm', { 'accept-encoding': 'br' })).headers['content-length']) })
  t.match(miss, { method: 'GET', url: '/missing.wasm', status: 404, encoding: 'identity' })
  t.same(Object.keys(hit!).filter(k => k !== 'level' && k !== 'time').sort(), Object.keys(miss!).filter(k => k !== 'level' && k !== 'time').sort(), 'the same fields')
  t.not(hit!.reqId, miss!.reqId, 'request ids from one counter')
  t.type(hit!.ms, 'number')
})
