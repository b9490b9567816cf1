/**
 * The one fixture system: real wasm modules from installed packages and their precompressed
 * siblings, made in memory when a test file loads (nothing is generated ahead of the run), and
 * sites written into temporary directories that are removed when the test ends.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { brotliCompressSync, constants, gzipSync } from 'node:zlib'

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
