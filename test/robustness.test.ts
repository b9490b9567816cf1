import t from 'tap'
import { request } from 'undici'
import { spawn, spawnSync } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { get } from './helpers/http.js'
import { SQLITE, startPlugin } from './helpers/site.js'
import { etagOf } from './helpers/server.js'

const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))

function tempRoot (t: { teardown: (fn: () => void) => void }): string {
  const root = mkdtempSync(join(tmpdir(), 'wasm-serve-robust-'))
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  return root
}

t.test('a file renamed over with the same size and mtime is not sent under the old ETag (D16)', async t => {
  const root = tempRoot(t)
  const a = Buffer.alloc(300_000, 'a')
  const b = Buffer.alloc(300_000, 'b')
  writeFileSync(join(root, 'data.bin'), a)
  const then = new Date(Date.now() - 60_000)
  utimesSync(join(root, 'data.bin'), then, then)
  const { app, url } = await startPlugin({ root, memoryBudget: 0 })
  t.teardown(() => app.close())
  t.equal((await get(`${url}/data.bin`)).headers.etag, etagOf(a))
  writeFileSync(join(root, 'next.bin'), b)
  utimesSync(join(root, 'next.bin'), then, then)
  renameSync(join(root, 'next.bin'), join(root, 'data.bin'))
  const res = await get(`${url}/data.bin`)
  t.ok(res.body.equals(b), 'the new bytes')
  t.equal(res.headers.etag, etagOf(b), 'with their own ETag')
})

t.test('a client gone before the body is read leaves no open file behind', async t => {
  const root = tempRoot(t)
  writeFileSync(join(root, 'big.bin'), Buffer.alloc(2_000_000, 7))
  const { app, url } = await startPlugin({ root, memoryBudget: 0 })
  t.teardown(() => app.close())
  const port = Number(new URL(url).port)
  const openOnBig = () => readdirSync('/proc/self/fd').filter(fd => { try { return readlinkSync(`/proc/self/fd/${fd}`).endsWith('big.bin') } catch { return false } }).length
  await Promise.all(Array.from({ length: 200 }, (_, i) => new Promise<void>(resolve => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.write('GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n')
      setTimeout(() => { socket.destroy(); resolve() }, i % 3)
    })
    socket.on('error', () => resolve())
  })))
  for (let i = 0; i < 50 && openOnBig() > 0; i++) await sleep(50)
  t.equal(openOnBig(), 0, 'every file handle was closed')
  t.equal((await get(`${url}/big.bin`)).status, 200, 'and the server still answers')
})

t.test('a lone archive.tar.gz is a download, not an encoding of a tar (D3)', async t => {
  const root = tempRoot(t)
  const gz = Buffer.from('1f8b0800000000000003030000000000000000', 'hex')
  writeFileSync(join(root, 'data.tar.gz'), gz)
  const { app, url } = await startPlugin({ root })
  t.teardown(() => app.close())
  const res = await get(`${url}/data.tar.gz`, { 'accept-encoding': 'gzip' })
  t.equal(res.headers['content-type'], 'application/gzip')
  t.equal(res.headers['content-encoding'], undefined)
  t.ok(res.body.equals(gz))
})

t.test('a directory redirect keeps special characters encoded', async t => {
  const root = tempRoot(t)
  mkdirSync(join(root, 'a#b'))
  writeFileSync(join(root, 'a#b', 'index.html'), '<p>x</p>')
  const { app, url } = await startPlugin({ root })
  t.teardown(() => app.close())
  const res = await request(`${url}/a%23b`)
  await res.body.dump()
  t.equal(res.statusCode, 301)
  t.equal(res.headers.location, '/a%23b/')
})

t.test('416 and 406 keep the CORS and policy headers a cross-origin page needs (D13)', async t => {
  const root = tempRoot(t)
  writeFileSync(join(root, 'app.wasm'), SQLITE)
  const { app, url } = await startPlugin({ root, cors: { origin: ['https://a.example'] }, crossOriginIsolation: 'require-corp' })
  t.teardown(() => app.close())
  for (const [status, headers] of [[416, { range: `bytes=${SQLITE.length}-` }], [406, { 'accept-encoding': 'identity;q=0' }]] as const) {
    const res = await get(`${url}/app.wasm`, { origin: 'https://a.example', ...headers })
    t.equal(res.status, status)
    t.equal(res.headers['access-control-allow-origin'], 'https://a.example')
    t.match(res.headers.vary, /Origin/)
    t.equal(res.headers['cross-origin-resource-policy'], 'cross-origin')
  }
})

t.test('a cache directory others can write to is not used (D4)', async t => {
  const root = tempRoot(t)
  writeFileSync(join(root, 'app.wasm'), SQLITE)
  const shared = mkdtempSync(join(tmpdir(), 'wasm-serve-shared-'))
  t.teardown(() => rmSync(shared, { recursive: true, force: true }))
  chmodSync(shared, 0o777)
  const lines: string[] = []
  const { default: Fastify } = await import('fastify')
  const { default: wasmServe } = await import('../src/plugin.js')
  const app = Fastify({ logger: { level: 'warn', stream: { write: (l: string) => { lines.push(l) } } }, forceCloseConnections: true })
  await app.register(wasmServe, { root, watch: false, compress: { cacheDir: shared } })
  await app.ready()
  await app.wasmServe.compressionIdle()
  t.teardown(() => app.close())
  t.same(readdirSync(shared), [], 'nothing written there')
  t.ok(lines.some(l => l.includes('group or others can write to it')), 'and the reason is logged')
})

t.test('unreadable files and directories are left out, not a failed start (as a non-root user)', async t => {
  if (process.getuid?.() !== 0) return t.skip('needs root to start the CLI as another user; permissions do not stop root')
  const env = { ...process.env }
  delete env.NODE_OPTIONS // tap's own loaders, which user nobody may not be able to read
  const probe = spawnSync(process.execPath, ['-e', 'require("fs").accessSync(process.argv[1] + "/dist/cli.js")', process.cwd()], { uid: 65534, gid: 65534, env })
  if (probe.status !== 0) return t.skip(`this checkout (${process.cwd()}) is not readable by user nobody, so the CLI cannot run as nobody here`)
  const root = mkdtempSync(join(tmpdir(), 'wasm-serve-perm-'))
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  chmodSync(root, 0o755)
  writeFileSync(join(root, 'ok.wasm'), SQLITE)
  chmodSync(join(root, 'ok.wasm'), 0o644)
  writeFileSync(join(root, 'secret.txt'), 'secret')
  chmodSync(join(root, 'secret.txt'), 0o000)
  mkdirSync(join(root, 'private'), { mode: 0o700 })
  writeFileSync(join(root, 'private', 'x.txt'), 'x')
  t.ok(statSync('dist/cli.js').isFile(), 'dist/cli.js is built')
  const child = spawn(process.execPath, ['dist/cli.js', root, '--port', '0'], { uid: 65534, gid: 65534, env, stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { child.kill('SIGKILL') })
  let out = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr.on('data', (d: Buffer) => { out += d.toString() })
  for (let i = 0; i < 100 && !/http:\/\/127\.0\.0\.1:\d+/.test(out); i++) await sleep(100)
  const base = /http:\/\/127\.0\.0\.1:\d+/.exec(out)?.[0]
  t.ok(base, `the server started: ${out.slice(0, 300)}`)
  if (base === undefined) return
  t.equal((await get(`${base}/ok.wasm`)).status, 200)
  t.equal((await get(`${base}/secret.txt`)).status, 404)
  t.equal((await get(`${base}/private/x.txt`)).status, 404)
  t.match(out, /cannot read a file; it is not served/)
})
