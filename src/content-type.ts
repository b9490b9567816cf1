import { extname } from 'node:path'
import mime from 'mime-types'
import { encodingOfSuffix } from './encodings.js'
import { unityWebInner } from './unityweb.js'

/**
 * Content-Type for a file name (D1 in docs/delivery.md). `.wasm` is always exactly `application/wasm`: browsers
 * reject any parameter (`application/wasm; charset=utf-8`) in instantiateStreaming (WebAssembly
 * web-api spec, "Content-Type is not application/wasm"). Text types carry `; charset=utf-8`.
 * Unity's `game.wasm.unityweb` is typed as the name inside it, `game.wasm` (unityweb.ts).
 */
export function contentTypeFor (name: string): string {
  const inner = unityWebInner(name)
  if (inner !== undefined) return contentTypeFor(inner)
  if (name.toLowerCase().endsWith('.wasm')) return 'application/wasm'
  const data = DATA_TYPES.get(extname(name).toLowerCase())
  if (data !== undefined) return data
  return mime.contentType(name.slice(name.lastIndexOf('/') + 1)) || 'application/octet-stream'
}

/**
 * Data files that range readers open in place (D8): their IANA-registered types, which mime-types
 * knows by name but not by extension. `.db`, `.duckdb` and Emscripten's `.data` name no registered
 * format and stay application/octet-stream.
 */
const DATA_TYPES = new Map([
  ['.sqlite', 'application/vnd.sqlite3'],
  ['.sqlite3', 'application/vnd.sqlite3'],
  ['.parquet', 'application/vnd.apache.parquet'],
  ['.arrow', 'application/vnd.apache.arrow.file'],
])

/** The name a sibling stands for: `x.wasm.br` → `x.wasm` (D3), or the name itself. */
export function originalName (name: string): string {
  const enc = encodingOfSuffix(name)
  return enc === undefined ? name : name.slice(0, -enc.suffix.length)
}
