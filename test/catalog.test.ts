/**
 * The catalog seen from outside: what "the same file" means when bytes are streamed (D16 in
 * docs/delivery.md), the memory account behind `memoryBudget`, and the small handle an app gets.
 */
import t from 'tap'
import { mkdtempSync, openSync, rmSync, statSync, unlinkSync, utimesSync, writeFileSync, writeSync, closeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { get } from './helpers/http.js'
import { startPlugin } from './helpers/site.js'
import { etagOf } from './helpers/server.js'

function tempRoot (t: { teardown: (fn: () => void) => void }): string {
  const root = mkdtempSync(join(tmpdir(), 'wasm-serve-catalog-'))
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  return root
}

/** Polls `check` until it holds, for at most `ms`. */
async function eventually (check: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

t.test('a file rewritten in place with its size, inode and mtime kept is not streamed under the old ETag', async t => {
  const root = tempRoot(t)
  const file = join(root, 'data.bin')
  const a = Buffer.alloc(300_000, 'a')
  const b = Buffer.alloc(300_000, 'b')
  writeFileSync(file, a)
  const then = new Date(Date.now() - 60_000)
  utimesSync(file, then, then)
  const { app, url } = await startPlugin({ root, memoryBudget: 0 })
  t.teardown(() => app.close())
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
  const root = tempRoot(t)
  writeFileSync(join(root, 'a.txt'), Buffer.alloc(1000, 'a'))
  writeFileSync(join(root, 'b.txt'), Buffer.alloc(3000, 'b'))
  const { app } = await startPlugin({ root, compress: { onTheFly: false } })
  t.teardown(() => app.close())
  t.equal(app.wasmServe.files, 2)
  t.equal(app.wasmServe.bytesInMemory, 4000)
  t.same(Object.keys(app.wasmServe).sort(), ['bytesInMemory', 'compressionIdle', 'files'])
})

t.test('the memory account follows files replaced and deleted while serving', async t => {
  const root = tempRoot(t)
  writeFileSync(join(root, 'a.txt'), Buffer.alloc(1000, 'a'))
  writeFileSync(join(root, 'b.txt'), Buffer.alloc(3000, 'b'))
  const { app, url } = await startPlugin({ root, watch: true, compress: { onTheFly: false } })
  t.teardown(() => app.close())
  t.equal(app.wasmServe.bytesInMemory, 4000)
  writeFileSync(join(root, 'a.txt'), Buffer.alloc(5000, 'c'))
  await eventually(() => app.wasmServe.bytesInMemory === 8000, 'the larger a.txt to be counted')
  t.equal((await get(`${url}/a.txt`)).body.length, 5000)
  unlinkSync(join(root, 'b.txt'))
  await eventually(() => app.wasmServe.bytesInMemory === 5000, 'b.txt to be released')
  t.equal((await get(`${url}/b.txt`)).status, 404)
  t.equal(app.wasmServe.files, 1)
})

t.test('encodings made on the fly count against the memory budget', async t => {
  const root = tempRoot(t)
  const text = Buffer.from('a line of text that compresses well\n'.repeat(200))
  writeFileSync(join(root, 'page.txt'), text)
  const { app } = await startPlugin({ root, precompressed: ['gzip'], compress: { cacheDir: join(root, '..', `${root.split('/').pop()!}-cache`) } })
  t.teardown(() => { rmSync(join(root, '..', `${root.split('/').pop()!}-cache`), { recursive: true, force: true }); return app.close() })
  await app.wasmServe.compressionIdle()
  t.ok(app.wasmServe.bytesInMemory > text.length, `the gzip encoding is held too (${app.wasmServe.bytesInMemory} B)`)
  t.ok(app.wasmServe.bytesInMemory < text.length * 2, 'and it is smaller than the file')
})
