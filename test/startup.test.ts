/**
 * Start-up at scale (docs/benchmarks.md, "Start-up at scale"): the walk reads directories in
 * parallel yet lists files in the order a serial walk did, indexing reuses the walk's stats instead
 * of looking every name up again, each file's bytes are read once and their ETag is their content
 * hash (D6 in docs/delivery.md), and a root of many directories is watched in full though its
 * watchers are set a few hundred a turn. Speed itself is measured by bench/startup.mjs, not here.
 */
import * as fs from 'node:fs'
import * as fsp from 'node:fs/promises'
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { brotliCompressSync } from 'node:zlib'
import t from 'tap'
import { limiter } from '../src/parallel.js'
import { RootDir } from '../src/walk.js'
import { get } from './helpers/http.js'
import { until } from './helpers/poll.js'
import { etagOf, startPlugin } from './helpers/server.js'
import { tempDir } from './helpers/site.js'

const quiet = { info: () => {}, warn: () => {}, debug: () => {} }
const old = new Date(Date.now() - 60_000)

/** A tree of `dirs` directories two levels deep, `perDir` files in each, written with an old mtime. */
function tree (root: string, dirs: number, perDir: number): Map<string, Buffer> {
  const files = new Map<string, Buffer>()
  for (let d = 0; d < dirs; d++) {
    const dir = `top${d % 3}/d${d}`
    mkdirSync(join(root, dir), { recursive: true })
    for (let f = 0; f < perDir; f++) {
      const rel = `${dir}/f${f}.${f % 2 === 0 ? 'js' : 'wasm'}`
      const bytes = Buffer.from(`${rel} `.repeat(50 + f))
      writeFileSync(join(root, rel), bytes)
      fs.utimesSync(join(root, rel), old, old)
      files.set(rel, bytes)
    }
  }
  return files
}

/** The order a serial depth-first walk in readdir order meets files. */
function serialOrder (root: string, dir = ''): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true }).flatMap(e => {
    const rel = dir === '' ? e.name : `${dir}/${e.name}`
    return e.isDirectory() ? serialOrder(root, rel) : [rel]
  })
}

t.test('the limiter runs at most n at once, first come first served', async t => {
  const gate = limiter(3)
  let running = 0
  let most = 0
  const started: number[] = []
  const release: Array<() => void> = []
  const runs = Array.from({ length: 10 }, (_, i) => gate(async () => {
    started.push(i)
    most = Math.max(most, ++running)
    await new Promise<void>(resolve => release.push(resolve))
    running--
    return i
  }))
  await until(() => release.length === 3)
  t.same(started, [0, 1, 2], 'three start, the rest wait')
  while (started.length < 10 || release.length > 0) {
    release.shift()?.()
    await new Promise(resolve => setImmediate(resolve))
  }
  t.same(await Promise.all(runs), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
  t.equal(most, 3, 'never more than three at once')
  t.same(started, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'in the order asked')
})

t.test('the parallel walk lists every file and directory, in the order a serial walk meets them', async t => {
  const root = tempDir(t)
  const files = tree(root, 12, 5)
  writeFileSync(join(root, '.hidden'), 'x')
  fs.symlinkSync(root, join(root, 'top1/d1/loop'))
  const dir = await RootDir.open(root, 'deny', () => {})
  const walked = await dir.walk('')
  const expected = serialOrder(root).filter(rel => !rel.startsWith('.') && !rel.endsWith('/loop'))
  t.same(walked.files.map(f => f.rel), expected, 'the same files in the same order, a symlink cycle walked once')
  t.same([...walked.dirs.keys()].sort(), ['', 'top0', 'top1', 'top2', ...[...Array(12).keys()].map(d => `top${d % 3}/d${d}`)].sort())
  for (const f of walked.files) t.equal(f.stats.size, files.get(f.rel)!.length, `${f.rel}: its stats`)
})

t.test('start-up reads each file\'s bytes once, looks no name up again, and serves content-hash ETags', async t => {
  const root = tempDir(t)
  const files = tree(root, 4, 3)
  const wasm = files.get('top0/d0/f1.wasm')!
  writeFileSync(join(root, 'top0/d0/f1.wasm.br'), brotliCompressSync(wasm))
  const reads = new Map<string, number>()
  const realpaths: string[] = []
  const count = (path: unknown) => reads.set(String(path), (reads.get(String(path)) ?? 0) + 1)
  // Each module that reads is mocked where it imports fs, and handed on to the catalog.
  const load = await t.mockImport<typeof import('../src/load.js')>('../src/load.js', {
    'node:fs': { ...fs, readFile: (path: fs.PathLike, cb: (err: Error | null, data: Buffer) => void) => { count(path); fs.readFile(path, cb) } },
    'node:fs/promises': { ...fsp, open: (path: fs.PathLike, flags?: string) => { count(path); return fsp.open(path, flags) } },
  })
  const walk = await t.mockImport<typeof import('../src/walk.js')>('../src/walk.js', {
    'node:fs/promises': { ...fsp, realpath: (path: fs.PathLike) => { realpaths.push(String(path)); return fsp.realpath(path) } },
  })
  const assets = await t.mockImport<typeof import('../src/assets.js')>('../src/assets.js', { '../src/load.js': load })
  const { Catalog } = await t.mockImport<typeof import('../src/catalog.js')>('../src/catalog.js', { '../src/assets.js': assets, '../src/load.js': load, '../src/walk.js': walk })
  const catalog = await Catalog.open({ root, memoryBudget: 1 << 20, precompressed: ['br'], dotfiles: 'deny', policy: () => ({ headers: {}, links: [] }), log: quiet, watch: false, encodable: () => false, revalidateMs: 0 })
  t.teardown(() => catalog.close())
  await catalog.load()
  t.equal(catalog.size, files.size + 1, 'every file and the sibling')
  const real = fs.realpathSync(root)
  for (const [rel, bytes] of files) {
    t.equal(reads.get(join(real, rel)), 1, `${rel}: read once`)
    t.equal(catalog.get(rel)?.identity.etag, etagOf(bytes), `${rel}: its content hash`)
  }
  t.equal(reads.get(join(real, 'top0/d0/f1.wasm.br')), 1, 'the sibling: read once')
  t.equal(realpaths.length, 2 + 3 + 4, 'realpath for the root (opened, then walked) and each directory, none for a file or a sibling name')
})

t.test('a root of more directories than are watched in one turn has every directory watched', async t => {
  const root = tempDir(t)
  tree(root, 300, 1)
  const { url } = await startPlugin(t, { root, watch: true, revalidate: 0 })
  const last = 'top2/d299/f0.js'
  t.equal((await get(`${url}/${last}`)).status, 200)
  // Only a watcher can see it: the periodic check is off.
  writeFileSync(join(root, last), 'changed')
  await until(async () => (await get(`${url}/${last}`)).body.toString() === 'changed')
  t.equal((await get(`${url}/${last}`)).body.toString(), 'changed', 'the last directory is watched')
})
