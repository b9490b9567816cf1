/**
 * Compression Dictionary Transport (RFC 9842): a browser that holds the previous version of a module
 * sends its hash in `Available-Dictionary`, and gets the new version compressed against it —
 * `dcz` (zstd) or `dcb` (brotli) — a fraction of a fresh download. This module is the format: the
 * feature check, the two codings' headers and limits, the header grammar and the match patterns.
 * The delta store (deltas.ts) decides when to make and send them (docs/delivery.md, "Delta updates").
 */
import { promisify } from 'node:util'
import * as zlib from 'node:zlib'

export type DictionaryCoding = 'dcz' | 'dcb'

type Codec = (buf: Buffer, opts: object, cb: (err: Error | null, out: Buffer) => void) => void
const zlibAny = zlib as unknown as Record<string, unknown> & { constants: Record<string, number> }
const zstdCompress = zlibAny.zstdCompress as Codec | undefined
const brotliCompress = promisify(zlib.brotliCompress)

/**
 * Whether this Node compresses with a raw dictionary, checked by doing it: Node 24 does for both;
 * Node 20 has no zstd, and its brotli silently ignores `dictionary` (the output decodes without it),
 * so a version check would be a guess.
 */
function detect (): Record<DictionaryCoding, boolean> {
  const dictionary = Buffer.from('wasm-serve dictionary probe: the shared part of two versions. '.repeat(20))
  const data = Buffer.concat([dictionary, Buffer.from('and what changed')])
  const usesDictionary = (compressed: Buffer, decode: (b: Buffer, o: object) => Buffer): boolean => {
    try { if (decode(compressed, {}).equals(data)) return false } catch {} // decodable without it: ignored
    try { return decode(compressed, { dictionary }).equals(data) } catch { return false }
  }
  const z = zlibAny as unknown as Record<string, ((b: Buffer, o: object) => Buffer) | undefined>
  const zstdOk = z.zstdCompressSync !== undefined && z.zstdDecompressSync !== undefined &&
    usesDictionary(z.zstdCompressSync(data, { dictionary }), z.zstdDecompressSync)
  const brOk = usesDictionary(zlib.brotliCompressSync(data, { dictionary } as zlib.BrotliOptions), (b, o) => zlib.brotliDecompressSync(b, o as zlib.BrotliOptions))
  return { dcz: zstdOk, dcb: brOk }
}

export const dictionarySupport: Readonly<Record<DictionaryCoding, boolean>> = detect()
export const anyDictionarySupport = dictionarySupport.dcz || dictionarySupport.dcb

/** RFC 9842 §4: the bytes that start a dcz / dcb body, before the 32-byte SHA-256 of the dictionary. */
const MAGIC: Record<DictionaryCoding, Buffer> = {
  dcz: Buffer.from([0x5e, 0x2a, 0x4d, 0x18, 0x20, 0x00, 0x00, 0x00]),
  dcb: Buffer.from([0xff, 0x44, 0x43, 0x42]),
}

const MB = 1024 * 1024
/** RFC 9842 §4.1: a dcz window may be up to the larger of 8 MB and 1.25 × the dictionary's size. */
const dczWindowLimit = (dictionarySize: number) => Math.max(8 * MB, Math.floor(dictionarySize * 1.25))
/** RFC 9842 §4.2: dcb streams are standard brotli: a window of at most 16 MB. */
const DCB_MAX = 16 * MB - 16

/**
 * zstd's fast levels search only small tables and miss matches deep in a large dictionary: at level 3
 * the ffmpeg-core 0.12.6 → 0.12.9 delta against its 32 MB predecessor came out larger than br
 * (9.5 MB), at level 12 it is 0.96 MB in 0.6–2 s (`node bench/dictionary.mjs`).
 */
function zstdLevel (level: DeltaLevel, dictionarySize: number): number {
  if (level === 'max') return 19
  return dictionarySize > 4 * MB ? 12 : 3
}

/** On-the-fly deltas are made fast (zstd level 3 made the sqlite3.wasm update 11 KB); build-time ones dense. */
export type DeltaLevel = 'fast' | 'max'

/**
 * `target` compressed against `dictionary`, with the RFC 9842 header; undefined when this Node cannot
 * or the pair is beyond what browsers accept (the caller then serves br as usual).
 */
export async function encodeDelta (input: { target: Buffer, dictionary: Buffer, dictionaryHash: Buffer, coding: DictionaryCoding, level: DeltaLevel }): Promise<Buffer | undefined> {
  const { target, dictionary, coding, level } = input
  if (!dictionarySupport[coding]) return undefined
  let body: Buffer
  if (coding === 'dcz') {
    const limit = dczWindowLimit(dictionary.length)
    // The window must reach back over the whole dictionary and the target, within the limit.
    const windowLog = Math.min(Math.floor(Math.log2(limit)), Math.max(10, Math.ceil(Math.log2(target.length + dictionary.length))))
    const params = { [zlibAny.constants.ZSTD_c_compressionLevel!]: zstdLevel(level, dictionary.length), [zlibAny.constants.ZSTD_c_windowLog!]: windowLog, [zlibAny.constants.ZSTD_c_contentSizeFlag!]: 1 }
    body = await new Promise((resolve, reject) => zstdCompress!(target, { dictionary, params, pledgedSrcSize: target.length }, (err, out) => err == null ? resolve(out) : reject(err)))
  } else {
    if (target.length > DCB_MAX || dictionary.length > DCB_MAX) return undefined
    const c = zlib.constants
    body = await brotliCompress(target, { dictionary, params: { [c.BROTLI_PARAM_QUALITY]: level === 'fast' ? 5 : 11, [c.BROTLI_PARAM_LGWIN]: 24, [c.BROTLI_PARAM_SIZE_HINT]: target.length } } as zlib.BrotliOptions)
  }
  return Buffer.concat([MAGIC[coding], input.dictionaryHash, body])
}

/** The dictionary hash a dcz/dcb body names, or undefined when it is not one. */
export function namedDictionary (body: Buffer, coding: DictionaryCoding): Buffer | undefined {
  const magic = MAGIC[coding]
  if (body.length < magic.length + 32 || !body.subarray(0, magic.length).equals(magic)) return undefined
  return body.subarray(magic.length, magic.length + 32)
}

/**
 * `Available-Dictionary: :<base64 of a SHA-256>:` (RFC 9842 §2.2, a Structured Field byte sequence):
 * the 32-byte hash, or undefined for anything else — a list, a repeated header, other lengths, bad
 * base64 — which then gets the ordinary negotiation, never an error.
 */
export function parseAvailableDictionary (header: string | string[] | undefined): Buffer | undefined {
  if (typeof header !== 'string' || header.length > 100) return undefined
  const m = /^\s*:([A-Za-z0-9+/]{43}=):\s*$/.exec(header)
  if (m === null) return undefined
  const hash = Buffer.from(m[1]!, 'base64')
  return hash.length === 32 ? hash : undefined
}

/**
 * The match pattern announced for a module (RFC 9842 §2.1.1, URLPattern pathname syntax): a hashed
 * name with its hash replaced by `*`, so the next release's file matches (`/assets/app.3f9a1c2b.wasm`
 * → `/assets/app.*.wasm`); a plain name matches itself (the next release at the same URL).
 */
export function matchPatternFor (urlPath: string, hashedPart: (name: string) => string | undefined): string {
  const slash = urlPath.lastIndexOf('/')
  const name = urlPath.slice(slash + 1)
  // The whole path: a hash without a digit counts only in a bundler folder (D10).
  const hash = hashedPart(urlPath)
  const pattern = hash === undefined ? name : name.replace(hash, '*')
  return escapePattern(urlPath.slice(0, slash + 1)) + escapePattern(pattern).replace('\\*', '*')
}

/** URLPattern's special characters, escaped so a file name means itself. */
const escapePattern = (s: string) => s.replace(/[\\*+?{}()[\]:]/g, c => '\\' + c)

/** Whether a pattern made by matchPatternFor (or configured: `*` wildcards only) covers a URL path. */
export function patternCovers (pattern: string, urlPath: string): boolean {
  const parts = pattern.split(/(?<!\\)\*/).map(p => p.replace(/\\(.)/g, '$1').replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
  return new RegExp('^' + parts.join('.*') + '$').test(urlPath)
}
