/**
 * The catalog seen from outside: what "the same file" means when bytes are streamed (D16 in
 * docs/delivery.md), the memory account behind `memoryBudget`, and the small handle an app gets.
 */
import { brotliCompressSync } from 'node:zlib'
import t from 'tap'
import { closeSync, openSync, realpathSync, statSync, unlinkSync, utimesSync, writeFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { get } from './helpers/http.js'
import { until } from './helpers/poll.js'
import { etagOf, startPlugin } from './helpers/server.js'
import { tempDir } from './helpers/site.js'

t.test('a file rewritten in place with its size, inode and mtime kept is not streamed under the old ETag', async t => {
  const root = tempDir(t)
  const file = join(root, 'data.bin')
  const a = Buffer.alloc(300_000, 'a')
  const b = Buffer.alloc(300_000, 'b')
  writeFileSync(file, a)
  const then = new Date(Date.now() - 60_000)
  utimesSync(file, then, then)
  const { url } = await startPlugin(t, { root, memoryBudget: 0 })
  t.equal((await get(`${url}/data.bin`)).headers.etag, etagOf(a))
  const before = statSync(file)
  // What `cp -p` or a reproducible build does: new bytes in the same file, the old mtime put back.
  const fd = openSync(file, 'r+')
  writeSync(fd, b, 0, b.length, 0)
  closeSync(fd)
  utimesSync(file, then, then)
  const after = statSync(file)
  t.same([after.size, after.ino, after.mtimeMs], [before.size, before.ino, before.mtimeMs], 'only ctime tells the two apart')
  const res = await get(`${url}/data.bin`)
  t.ok(res.body.equals(b), 'the new bytes')
  t.equal(res.headers.etag, etagOf(b), 'with their own ETag')
})

t.test('app.wasmServe tells the files served and the bytes held, and exposes nothing internal', async t => {
  const root = tempDir(t)
  writeFileSync(join(root, 'a.txt'), Buffer.alloc(1000, 'a'))
  writeFileSync(join(root, 'b.txt'), Buffer.alloc(3000, 'b'))
  const { app } = await startPlugin(t, { root, compress: { onTheFly: false } })
  t.equal(app.wasmServe.files, 2)
  t.equal(app.wasmServe.bytesInMemory, 4000)
  t.same(Object.keys(app.wasmServe).sort(), ['bytesInMemory', 'compressionIdle', 'files', 'hasSiblings'])
  t.equal(app.wasmServe.hasSiblings('br'), false, 'no file has a br sibling')
  writeFileSync(join(root, 'b.txt.br'), brotliCompressSync(Buffer.alloc(3000, 'b')))
  await app.close()
  const again = await startPlugin(t, { root, compress: { onTheFly: false } })
  t.equal(again.app.wasmServe.hasSiblings('br'), true, 'b.txt.br is a sibling of b.txt')
  t.equal(again.app.wasmServe.hasSiblings('gzip'), false)
})

t.test('the memory account follows files replaced and deleted while serving', async t => {
  const root = tempDir(t)
  writeFileSync(join(root, 'a.txt'), Buffer.alloc(1000, 'a'))
  writeFileSync(join(root, 'b.txt'), Buffer.alloc(3000, 'b'))
  const { app, url } = await startPlugin(t, { root, watch: true, compress: { onTheFly: false } })
  t.equal(app.wasmServe.bytesInMemory, 4000)
  writeFileSync(join(root, 'a.txt'), Buffer.alloc(5000, 'c'))
  await until(() => app.wasmServe.bytesInMemory === 8000, { what: 'the larger a.txt to be counted', timeout: 10_000 })
  t.equal((await get(`${url}/a.txt`)).body.length, 5000)
  unlinkSync(join(root, 'b.txt'))
  await until(() => app.wasmServe.bytesInMemory === 5000, { what: 'b.txt to be released', timeout: 10_000 })
  t.equal((await get(`${url}/b.txt`)).status, 404)
  t.equal(app.wasmServe.files, 1)
})

t.test('encodings made on the fly count against the memory budget', async t => {
  const root = tempDir(t)
  const text = Buffer.from('a line of text that compresses well\n'.repeat(200))
  writeFileSync(join(root, 'page.txt'), text)
  const { app } = await startPlugin(t, { root, precompressed: ['gzip'], compress: { cacheDir: join(tempDir(t, 'cache'), 'c') } })
  await app.wasmServe.compressionIdle()
  t.ok(app.wasmServe.bytesInMemory > text.length, `the gzip encoding is held too (${app.wasmServe.bytesInMemory} B)`)
  t.ok(app.wasmServe.bytesInMemory < text.length * 2, 'and it is smaller than the file')
})

t.test('a file is known to be sent while a response streams it, and no longer once it ends (the cache directory never evicts it meanwhile)', async t => {
  const { isBeingSent } = await import('../src/file-body.js')
  const root = tempDir(t)
  const file = join(root, 'big.bin')
  writeFileSync(file, Buffer.alloc(8 * 1024 * 1024, 'x'))
  const { port } = await startPlugin(t, { root, memoryBudget: 0 })
  const { connect } = await import('node:net')
  const socket = connect({ host: '127.0.0.1', port })
  t.teardown(() => socket.destroy())
  socket.write('GET /big.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
  await new Promise(resolve => socket.once('data', resolve))
  socket.pause() // the response is under way and stalls
  const real = realpathSync(file)
  t.ok(await until(() => isBeingSent(real), { what: 'the stream to be counted' }), 'counted while it streams')
  socket.destroy()
  t.ok(await until(() => !isBeingSent(real), { what: 'the count to go' }), 'not once the response is gone')
})
