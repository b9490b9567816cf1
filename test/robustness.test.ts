import t from 'tap'
import { request } from 'undici'
import { spawnSync } from 'node:child_process'
import { chmodSync, readdirSync, renameSync, utimesSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { join } from 'node:path'
import { CLI, ROOT, serveCli } from './helpers/cli.js'
import { get } from './helpers/http.js'
import { until } from './helpers/poll.js'
import { etagOf, openUnder, startPlugin } from './helpers/server.js'
import { SQLITE, makeSite, tempDir } from './helpers/site.js'

t.test('a file renamed over with the same size and mtime is not sent under the old ETag (D16)', async t => {
  const a = Buffer.alloc(300_000, 'a')
  const b = Buffer.alloc(300_000, 'b')
  const root = makeSite(t, { 'data.bin': a })
  const then = new Date(Date.now() - 60_000)
  utimesSync(join(root, 'data.bin'), then, then)
  const { url } = await startPlugin(t, { root, memoryBudget: 0 })
  t.equal((await get(`${url}/data.bin`)).headers.etag, etagOf(a))
  writeFileSync(join(root, 'next.bin'), b)
  utimesSync(join(root, 'next.bin'), then, then)
  renameSync(join(root, 'next.bin'), join(root, 'data.bin'))
  const res = await get(`${url}/data.bin`)
  t.ok(res.body.equals(b), 'the new bytes')
  t.equal(res.headers.etag, etagOf(b), 'with their own ETag')
})

t.test('a client gone before the body is read leaves no open file behind', async t => {
  const root = makeSite(t, { 'big.bin': Buffer.alloc(2_000_000, 7) })
  const { url, port } = await startPlugin(t, { root, memoryBudget: 0 })
  await Promise.all(Array.from({ length: 200 }, (_, i) => new Promise<void>(resolve => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.write('GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n')
      // Gone at different points of the response: at once, or 1 or 2 ms after asking.
      setTimeout(() => { socket.destroy(); resolve() }, i % 3)
    })
    socket.on('error', () => resolve())
  })))
  await until(() => openUnder(root) === 0, { timeout: 2500, what: 'every file handle to be closed' })
  t.equal(openUnder(root), 0, 'every file handle was closed')
  t.equal((await get(`${url}/big.bin`)).status, 200, 'and the server still answers')
})

t.test('a lone archive.tar.gz is a download, not an encoding of a tar (D3)', async t => {
  const gz = Buffer.from('1f8b0800000000000003030000000000000000', 'hex')
  const root = makeSite(t, { 'data.tar.gz': gz })
  const { url } = await startPlugin(t, { root })
  const res = await get(`${url}/data.tar.gz`, { 'accept-encoding': 'gzip' })
  t.equal(res.headers['content-type'], 'application/gzip')
  t.equal(res.headers['content-encoding'], undefined)
  t.ok(res.body.equals(gz))
})

t.test('a directory redirect keeps special characters encoded', async t => {
  const root = makeSite(t, { 'a#b/index.html': '<p>x</p>' })
  const { url } = await startPlugin(t, { root })
  const res = await request(`${url}/a%23b`)
  await res.body.dump()
  t.equal(res.statusCode, 301)
  t.equal(res.headers.location, '/a%23b/')
})

t.test('416 and 406 keep the CORS and policy headers a cross-origin page needs (D13)', async t => {
  const root = makeSite(t, { 'app.wasm': SQLITE })
  const { url } = await startPlugin(t, { root, cors: { origin: ['https://a.example'] }, crossOriginIsolation: 'require-corp' })
  for (const [status, headers] of [[416, { range: `bytes=${SQLITE.length}-` }], [406, { 'accept-encoding': 'identity;q=0' }]] as const) {
    const res = await get(`${url}/app.wasm`, { origin: 'https://a.example', ...headers })
    t.equal(res.status, status)
    t.equal(res.headers['access-control-allow-origin'], 'https://a.example')
    t.match(res.headers.vary, /Origin/)
    t.equal(res.headers['cross-origin-resource-policy'], 'cross-origin')
  }
})

t.test('a cache directory others can write to is not used (D4)', async t => {
  const root = makeSite(t, { 'app.wasm': SQLITE })
  const shared = tempDir(t, 'shared')
  chmodSync(shared, 0o777)
  const { app, logs } = await startPlugin(t, { root, compress: { cacheDir: shared } }, { fastify: { forceCloseConnections: true } })
  await app.wasmServe.compressionIdle()
  t.same(readdirSync(shared), [], 'nothing written there')
  t.ok(logs.some(l => JSON.stringify(l).includes('group or others can write to it')), 'and the reason is logged')
})

t.test('unreadable files and directories are left out, not a failed start (as a non-root user)', async t => {
  if (process.getuid?.() !== 0) return t.skip('needs root to start the CLI as another user; permissions do not stop root', () => {})
  const nobody = { uid: 65534, gid: 65534 }
  const probe = spawnSync(process.execPath, ['-e', 'require("fs").accessSync(process.argv[1])', CLI], { ...nobody, env: {} })
  if (probe.status !== 0) return t.skip(`this checkout (${ROOT}) is not readable by user nobody, so the CLI cannot run as nobody here`, () => {})
  const root = makeSite(t, { 'ok.wasm': SQLITE, 'secret.txt': 'secret', 'private/x.txt': 'x' })
  chmodSync(root, 0o755)
  chmodSync(join(root, 'ok.wasm'), 0o644)
  chmodSync(join(root, 'secret.txt'), 0o000)
  chmodSync(join(root, 'private'), 0o700)
  const { url, out } = await serveCli(t, [root, '--port', '0'], { user: nobody })
  t.equal((await get(`${url}/ok.wasm`)).status, 200)
  t.equal((await get(`${url}/secret.txt`)).status, 404)
  t.equal((await get(`${url}/private/x.txt`)).status, 404)
  t.match(out.stdout + out.stderr, /cannot read a file; it is not served/)
})
