#!/usr/bin/env node
/**
 * Builds bench/fixtures/, what the benchmarks serve: real wasm modules and their precompressed
 * siblings, plus manifest.json (name, size, sha256 of every file) so a bench can check the bytes a
 * server sends before it measures. The tests do not use it (they build their sites in memory:
 * test/helpers/site.ts).
 *
 * Each bench runs it first (`node bench/fixtures.mjs` alone works too), so it is idempotent and
 * quick when nothing changed: a file is (re)made only when missing or older than its source, written
 * to a temp name and renamed into place (an interrupted run never leaves a truncated fixture
 * behind), and it prints one line per file created, nothing when everything is up to date.
 *
 *   tiny.wasm         41 B module exporting add(i32,i32)->i32, no siblings: every encoding makes a
 *                     file this small larger (a br or gzip stream has a header and a trailer of its
 *                     own), so a server must serve it as identity.
 *   sqlite3.wasm      ~850 KB, from @sqlite.org/sqlite-wasm, with .br (q11), .gz (-9), .zst (-19)
 *   ffmpeg-core.wasm  ~32 MB, from @ffmpeg/core, with .br and .gz (and .zst)
 *   index.html        a 1.6 KB page that loads sqlite3.wasm: the page every visit revalidates
 *
 * .zst only where node:zlib can encode it (Node >= 22.15 / 23.8), with a window of at most 8 MB
 * (RFC 9659: browsers refuse larger ones) and the frame content size set (the server checks it
 * against the original's size, D3).
 */
import { createHash } from 'node:crypto'
import { constants as fsc } from 'node:fs'
import { copyFile, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { promisify } from 'node:util'
import zlib from 'node:zlib'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
export const FIXTURE_DIR = join(ROOT, 'bench', 'fixtures')

/**
 * Brotli quality for the 32 MB module. q11 took 167 s on this 2-core machine (q9: 32 s), over
 * the ~2 min a bench's set-up should take, so the big module gets q9 (8.4 MB vs 7.3 MB at q11; it only
 * needs to be a valid, smaller sibling). Override with FIXTURES_BIG_BROTLI_QUALITY=11.
 */
const BIG_BROTLI_QUALITY = Number(process.env.FIXTURES_BIG_BROTLI_QUALITY ?? 9)

/** (module add (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add)) */
const TINY_WASM = Uint8Array.from([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version 1
  0x01, 0x07, 0x01, 0x60, 0x02, 0x7f, 0x7f, 0x01, 0x7f, // type: (i32 i32) -> i32
  0x03, 0x02, 0x01, 0x00, // function 0 has type 0
  0x07, 0x07, 0x01, 0x03, 0x61, 0x64, 0x64, 0x00, 0x00, // export "add" = func 0
  0x0a, 0x09, 0x01, 0x07, 0x00, 0x20, 0x00, 0x20, 0x01, 0x6a, 0x0b, // body
])

const SOURCES = [
  { name: 'sqlite3.wasm', from: 'node_modules/@sqlite.org/sqlite-wasm/sqlite-wasm/jswasm/sqlite3.wasm', brotliQuality: 11 },
  { name: 'ffmpeg-core.wasm', from: 'node_modules/@ffmpeg/core/dist/esm/ffmpeg-core.wasm', brotliQuality: BIG_BROTLI_QUALITY },
]

const hasZstd = typeof zlib.zstdCompress === 'function'

/** Encoders as a table: suffix → how to encode a buffer. */
const ENCODERS = [
  {
    suffix: '.br',
    label: (src) => `br q${src.brotliQuality}`,
    encode: (buf, src) => promisify(zlib.brotliCompress)(buf, {
      params: {
        [zlib.constants.BROTLI_PARAM_QUALITY]: src.brotliQuality,
        [zlib.constants.BROTLI_PARAM_SIZE_HINT]: buf.length,
      },
    }),
  },
  ...(hasZstd
    ? [{
        suffix: '.zst',
        label: () => 'zstd -19',
        encode: (buf) => promisify(zlib.zstdCompress)(buf, {
          pledgedSrcSize: buf.length,
          params: {
            [zlib.constants.ZSTD_c_compressionLevel]: 19,
            [zlib.constants.ZSTD_c_windowLog]: 23,
            [zlib.constants.ZSTD_c_contentSizeFlag]: 1,
          },
        }),
      }]
    : []),
  {
    suffix: '.gz',
    label: () => 'gzip -9',
    encode: (buf) => promisify(zlib.gzip)(buf, { level: 9 }),
  },
]

const mtimeOf = async (path) => (await stat(path).catch(() => null))?.mtimeMs

/** Write via a temp file in the same directory and rename, so readers never see a partial file. */
async function writeAtomic (path, data) {
  const tmp = join(dirname(path), `.tmp-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`)
  try {
    if (typeof data === 'string' && data.startsWith('copy:')) {
      await copyFile(data.slice(5), tmp, fsc.COPYFILE_FICLONE)
    } else {
      await writeFile(tmp, data)
    }
    await rename(tmp, path)
  } catch (err) {
    await rm(tmp, { force: true })
    throw err
  }
}

/** Remove temp files left by runs that were killed (their pid is gone); keep live runs' ones. */
async function removeOrphanTemps () {
  for (const name of await readdir(FIXTURE_DIR)) {
    const m = /^\.tmp-(\d+)-/.exec(name)
    if (!m) continue
    try {
      process.kill(Number(m[1]), 0)
    } catch (err) {
      if (err.code === 'ESRCH') await rm(join(FIXTURE_DIR, name), { force: true })
    }
  }
}

const fmt = (n) => n.toLocaleString('en-US')

async function ensureTiny (log) {
  if (!WebAssembly.validate(TINY_WASM)) throw new Error('tiny.wasm bytes are not a valid module')
  const path = join(FIXTURE_DIR, 'tiny.wasm')
  const current = await readFile(path).catch(() => null)
  if (current && Buffer.compare(current, TINY_WASM) === 0) return
  await writeAtomic(path, TINY_WASM)
  log(`fixtures: tiny.wasm ${TINY_WASM.length} B (valid module, no siblings)`)
}

/** A page of the size an app's index.html has: a head with metadata, a script that loads the module. */
const PAGE = ['<!doctype html>', '<html lang="en">', '<head>', '<meta charset="utf-8">',
  '<meta name="viewport" content="width=device-width, initial-scale=1">', '<title>wasm-serve benchmark page</title>',
  ...Array.from({ length: 12 }, (_, i) => `<meta name="description-${i}" content="A line of page metadata as real pages carry, number ${i}.">`),
  '<link rel="stylesheet" href="/app.css">', '</head>', '<body>', '<main id="app">Loading…</main>',
  '<script type="module">', "const { instance } = await WebAssembly.instantiateStreaming(fetch('/sqlite3.wasm'), {})",
  "document.getElementById('app').textContent = Object.keys(instance.exports).length + ' exports'", '</script>',
  '</body>', '</html>', ''].join('\n')

async function ensurePage (log) {
  const path = join(FIXTURE_DIR, 'index.html')
  if ((await readFile(path, 'utf8').catch(() => null)) === PAGE) return
  await writeAtomic(path, Buffer.from(PAGE))
  log(`fixtures: index.html ${Buffer.byteLength(PAGE)} B`)
}

/** Copy a source module in when missing, changed in size or older than its source. */
async function ensureCopy (src, log) {
  const from = join(ROOT, src.from)
  const to = join(FIXTURE_DIR, src.name)
  const [a, b] = await Promise.all([stat(from), stat(to).catch(() => null)])
  if (b && b.size === a.size && b.mtimeMs >= a.mtimeMs) return
  await writeAtomic(to, `copy:${from}`)
  log(`fixtures: ${src.name} ${fmt(a.size)} B (copied from ${src.from})`)
}

/** Every (source, encoder) pair whose sibling is missing or older than its source. */
async function staleSiblings () {
  const jobs = []
  for (const src of SOURCES) {
    const path = join(FIXTURE_DIR, src.name)
    const srcTime = await mtimeOf(path)
    for (const enc of ENCODERS) {
      const sibTime = await mtimeOf(path + enc.suffix)
      if (sibTime === undefined || sibTime < srcTime) jobs.push({ src, enc, path })
    }
  }
  return jobs
}

/**
 * Encode all stale siblings at once. The async zlib calls run on libuv's thread pool, so the jobs
 * spread over both cores; the biggest (ffmpeg br) starts first and bounds the total time.
 */
async function encodeSiblings (jobs, log) {
  const buffers = new Map()
  const source = (path) => {
    if (!buffers.has(path)) buffers.set(path, readFile(path))
    return buffers.get(path)
  }
  jobs.sort((x, y) => (y.enc.suffix === '.br') - (x.enc.suffix === '.br'))
  await Promise.all(jobs.map(async ({ src, enc, path }) => {
    const buf = await source(path)
    const started = Date.now()
    const out = await enc.encode(buf, src)
    await writeAtomic(path + enc.suffix, out)
    const secs = ((Date.now() - started) / 1000).toFixed(1)
    log(`fixtures: ${src.name}${enc.suffix} ${fmt(out.length)} B (${enc.label(src)}, ${secs} s)`)
  }))
}

async function sha256 (path) {
  return createHash('sha256').update(await readFile(path)).digest('hex')
}

/** manifest.json: hashes are reused from the previous manifest while size and mtime are unchanged. */
async function writeManifest (log) {
  const manifestPath = join(FIXTURE_DIR, 'manifest.json')
  const previous = await readFile(manifestPath, 'utf8').then(JSON.parse).catch(() => ({ files: [] }))
  const known = new Map(previous.files.map(f => [f.name, f]))
  const names = (await readdir(FIXTURE_DIR)).filter(n => !n.startsWith('.') && n !== 'manifest.json').sort()
  const files = []
  for (const name of names) {
    const s = await stat(join(FIXTURE_DIR, name))
    if (!s.isFile()) continue
    const old = known.get(name)
    const hash = old && old.size === s.size && old.mtimeMs === s.mtimeMs ? old.sha256 : await sha256(join(FIXTURE_DIR, name))
    files.push({ name, size: s.size, sha256: hash, mtimeMs: s.mtimeMs })
  }
  const text = JSON.stringify({ files }, null, 2) + '\n'
  if (text === JSON.stringify(previous, null, 2) + '\n') return
  await writeAtomic(manifestPath, text)
  log(`fixtures: manifest.json (${files.length} files)`)
}

/** Make sure every fixture exists and is fresh. Returns FIXTURE_DIR. */
export async function ensureFixtures ({ log = console.log } = {}) {
  await mkdir(FIXTURE_DIR, { recursive: true })
  await removeOrphanTemps()
  await ensureTiny(log)
  await ensurePage(log)
  for (const src of SOURCES) await ensureCopy(src, log)
  const jobs = await staleSiblings()
  if (jobs.length > 0 && !hasZstd) log(`fixtures: no .zst siblings (node:zlib has no zstd in Node ${process.versions.node})`)
  if (jobs.length > 0) await encodeSiblings(jobs, log)
  await writeManifest(log)
  return FIXTURE_DIR
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  ensureFixtures().catch((err) => {
    console.error(`fixtures: ${err.message}`)
    process.exitCode = 1
  })
}
