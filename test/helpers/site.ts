/**
 * The one fixture system: real wasm modules from installed packages and their precompressed
 * siblings, made in memory when a test file loads (nothing is generated ahead of the run), and
 * sites written into temporary directories that are removed when the test ends.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { brotliCompressSync, brotliDecompressSync, constants, gzipSync } from 'node:zlib'

const ROOT = resolve(import.meta.dirname, '..', '..')
export const SQLITE_WASM_PATH = join(ROOT, 'node_modules/@sqlite.org/sqlite-wasm/sqlite-wasm/jswasm/sqlite3.wasm')
export const WEBP_WASM_PATH = join(ROOT, 'node_modules/playwright-core/lib/webp_codec.wasm')

/** sqlite3.wasm, ~850 KB: a real Emscripten module. */
export const SQLITE = readFileSync(SQLITE_WASM_PATH)
/** webp_codec.wasm, ~565 KB: a second real module, of another length. */
export const WEBP = readFileSync(WEBP_WASM_PATH)
/** The smallest useful module: (module (func (export "f"))), 31 bytes; any encoding makes it larger. */
export const TINY = Buffer.from('0061736d0100000001040160000003020100070501016600000a040102000b', 'hex')
/** Siblings at modest levels: the tests need valid, smaller bytes, not the best ratio. */
export const BR = brotliCompressSync(SQLITE, { params: { [constants.BROTLI_PARAM_QUALITY]: 5 } })
export const GZ = gzipSync(SQLITE, { level: 6 })
export const JS = Buffer.from('export function hello () { return "hello from a module" }\n'.repeat(60))
export const PAGE = '<!doctype html><title>site</title><h1>site</h1>\n'
/** The first bytes of a PNG: enough for a type, and not worth compressing. */
export const PNG = Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex')

/**
 * `size` bytes in which every 4-byte little-endian word is its own offset (the last word cut short):
 * any range of it can be checked on its own, with nothing to compare against (range readers, D8).
 */
export function offsets (size: number): Buffer {
  const words = Buffer.alloc(Math.ceil(size / 4) * 4)
  for (let at = 0; at < words.length; at += 4) words.writeUInt32LE(at, at)
  return words.subarray(0, size)
}

/** A site as a map: path under the root (directories are made) → contents. */
export type Files = Record<string, string | Buffer>

/** The site most HTTP tests serve: a module with br and gzip siblings, a page, a script, an image, a Unity-style lone .br. */
export const SITE: Files = {
  'sqlite3.wasm': SQLITE,
  'sqlite3.wasm.br': BR,
  'sqlite3.wasm.gz': GZ,
  'tiny.wasm': TINY,
  'index.html': PAGE,
  'app.js': JS,
  'logo.png': PNG,
  'Build/game.wasm.br': BR,
}

/** What tap's tests and its root object both have. */
interface Teardown { teardown: (fn: () => unknown) => void }

/** A fresh temporary directory, removed when `t` ends. */
export function tempDir (t: Teardown, name = 'site'): string {
  const dir = mkdtempSync(join(tmpdir(), `wasm-serve-${name}-`))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

const SIBLING = /\.(br|gz|zst)$/

/**
 * Writes `files` under `dir`. A sibling (x.br, x.gz, x.zst) of a file in the same map is dated one
 * second after it, as a build writes siblings after their originals: an older one is stale (D3).
 */
export function writeFiles (dir: string, files: Files): void {
  for (const [path, contents] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true })
    writeFileSync(join(dir, path), contents)
  }
  const later = new Date(Date.now() + 1000)
  for (const path of Object.keys(files)) {
    if (SIBLING.test(path) && path.replace(SIBLING, '') in files) utimesSync(join(dir, path), later, later)
  }
}

/** A site on disk for `t` (by default SITE), removed when `t` ends; returns its root. */
export function makeSite (t: Teardown, files: Files = SITE): string {
  const root = tempDir(t)
  writeFiles(root, files)
  return root
}

/**
 * `data` gzipped as Unity writes a `.unityweb` file: its marker in the header's FCOMMENT field
 * (RFC 1952 §2.3.1, flag bit 4), where Unity's loader looks for it.
 */
export function unityGzip (data: Buffer): Buffer {
  const gz = gzipSync(data, { level: 6 })
  const comment = Buffer.from('UnityWeb Compressed Content (gzip)\0', 'latin1')
  return Buffer.concat([gz.subarray(0, 3), Buffer.from([gz[3]! | 0x10]), gz.subarray(4, 10), comment, gz.subarray(10)])
}

/**
 * `data` in brotli as Unity writes a `.unityweb` file: the stream opens with a metadata meta-block
 * holding Unity's marker (RFC 7932 §9.2), as its compressor's comment option writes it. Node's
 * encoder cannot write metadata, so its stream is taken apart after WBITS (§9.1), the metadata block
 * inserted, and the rest shifted onto the byte boundary that block ends on.
 */
export function unityBrotli (data: Buffer): Buffer {
  const plain = brotliCompressSync(data, { params: { [constants.BROTLI_PARAM_QUALITY]: 5 } })
  const marker = Buffer.from('UnityWeb Compressed Content (brotli)', 'latin1')
  const n = (plain[0]! & 1) === 0 ? 1 : (plain[0]! & 0x0e) !== 0 ? 4 : 7
  // WBITS, then ISLAST 0, MNIBBLES "11", reserved 0, MSKIPBYTES 1, MSKIPLEN-1, least significant bit first.
  const bits = (plain[0]! & ((1 << n) - 1)) + ((0b110 | (1 << 4) | ((marker.length - 1) << 6)) << n)
  const head = Buffer.alloc(Math.ceil((n + 14) / 8))
  for (let i = 0; i < head.length; i++) head[i] = (bits >>> (8 * i)) & 0xff
  const rest = Buffer.alloc(plain.length)
  for (let i = 0; i < plain.length; i++) rest[i] = ((plain[i]! >> n) | ((plain[i + 1] ?? 0) << (8 - n))) & 0xff
  // The shifted stream ends n bits earlier: its last byte may be padding only. Keep the shortest that decodes.
  for (const length of [rest.length - 1, rest.length]) {
    const candidate = Buffer.concat([head, marker, rest.subarray(0, length)])
    try { if (brotliDecompressSync(candidate).equals(data)) return candidate } catch {}
  }
  throw new Error('could not add the Unity marker to the brotli stream')
}
