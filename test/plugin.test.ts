import t from 'tap'
import { request } from 'undici'
import { gunzipSync, brotliDecompressSync } from 'node:zlib'
import type { FastifyInstance } from 'fastify'
import compress from '@fastify/compress'
import { join, resolve } from 'node:path'
import { OptionsError, type WasmServePluginOptions } from '../src/plugin.js'
import { get } from './helpers/http.js'
import { until } from './helpers/poll.js'
import { startPlugin } from './helpers/server.js'
import { rmSync } from 'node:fs'
import { BR, JS, SQLITE, makeSite, tempDir, writeFiles } from './helpers/site.js'

const root = makeSite(t)

t.test('serves under a prefix next to the app\'s own routes', async t => {
  const { url } = await startPlugin(t, { root, prefix: '/static' }, {
    before: app => {
      app.get('/api/hello', async () => ({ hello: 'world' }))
      app.get('/static/special', async () => 'app route wins')
    },
  })
  const wasm = await get(`${url}/static/sqlite3.wasm`, { 'accept-encoding': 'br' })
  t.equal(wasm.status, 200)
  t.ok(wasm.body.equals(BR))
  t.same(JSON.parse((await get(`${url}/api/hello`)).body.toString()), { hello: 'world' })
  t.equal((await get(`${url}/static/special`)).body.toString(), 'app route wins')
  t.equal((await get(`${url}/sqlite3.wasm`)).status, 404, 'nothing served outside the prefix')
  const noIndex = await get(`${url}/static/Build`)
  t.equal(noIndex.status, 404, 'Build has no index.html')
  const missing = await get(`${url}/static/nope.wasm`)
  t.equal(missing.status, 404)
  t.match(missing.headers['content-type'], /json/, 'misses fall through to the app\'s 404 handler')
  t.equal((await request(`${url}/static/x`, { method: 'POST' })).statusCode, 404, 'the plugin leaves other methods to the app by default')
})

t.test('with @fastify/compress registered, responses are never encoded twice', async t => {
  const withCompress = (app: FastifyInstance) => app.register(compress, { global: true, threshold: 0 })
  const apiRoute = (app: FastifyInstance) => app.get('/api/data', async () => ({ text: 'x'.repeat(5000) }))
  for (const order of ['compress first', 'compress after']) {
    const { url } = await startPlugin(t, { root }, order === 'compress first'
      ? { before: withCompress, after: apiRoute }
      : { after: async app => { await withCompress(app); apiRoute(app) } })
    const br = await get(`${url}/sqlite3.wasm`, { 'accept-encoding': 'br' })
    t.equal(br.headers['content-encoding'], 'br', order)
    t.ok(brotliDecompressSync(br.body).equals(SQLITE), `${order}: one brotli layer decodes to the module`)
    t.equal(br.headers['content-length'], String(br.body.length))
    const js = await get(`${url}/app.js`, { 'accept-encoding': 'gzip' })
    const decoded = js.headers['content-encoding'] === 'gzip' ? gunzipSync(js.body) : js.body
    t.equal(decoded.toString(), JS.toString(), `${order}: app.js decodes to the file exactly once`)
    const api = await get(`${url}/api/data`, { 'accept-encoding': 'gzip' })
    t.equal(api.headers['content-encoding'], 'gzip', `${order}: the app's own routes are still compressed`)
  }
})

t.test('bad plugin options are rejected at registration with their JSON paths', async t => {
  // @ts-expect-error wrong types on purpose
  const err = await startPlugin(t, { root, memoryBudget: 'lots', routes: [{ match: '*.html', bogus: 1 }], dotfiles: 'maybe' }).then(() => null, (e: unknown) => e)
  t.ok(err instanceof OptionsError)
  const paths = (err as OptionsError).problems.map(p => p.path).sort()
  t.same(paths, ['/dotfiles', '/memoryBudget', '/routes/0'])
  t.match((err as Error).message, /unknown key "bogus"/)
})

/** What registering the plugin with `options` rejects with (undefined if it starts). */
async function refusal (options: Record<string, unknown>): Promise<unknown> {
  return startPlugin(t, options as unknown as WasmServePluginOptions).then(() => undefined, (err: unknown) => err)
}

t.test('a root that is missing, null, not found or a file is an OptionsError at /root naming wasm-serve and the value', async t => {
  const file = join(root, 'index.html')
  const cases: Array<[string, Record<string, unknown>, unknown, string]> = [
    ['no root', {}, null, '/root: is required: the directory wasm-serve serves'],
    ['root: null', { root: null }, null, '/root: is required: the directory wasm-serve serves'],
    ['a root not found', { root: '/nonexistent/wasm-serve-root' }, '/nonexistent/wasm-serve-root', '/root: no such directory, got "/nonexistent/wasm-serve-root"'],
    ['a relative root not found', { root: 'no-such-dist' }, 'no-such-dist', `/root: no such directory (${resolve('no-such-dist')}), got "no-such-dist"`],
    ['a root that is a file', { root: file }, file, `/root: is a file, not a directory: give the directory to serve, got ${JSON.stringify(file)}`],
  ]
  for (const [what, options, value, line] of cases) {
    const err = await refusal(options)
    t.ok(err instanceof OptionsError, `${what}: an OptionsError`, { err })
    t.match(err, { code: 'WASM_SERVE_BAD_OPTIONS', option: '/root', value, problems: [{ path: '/root', value }] }, what)
    t.equal((err as Error).message, `invalid wasm-serve options:\n  ${line}`, `${what}: the message`)
  }
})

t.test('a prefix without its leading slash is an OptionsError at /prefix; trailing slashes are trimmed', async t => {
  for (const prefix of ['static', 'static/', 42]) {
    const err = await refusal({ root, prefix })
    t.ok(err instanceof OptionsError, `prefix ${JSON.stringify(prefix)}`)
    t.equal((err as Error).message, `invalid wasm-serve options:\n  /prefix: must be a URL path starting with "/", e.g. "/static"${typeof prefix === 'string' ? `, got "${prefix}"` : ', got 42'}`)
  }
  const { url } = await startPlugin(t, { root, prefix: '/static//' })
  t.equal((await get(`${url}/static/sqlite3.wasm`)).status, 200, '"/static//" serves under /static')
})

t.test('GET /prefix (no slash) redirects to /prefix/, the query kept; the app may answer it itself', async t => {
  const { url } = await startPlugin(t, { root, prefix: '/static' })
  for (const [path, location] of [['/static', '/static/'], ['/static?v=2&x', '/static/?v=2&x']]) {
    for (const method of ['GET', 'HEAD'] as const) {
      const res = await request(`${url}${path}`, { method })
      await res.body.dump()
      t.equal(res.statusCode, 301, `${method} ${path}`)
      t.equal(res.headers.location, location, `${method} ${path} → ${location}`)
    }
  }
  const index = await get(`${url}/static/`)
  t.equal(index.status, 200, '/static/ is the index page, not another redirect')
  t.match(index.headers['content-type'], /text\/html/)
  const own = await startPlugin(t, { root, prefix: '/static' }, { before: app => { app.get('/static', async () => 'the app\'s page') } })
  t.equal((await get(`${own.url}/static`)).body.toString(), 'the app\'s page', 'an app route at the prefix wins')
})

t.test('an unknown key says which key was meant', async t => {
  const cases: Array<[Record<string, unknown>, string]> = [
    [{ root, rot: 'dist' }, '/: unknown key "rot" (did you mean "root"?)'],
    [{ root, prefx: '/static' }, '/: unknown key "prefx" (did you mean "prefix"?)'],
    [{ root, memoryBuget: '64MB' }, '/: unknown key "memoryBuget" (did you mean "memoryBudget"?)'],
    [{ root, compress: { minsize: 10 } }, '/compress: unknown key "minsize" (did you mean "minSize"?)'],
    [{ root, routes: [{ match: '*', cachecontrol: 'no-store' }] }, '/routes/0: unknown key "cachecontrol" (did you mean "cacheControl"?)'],
    [{ root, colour: 'blue' }, '/: unknown key "colour"'],
  ]
  for (const [options, line] of cases) {
    const err = await refusal(options)
    t.ok(err instanceof OptionsError)
    t.equal((err as Error).message, `invalid wasm-serve options:\n  ${line}`)
  }
})

/** GET /healthz: status code and parsed body. */
async function health (url: string): Promise<{ status: number, body: unknown }> {
  const res = await request(`${url}/healthz`)
  return { status: res.statusCode, body: await res.body.json() }
}

t.test('/healthz answers 503 empty while the root has no file, 200 once one appears, 503 missing once the root is gone', async t => {
  const empty = tempDir(t, 'empty-root')
  const { url, logs } = await startPlugin(t, { root: empty, healthz: true, watch: true })
  t.same(await health(url), { status: 503, body: { status: 'empty', reason: 'the root directory has no file to serve (a volume not mounted?)' } })
  t.ok(logs.some(l => l.level === 40 && String(l.msg).includes('GET /healthz answers 503 until files appear')), 'said at start-up')
  writeFiles(empty, { 'index.html': '<!doctype html><title>t</title>' })
  await until(async () => (await health(url)).status === 200, { what: '/healthz 200 after a file appeared' })
  t.same(await health(url), { status: 200, body: { status: 'ok', files: 1 } })
  rmSync(empty, { recursive: true, force: true })
  t.same(await health(url), { status: 503, body: { status: 'missing', reason: 'the root directory is missing' } })
})

t.test('/healthz with healthzRequireFiles: false keeps an empty root healthy', async t => {
  const { url } = await startPlugin(t, { root: tempDir(t, 'empty-root'), healthz: true, healthzRequireFiles: false })
  t.same(await health(url), { status: 200, body: { status: 'ok', files: 0 } })
})

t.test('headers the server owns per representation, and unencodable preloads, are refused at registration', async t => {
  const { resolveOptions } = await import('../src/options.js')
  const err = (() => { try { resolveOptions({ preload: ['/a\ud800.wasm'], routes: [{ match: '*', headers: { Vary: 'Origin', ETag: '"x"', 'X-Fine': 'yes' } }] }) } catch (e) { return e } })()
  t.ok(err instanceof OptionsError)
  t.same((err as OptionsError).problems.map(p => p.path).sort(), ['/preload/0', '/routes/0/headers/ETag', '/routes/0/headers/Vary'])
})

t.test('close() right after a file streamed from disk does not wait for the keep-alive timeout', async t => {
  // Fastify closes idle connections on close(); a response still finishing when the client already
  // holds every byte kept its connection open for the 72 s keep-alive timeout. A race, so several rounds.
  for (let round = 0; round < 12; round++) {
    const server = await startPlugin(t, { root, memoryBudget: 0 })
    const [path, bytes] = round % 2 === 0 ? ['/sqlite3.wasm', SQLITE] : ['/app.js', JS]
    const res = await get(`${server.url}${path}`, { 'accept-encoding': 'identity' })
    t.ok(res.body.equals(bytes), `round ${round}: ${path} whole, over a keep-alive connection`)
    let closed = false
    void server.close().then(() => { closed = true })
    await until(() => closed, { timeout: 5000, what: 'close()' }).catch(() => {})
    t.ok(closed, `round ${round}: closed within 5 s (keep-alive timeout: 72 s)`)
    if (!closed) break
  }
})

t.test('a file streamed from disk to the end logs nothing about its stream', async t => {
  const { url, logs } = await startPlugin(t, { root, memoryBudget: 0 }, { logLevel: 'trace' })
  for (const [path, bytes] of [['/sqlite3.wasm', SQLITE], ['/app.js', JS]] as const) {
    t.ok((await get(`${url}${path}`, { 'accept-encoding': 'identity' })).body.equals(bytes), `${path} whole`)
  }
  // Fastify logs a stream's trouble from the body's end-of-stream callback, and a file body closes
  // before its last chunk is written: once a response has finished ("request completed", on the
  // response's finish), anything about its stream has been logged already.
  const completed = () => logs.filter(l => l.msg === 'request completed').length
  await until(() => completed() === 2, { what: 'both requests to be logged as completed' })
  t.equal(completed(), 2, 'both requests logged as completed')
  // Fastify logs "stream closed prematurely" when a response closes before its stream payload ends.
  t.same(logs.filter(l => /stream|premature/i.test(JSON.stringify(l))), [], 'no stream warnings')
})
