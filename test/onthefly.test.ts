import t from 'tap'
import { existsSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { brotliDecompressSync, gunzipSync } from 'node:zlib'
import { get } from './helpers/http.js'
import { until } from './helpers/poll.js'
import { etagOf, startPlugin } from './helpers/server.js'
import { JS, SITE, SQLITE, makeSite, tempDir } from './helpers/site.js'
import { zstdAvailable } from '../src/codecs.js'

// The site without the module's siblings: the server makes its encodings itself (D4).
const root = makeSite(t, Object.fromEntries(Object.entries(SITE).filter(([path]) => !path.startsWith('sqlite3.wasm.'))))
const cacheDir = tempDir(t, 'otf-cache')

t.test('a compressible file without siblings is compressed once and then served like a sibling (D4)', async t => {
  const { app, url } = await startPlugin(t, { root, compress: { cacheDir } })
  await app.wasmServe.compressionIdle()
  const br = await get(`${url}/sqlite3.wasm`, { 'accept-encoding': 'br' })
  t.equal(br.headers['content-encoding'], 'br')
  t.equal(br.headers['content-length'], String(br.body.length), 'Content-Length, never chunked')
  t.equal(br.headers['x-decoded-content-length'], String(SQLITE.length))
  t.equal(br.headers.vary, 'Accept-Encoding')
  t.equal(br.headers.etag, etagOf(br.body), 'its own content ETag')
  t.not(br.headers.etag, etagOf(SQLITE))
  t.equal(br.headers['content-type'], 'application/wasm')
  t.ok(brotliDecompressSync(br.body).equals(SQLITE), 'decodes to the module byte for byte')
  t.ok(br.body.length < SQLITE.length * 0.5, `br q11 shrinks sqlite3.wasm (${br.body.length} B)`)
  const gz = await get(`${url}/sqlite3.wasm`, { 'accept-encoding': 'gzip' })
  t.ok(gunzipSync(gz.body).equals(SQLITE))
  const js = await get(`${url}/app.js`, { 'accept-encoding': 'br' })
  t.equal(brotliDecompressSync(js.body).toString(), JS.toString())
  t.equal((await get(`${url}/sqlite3.wasm`, { 'accept-encoding': 'br', 'if-none-match': br.headers.etag! })).status, 304)
  const tiny = await get(`${url}/tiny.wasm`, { 'accept-encoding': 'br' })
  t.equal(tiny.headers['content-encoding'], undefined, 'files under minSize are never encoded')
  t.equal(tiny.headers.vary, undefined, 'and never vary')
  t.equal((await get(`${url}/logo.png`, { 'accept-encoding': 'br' })).headers['content-encoding'], undefined)
  const cached = readdirSync(cacheDir)
  t.ok(cached.some(f => f === `${etagOf(SQLITE).replaceAll('"', '')}.br`), 'the encoding is cached under the content hash')
  t.notOk(readdirSync(root).some(f => f.endsWith('.br') || f.endsWith('.gz')), 'nothing is written into the root')
})

t.test('a restart reuses the cache directory and a streamed cache entry keeps its length (D4, D5)', async t => {
  const { app, url } = await startPlugin(t, { root, compress: { cacheDir }, memoryBudget: 0 })
  await app.wasmServe.compressionIdle()
  const br = await get(`${url}/sqlite3.wasm`, { 'accept-encoding': 'br' })
  t.equal(br.headers['content-encoding'], 'br')
  t.equal(br.headers['content-length'], String(br.body.length))
  t.ok(brotliDecompressSync(br.body).equals(SQLITE))
})

t.test('a file beyond the memory budget gets gzip, encoded from disk into the cache directory (D4)', async t => {
  const freshCache = tempDir(t, 'otf-disk')
  const { app, url } = await startPlugin(t, { root, compress: { cacheDir: freshCache }, memoryBudget: 0 })
  await app.wasmServe.compressionIdle()
  const gz = await get(`${url}/sqlite3.wasm`, { 'accept-encoding': 'br, gzip' })
  t.equal(gz.headers['content-encoding'], 'gzip', 'brotli would need more working memory than the budget allows')
  t.equal(gz.headers['content-length'], String(gz.body.length))
  t.equal(gz.headers.etag, etagOf(gz.body), 'the ETag is the hash of the bytes sent')
  t.equal(gz.headers['x-decoded-content-length'], String(SQLITE.length))
  t.ok(gunzipSync(gz.body).equals(SQLITE))
  t.ok(readdirSync(freshCache).includes(`${etagOf(SQLITE).replaceAll('"', '')}.gzip`))
  t.notOk(readdirSync(freshCache).some(f => f.endsWith('.tmp')), 'no temp files left')
})

t.test('without 32 MB of headroom in the budget only gzip is made on the fly (encoder memory is charged to it)', async t => {
  const freshCache = tempDir(t, 'otf-tight')
  const { app, url } = await startPlugin(t, { root, compress: { cacheDir: freshCache }, memoryBudget: '8MB' })
  await app.wasmServe.compressionIdle()
  const res = await get(`${url}/sqlite3.wasm`, { 'accept-encoding': 'br, gzip' })
  t.equal(res.headers['content-encoding'], 'gzip')
  t.ok(gunzipSync(res.body).equals(SQLITE))
  t.notOk(readdirSync(freshCache).some(f => f.endsWith('.br')), 'no brotli was run')
})

t.test('a modified file is compressed again, never served with a stale encoding (D4, D16)', async t => {
  const { app, url } = await startPlugin(t, { root, compress: { cacheDir }, watch: true })
  await app.wasmServe.compressionIdle()
  const changed = Buffer.from('export const changed = true\n'.repeat(200))
  writeFileSync(join(root, 'app.js'), changed)
  const res = await until(async () => {
    const got = await get(`${url}/app.js`, { 'accept-encoding': 'br' })
    const body = got.headers['content-encoding'] === 'br' ? brotliDecompressSync(got.body) : got.body
    t.ok(body.equals(changed) || body.equals(JS), 'every response is the old or the new file, whole')
    return got.headers['content-encoding'] === 'br' && body.equals(changed) && got
  }, { timeout: 10_000, what: 'the new app.js to be served in br' })
  t.equal(res.headers['content-encoding'], 'br')
  t.ok(brotliDecompressSync(res.body).equals(changed))
  t.equal(res.headers['x-decoded-content-length'], String(changed.length))
})

t.test('compress.onTheFly false leaves files as they are', async t => {
  const { url } = await startPlugin(t, { root, compress: { onTheFly: false } })
  const res = await get(`${url}/sqlite3.wasm`, { 'accept-encoding': 'br' })
  t.equal(res.headers['content-encoding'], undefined)
  t.equal(res.headers.vary, undefined)
})

t.test('the cache directory may not be inside the root', async t => {
  await t.rejects(startPlugin(t, { root, compress: { cacheDir: join(root, 'cache') } }), /outside the served root/)
  t.notOk(existsSync(join(root, 'cache')))
})

t.test('a file Varies only when an encoding can be made for it: zstd alone where zlib has none (D4, D7)', async t => {
  const freshCache = tempDir(t, 'otf-zstd')
  const { app, url } = await startPlugin(t, { root, precompressed: ['zstd'], compress: { cacheDir: freshCache } })
  await app.wasmServe.compressionIdle()
  const res = await get(`${url}/app.js`, { 'accept-encoding': 'zstd' })
  t.ok(res.body.length > 0)
  if (zstdAvailable) {
    t.equal(res.headers['content-encoding'], 'zstd', 'encoded on the fly')
    t.equal(res.headers.vary, 'Accept-Encoding')
  } else {
    t.equal(res.headers['content-encoding'], undefined, `Node ${process.version} cannot make zstd: identity`)
    t.equal(res.headers.vary, undefined, 'and no Vary: no other representation will ever exist')
  }
})

t.test('a project root: node_modules/ files are encoded on their first request, not in the background, and the root is named a likely mistake', async t => {
  const project = makeSite(t, { 'package.json': '{"name":"app"}', 'app.js': JS, 'node_modules/dep/index.js': JS, 'lib/node_modules/x/y.js': JS, 'target/debug/build.js': JS, 'assets/target.js': JS })
  const { app, url, logs } = await startPlugin(t, { root: project, compress: { cacheDir: tempDir(t, 'otf-cache-project') } })
  await app.wasmServe.compressionIdle()
  t.equal((await get(`${url}/app.js`, { 'accept-encoding': 'br' })).headers['content-encoding'], 'br', 'the app is encoded in the background')
  t.equal((await get(`${url}/assets/target.js`, { 'accept-encoding': 'br' })).headers['content-encoding'], 'br', 'a file named like such a folder is an asset')
  for (const path of ['node_modules/dep/index.js', 'lib/node_modules/x/y.js', 'target/debug/build.js']) {
    const first = await get(`${url}/${path}`, { 'accept-encoding': 'br' })
    t.equal(first.status, 200, `${path} is served`)
    t.equal(first.headers['content-encoding'], undefined, `${path}: not encoded before its first request`)
    t.ok(first.body.equals(JS))
    await app.wasmServe.compressionIdle()
    const second = await get(`${url}/${path}`, { 'accept-encoding': 'br' })
    t.equal(second.headers['content-encoding'], 'br', `${path}: encoded once asked for`)
    t.equal(brotliDecompressSync(second.body).toString(), JS.toString())
  }
  t.ok(logs.some(l => l.level === 40 && String(l.msg).startsWith('serving a project root (package.json, node_modules/): did you mean its build output')), 'warned at start-up')
})

t.test('a root with package.json but no node_modules/ is not warned about', async t => {
  const { logs } = await startPlugin(t, { root: makeSite(t, { 'package.json': '{"name":"app"}', 'app.js': JS }) })
  t.notOk(logs.some(l => String(l.msg).startsWith('serving a project root')))
})
