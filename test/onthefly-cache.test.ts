// The on-the-fly cache directory (docs/delivery.md, "The on-the-fly cache directory", D4): a size cap
// with least-recently-used eviction, a writability check at start-up, reuse across restarts. Each
// test runs the plugin over a real temp root and a real cache directory.
import t, { type Test } from 'tap'
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chmodSync, copyFileSync, mkdirSync, readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { brotliDecompressSync, gunzipSync } from 'node:zlib'
import type { FastifyInstance } from 'fastify'
import type { WasmServePluginOptions } from '../src/plugin.js'
import { get } from './helpers/http.js'
import { startPlugin } from './helpers/server.js'
import { tempDir } from './helpers/site.js'

type Log = Record<string, unknown> & { level: number, msg: string }

/**
 * The plugin logging at debug level, once its on-the-fly encodings are made: br and gzip only, so
 * the counts below hold whether or not this Node has zstd.
 */
async function start (t: Test, options: WasmServePluginOptions): Promise<{ app: FastifyInstance, url: string, logs: Log[] }> {
  const { app, url, logs } = await startPlugin(t, { precompressed: ['br', 'gzip'], ...options }, { logLevel: 'debug' })
  await app.wasmServe.compressionIdle()
  return { app, url, logs: logs as Log[] }
}

/** `count` scripts of 8 KB each, different bytes (base64 of random bytes: every coding shrinks them by about a quarter). */
function scripts (root: string, count: number): Map<string, Buffer> {
  const files = new Map<string, Buffer>()
  for (let i = 0; i < count; i++) {
    const name = `f${String(i).padStart(2, '0')}.js`
    const body = Buffer.from(`// ${name}\nexport const data = "${randomBytes(6000).toString('base64')}"\n`)
    writeFileSync(join(root, name), body)
    files.set(name, body)
  }
  return files
}

/** The cache entries (`<hash>.<coding>`; temp and probe files start with a dot) with their sizes. */
function entries (cacheDir: string): Map<string, number> {
  return new Map(readdirSync(cacheDir).filter(n => !n.startsWith('.')).map(n => [n, statSync(join(cacheDir, n)).size]))
}
const total = (dir: Map<string, number>) => [...dir.values()].reduce((a, b) => a + b, 0)

/** Cache entry names of a file's encodings, from its identity ETag (the content hash). */
async function entryNames (url: string, name: string): Promise<string[]> {
  const res = await get(`${url}/${name}`, { 'accept-encoding': 'identity' })
  const hash = res.headers.etag!.replaceAll('"', '')
  return [`${hash}.br`, `${hash}.gzip`]
}

t.test('the cache directory stays under compress.cacheMaxSize however many files are encoded, the most recently made kept', async t => {
  const root = tempDir(t, 'cap-root')
  const cacheDir = tempDir(t, 'cap-cache')
  const files = scripts(root, 30)
  const cap = 40 * 1024
  const { url, logs } = await start(t, { root, compress: { cacheDir, cacheMaxSize: '40KB' } })
  const made = logs.filter(l => l.msg === 'compressed on the fly')
  t.equal(made.length, files.size, 'every file was encoded (br and gzip)')
  const dir = entries(cacheDir)
  t.ok(total(dir) <= cap, `the directory holds ${total(dir)} bytes, at most the cap (${cap})`)
  t.ok(dir.size < files.size * 2, `older encodings were evicted (${dir.size} of ${files.size * 2} kept)`)
  // The files encoded last, as many as fit under the cap, are all still there.
  let kept = 0
  for (const line of made.reverse()) {
    const sizes = (line.encodings as string[]).map(e => Number(e.split(' ')[1]))
    if (kept + sizes.reduce((a, b) => a + b, 0) > cap) break
    kept += sizes.reduce((a, b) => a + b, 0)
    for (const name of await entryNames(url, line.path as string)) t.ok(dir.has(name), `${line.path as string}, encoded late, is kept (${name})`)
  }
  t.ok(kept > 0, 'at least one file fits under the cap')
  const evictions = logs.filter(l => l.msg.startsWith('evicted from the compression cache'))
  t.equal(evictions.length, files.size * 2 - dir.size, 'each eviction is logged at debug level')
  t.ok(evictions.every(l => l.level === 20), 'at debug level')
  const summaries = logs.filter(l => l.msg.startsWith('compression cache pruned'))
  t.equal(summaries.length, 1, 'one info summary (at most one a minute)')
  t.match(summaries[0], { level: 30, maxBytes: cap })
  // Evicted from disk, still held in memory: every file is still served encoded, whole.
  for (const [name, body] of files) {
    const res = await get(`${url}/${name}`, { 'accept-encoding': 'br' })
    t.equal(res.headers['content-encoding'], 'br', `${name} is served as br`)
    t.ok(brotliDecompressSync(res.body).equals(body), `${name} decodes to the file`)
  }
})

t.test('an encoding read back is used: after a restart it outlives encodings made after it, and is not made again', async t => {
  const first = tempDir(t, 'lru-root')
  const cacheDir = tempDir(t, 'lru-cache')
  const files = scripts(first, 12)
  const names = new Map<string, string[]>()
  {
    const { app, url } = await start(t, { root: first, compress: { cacheDir } })
    for (const name of files.keys()) names.set(name, await entryNames(url, name))
    await app.close()
  }
  t.equal(entries(cacheDir).size, files.size * 2, 'under the default cap every encoding is kept')
  // Make the order explicit: f00–f02 the oldest of all, then f03 … f11 in order.
  const old = Date.now() / 1000 - 3600
  for (const [i, name] of [...files.keys()].entries()) {
    for (const entry of names.get(name)!) utimesSync(join(cacheDir, entry), old + i * 60, old + i * 60)
  }
  const reused = ['f00.js', 'f01.js', 'f02.js']
  const inodes = new Map(reused.flatMap(n => names.get(n)!).map(e => [e, statSync(join(cacheDir, e)).ino]))
  // A new root serves three of those files: their encodings are read back from the cache.
  const second = tempDir(t, 'lru-root2')
  for (const name of reused) copyFileSync(join(first, name), join(second, name))
  const perFile = total(entries(cacheDir)) / files.size
  const cap = Math.floor(perFile * 6)
  const { url, logs } = await start(t, { root: second, compress: { cacheDir, cacheMaxSize: cap } })
  const dir = entries(cacheDir)
  t.ok(total(dir) <= cap, `pruned to the cap at start-up (${total(dir)} ≤ ${cap} bytes)`)
  for (const [entry, ino] of inodes) {
    t.ok(dir.has(entry), `${entry} was read back, so it is kept though it was the oldest`)
    t.equal(statSync(join(cacheDir, entry)).ino, ino, 'and it was not written again')
  }
  t.notOk(logs.some(l => l.msg === 'evicted from the compression cache (least recently used)' && reused.some(n => names.get(n)!.includes(l.file as string))), 'none of them was evicted')
  for (const name of ['f03.js', 'f04.js']) t.notOk(names.get(name)!.some(e => dir.has(e)), `${name}, the least recently used of the rest, was evicted`)
  t.ok(names.get('f11.js')!.every(e => dir.has(e)), 'f11.js, the most recently used of the rest, is kept')
  for (const name of reused) {
    const res = await get(`${url}/${name}`, { 'accept-encoding': 'gzip' })
    t.equal(res.headers['content-encoding'], 'gzip')
    t.ok(gunzipSync(res.body).equals(files.get(name)!), `${name}: the cached encoding decodes to the file`)
  }
})

t.test('an encoding the server streams from the cache directory is never evicted, even over the cap', async t => {
  const root = tempDir(t, 'inuse-root')
  const cacheDir = tempDir(t, 'inuse-cache')
  const files = scripts(root, 3)
  // memoryBudget 0: the gzip encodings are made from disk into the cache dir and served from there.
  const { url, logs } = await start(t, { root, memoryBudget: 0, compress: { cacheDir, cacheMaxSize: '1KB' } })
  const dir = entries(cacheDir)
  t.equal(dir.size, files.size, 'one gzip file each, kept over the 1 KB cap')
  t.notOk(logs.some(l => l.msg.startsWith('evicted')), 'nothing was evicted')
  for (const [name, body] of files) {
    const res = await get(`${url}/${name}`, { 'accept-encoding': 'gzip' })
    t.equal(res.headers['content-encoding'], 'gzip')
    t.ok(gunzipSync(res.body).equals(body), `${name} streamed from the cache dir, whole`)
  }
})

t.test('a cache directory the server cannot write to: one warning at start-up, then encodings in memory only', async t => {
  const root = tempDir(t, 'ro-root')
  const parent = tempDir(t, 'ro-cache')
  const cacheDir = join(parent, 'cache')
  mkdirSync(cacheDir, { mode: 0o700 })
  const files = scripts(root, 10)
  // Permissions do not stop root; the immutable attribute does (as in test/compress.test.ts).
  const asRoot = process.getuid?.() === 0
  const lock = asRoot ? spawnSync('chattr', ['+i', cacheDir]) : (chmodSync(cacheDir, 0o500), { status: 0 })
  if (lock.status !== 0) return t.skip('cannot make a directory read-only here (chattr +i failed)', () => {})
  t.teardown(() => { if (asRoot) spawnSync('chattr', ['-i', cacheDir]); else chmodSync(cacheDir, 0o700) })
  const { url, logs } = await start(t, { root, compress: { cacheDir } })
  const warnings = logs.filter(l => l.level >= 40)
  t.equal(warnings.length, 1, 'one warning')
  t.match(warnings[0], { cacheDir, msg: /^not using the compression cache directory: cannot write to it \(E[A-Z]+\); encodings are kept in memory only$/ })
  t.notOk(logs.some(l => l.err !== undefined), 'no error with a stack trace, per file or at all')
  t.same(readdirSync(cacheDir), [], 'nothing was written there')
  for (const [name, body] of files) {
    const res = await get(`${url}/${name}`, { 'accept-encoding': 'br' })
    t.equal(res.headers['content-encoding'], 'br', `${name} is compressed on the fly all the same`)
    t.ok(brotliDecompressSync(res.body).equals(body), `${name} decodes to the file`)
  }
})

t.test('temp files a crashed writer left in the cache directory are removed at start-up, no others', async t => {
  const root = tempDir(t, 'temp-root')
  const cacheDir = tempDir(t, 'temp-cache')
  scripts(root, 1)
  let dead = 999_999
  while (((pid: number) => { try { process.kill(pid, 0); return true } catch { return false } })(dead)) dead--
  const hour = Date.now() / 1000 - 3600
  const leftover = `.${'A'.repeat(27)}.br.${dead}-0123abcd.tmp`
  const recent = `.${'B'.repeat(27)}.br.${dead}-0123abcd.tmp`
  const ours = `.${'C'.repeat(27)}.br.${process.pid}-0123abcd.tmp`
  const other = '.notes.tmp'
  for (const name of [leftover, recent, ours, other]) writeFileSync(join(cacheDir, name), 'partial')
  for (const name of [leftover, ours, other]) utimesSync(join(cacheDir, name), hour, hour)
  await start(t, { root, compress: { cacheDir } })
  const names = readdirSync(cacheDir)
  t.notOk(names.includes(leftover), 'an hour-old temp file of a process that is gone is removed')
  t.ok(names.includes(recent), 'a recent one is kept (its writer may be in another pid namespace)')
  t.ok(names.includes(ours), 'one whose writer runs is kept')
  t.ok(names.includes(other), 'a file with another name is left alone')
})
