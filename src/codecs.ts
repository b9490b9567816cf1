/**
 * The one place that knows how to encode and decode content codings (SPEC D4, §4). Used by
 * `wasm-serve compress` (level 'max', in worker threads) and by the server's on-the-fly compression
 * ('fast' while the 'max' one runs). Every call goes through zlib's async API, so the work runs on
 * libuv's thread pool and never blocks the event loop.
 */
import { isUtf8 } from 'node:buffer'
import { extname } from 'node:path'
import { promisify } from 'node:util'
import { pipeline } from 'node:stream/promises'
import { createHash, randomBytes } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { open, rename, rm, type FileHandle } from 'node:fs/promises'
import * as zlib from 'node:zlib'
import mime from 'mime-types'
import type { EncodingToken } from './encodings.js'
import { digestOf } from './etag.js'

type Codec = (buf: Buffer, opts: object, cb: (err: Error | null, out: Buffer) => void) => void

/**
 * zstd arrived in node:zlib in 22.15 / 23.8; @types/node@20 does not declare it, so it is reached
 * through a loosely typed view and detected at run time rather than by version number.
 */
const zlibAny = zlib as unknown as Record<string, unknown> & { constants: Record<string, number> }
const zstdCompressFn = zlibAny.zstdCompress as Codec | undefined
const zstdDecompressFn = zlibAny.zstdDecompress as Codec | undefined

export const zstdAvailable: boolean =
  typeof zstdCompressFn === 'function' && typeof zstdDecompressFn === 'function'

/** RFC 9659 §3: browsers decode zstd with at most an 8 MB window (Chrome: ERR_ZSTD_WINDOW_SIZE_TOO_BIG). */
export const ZSTD_MAX_WINDOW_LOG = 23
export const ZSTD_MAX_WINDOW = 2 ** ZSTD_MAX_WINDOW_LOG
/** RFC 7932 §9.1: a standard brotli stream has a window of 10..24 bits; browsers reject large-window streams. */
export const BROTLI_MAX_WINDOW_BITS = 24

const brotliCompressAsync = promisify(zlib.brotliCompress)
const brotliDecompressAsync = promisify(zlib.brotliDecompress)
const gzipAsync = promisify(zlib.gzip)
const gunzipAsync = promisify(zlib.gunzip)

function zstdCall (fn: Codec | undefined, buf: Buffer, opts: object): Promise<Buffer> {
  if (fn === undefined) {
    return Promise.reject(new Error(`zstd is not available in Node ${process.version} (needs 22.15+ or 23.8+)`))
  }
  return new Promise((resolve, reject) => {
    fn(buf, opts, (err, out) => { err ? reject(err) : resolve(out) })
  })
}

/** Smallest window (in bits) whose size, 2^bits − 16 (RFC 7932 §9.1), holds the whole input. */
export function brotliWindowBitsFor (size: number): number {
  let bits = 10
  while (bits < BROTLI_MAX_WINDOW_BITS && (2 ** bits) - 16 < size) bits++
  return bits
}

/** Smallest zstd window log holding the input, capped at the browser limit (RFC 9659). */
function zstdWindowLogFor (size: number): number {
  let log = 10
  while (log < ZSTD_MAX_WINDOW_LOG && 2 ** log < size) log++
  return log
}

/**
 * 'max' is for build time (`wasm-serve compress`); 'dense' is the server's on-the-fly setting for
 * large files: br quality 9 with a 4 MB window costs ~16 % in size against q11 on the 32 MB ffmpeg
 * module (8.37 MB vs 7.18 MB) but takes 6 s instead of minutes; 'fast' is a quick first response.
 */
export type Level = 'max' | 'dense' | 'fast'
const BROTLI_QUALITY: Record<Level, number> = { max: 11, dense: 9, fast: 4 }

function brotliOptions (buf: Buffer | { size: number, text: boolean }, level: Level): zlib.BrotliOptions {
  const c = zlib.constants
  const size = Buffer.isBuffer(buf) ? buf.length : buf.size
  const text = Buffer.isBuffer(buf) ? isUtf8(buf) : buf.text
  // Quality 11 is brotli's densest setting; 4 is about as fast as gzip -6 and still denser.
  return {
    params: {
      [c.BROTLI_PARAM_QUALITY]: BROTLI_QUALITY[level],
      // 'dense' caps the window at 4 MB: on the 32 MB ffmpeg module q9 with lgwin 22 is smaller (8,367,469 B
      // vs 8,434,563), 2.7x faster and needs 35 MB less working memory than with lgwin 24.
      [c.BROTLI_PARAM_LGWIN]: level === 'dense' ? Math.min(22, brotliWindowBitsFor(size)) : brotliWindowBitsFor(size),
      [c.BROTLI_PARAM_SIZE_HINT]: Math.min(size, 2 ** 30),
      // TEXT mode tunes literal context modelling for UTF-8; wasm and other binaries stay GENERIC.
      [c.BROTLI_PARAM_MODE]: text ? c.BROTLI_MODE_TEXT : c.BROTLI_MODE_GENERIC,
    },
  }
}

/** zstd params by constant name; only names this Node's zlib knows, so an older build cannot reject them. */
function zstdParams (entries: Array<[string, number]>): Record<number, number> {
  const params: Record<number, number> = {}
  for (const [name, value] of entries) {
    const key = zlibAny.constants[name]
    if (typeof key === 'number') params[key] = value
  }
  return params
}

function zstdOptions (buf: Buffer | { size: number }, level: Level): object {
  const size = Buffer.isBuffer(buf) ? buf.length : buf.size
  const params = zstdParams([
    ['ZSTD_c_compressionLevel', level === 'fast' ? 3 : 19],
    ['ZSTD_c_windowLog', zstdWindowLogFor(size)],
    // The frame content size lets the server spot a stale .zst without decoding it (SPEC D3); zstd
    // records it only when it knows the size up front, hence pledgedSrcSize.
    ['ZSTD_c_contentSizeFlag', 1],
  ])
  return { params, pledgedSrcSize: size }
}

/** Encodes `buf` with `token`; 'max' for precompression, 'fast' for a first on-the-fly response. */
export async function encode (buf: Buffer, token: EncodingToken, level: Level = 'max'): Promise<Buffer> {
  switch (token) {
    case 'br': return brotliCompressAsync(buf, brotliOptions(buf, level))
    case 'gzip': return gzipAsync(buf, { level: level === 'fast' ? 1 : 9 })
    case 'zstd': return zstdCall(zstdCompressFn, buf, zstdOptions(buf, level))
  }
}

const SLICE = 256 * 1024

/**
 * The same encodings, fed to a zlib stream a slice at a time, for the server: `signal` stops the
 * work between slices. A one-shot brotli call on a 32 MB module occupies a pool thread for minutes
 * and process exit waits for it; a slice takes well under a second.
 */
export async function encodeAbortable (buf: Buffer, token: EncodingToken, level: Level, signal: AbortSignal): Promise<Buffer> {
  const encoder = createEncoder(buf, token, level)
  const chunks: Buffer[] = []
  await pipeline(
    function * () { for (let at = 0; at < buf.length; at += SLICE) yield buf.subarray(at, at + SLICE) },
    encoder,
    async function (source: AsyncIterable<string | Buffer>) { for await (const chunk of source) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk) },
    { signal },
  )
  return Buffer.concat(chunks)
}

function createEncoder (buf: Buffer | { size: number, text: boolean }, token: EncodingToken, level: Level): NodeJS.ReadWriteStream {
  switch (token) {
    case 'br': return zlib.createBrotliCompress(brotliOptions(buf, level))
    case 'gzip': return zlib.createGzip({ level: level === 'fast' ? 1 : 9 })
    case 'zstd': {
      const create = zlibAny.createZstdCompress as ((opts: object) => NodeJS.ReadWriteStream) | undefined
      if (create === undefined) throw new Error(`zstd is not available in Node ${process.version} (needs 22.15+ or 23.8+)`)
      return create(zstdOptions(buf, level))
    }
  }
}

/**
 * Encodes a file into another without holding either in memory (the server's on-the-fly encoder for
 * files beyond the memory budget): reads 64 KB at a time, hashes the input on the way (so the caller
 * can check it encoded the content it indexed) and the output (its ETag), writes `dest` atomically.
 */
export async function encodeFile (input: { src: string, dest: string, size: number, token: EncodingToken, level: Level, signal: AbortSignal }): Promise<{ size: number, inputHash: string, outputHash: string }> {
  const inHash = createHash('sha256')
  const outHash = createHash('sha256')
  let size = 0
  const temp = `${input.dest}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
  try {
    await pipeline(
      createReadStream(input.src, { highWaterMark: 64 * 1024 }),
      async function * (source: AsyncIterable<Buffer>) { for await (const chunk of source) { inHash.update(chunk); yield chunk } },
      createEncoder({ size: input.size, text: !input.src.endsWith('.wasm') }, input.token, input.level),
      async function * (source: AsyncIterable<string | Buffer>) { for await (const chunk of source) { outHash.update(chunk); size += Buffer.byteLength(chunk); yield chunk } },
      createWriteStream(temp),
      { signal: input.signal },
    )
    await rename(temp, input.dest)
  } catch (err) {
    await rm(temp, { force: true })
    throw err
  }
  return { size, inputHash: digestOf(inHash), outputHash: digestOf(outHash) }
}

/** Decodes `buf` encoded with `token`. zstd is decoded with the browser window limit enforced. */
export async function decode (buf: Buffer, token: EncodingToken): Promise<Buffer> {
  switch (token) {
    case 'br': return brotliDecompressAsync(buf)
    case 'gzip': return gunzipAsync(buf)
    case 'zstd':
      return zstdCall(zstdDecompressFn, buf, { params: zstdParams([['ZSTD_d_windowLogMax', ZSTD_MAX_WINDOW_LOG]]) })
  }
}

/**
 * WBITS of a brotli stream, from its first bits (RFC 7932 §9.1, read LSB first): 10..24. A large-window
 * stream (the 0010001 marker of the large-window extension, which browsers refuse) gives -1.
 */
export function brotliWindowBits (buf: Buffer): number {
  if (buf.length === 0) throw new RangeError('empty brotli stream')
  const bits = buf.length > 1 ? buf[0] | (buf[1] << 8) : buf[0]
  if ((bits & 1) === 0) return 16
  const n = (bits >> 1) & 7
  if (n !== 0) return 17 + n
  const m = (bits >> 4) & 7
  if (m === 1) return -1
  return m === 0 ? 17 : 8 + m
}

/** Size of the gzip member's uncompressed data mod 2^32 (ISIZE, RFC 1952 §2.3); needs only the last 4 bytes. */
export function gzipDecodedSize (buf: Buffer): number {
  if (buf.length < 4) throw new RangeError('gzip data too short for an ISIZE trailer')
  return buf.readUInt32LE(buf.length - 4)
}

interface ZstdHeader { windowSize: number, contentSize: number | undefined }

const ZSTD_MAGIC = 0xFD2FB528
const DICT_ID_BYTES = [0, 1, 2, 4]
const FCS_BYTES = [0, 2, 4, 8]

/** Parses the first zstd frame header (RFC 8878 §3.1.1.1), skipping skippable frames (§3.1.2). */
function parseZstdHeader (buf: Buffer): ZstdHeader {
  let at = 0
  while (at + 8 <= buf.length && (buf.readUInt32LE(at) & 0xFFFFFFF0) === 0x184D2A50) {
    at += 8 + buf.readUInt32LE(at + 4)
  }
  if (at + 5 > buf.length || buf.readUInt32LE(at) !== ZSTD_MAGIC) throw new RangeError('not a zstd frame')
  const fhd = buf[at + 4]
  const singleSegment = (fhd & 0x20) !== 0
  const fcsFlag = fhd >> 6
  let pos = at + 5
  let windowSize = 0
  if (!singleSegment) {
    if (pos >= buf.length) throw new RangeError('zstd frame header truncated')
    const wd = buf[pos++]
    const windowLog = 10 + (wd >> 3)
    windowSize = 2 ** windowLog + (2 ** windowLog / 8) * (wd & 7)
  }
  pos += DICT_ID_BYTES[fhd & 3]
  const fcsBytes = fcsFlag === 0 && singleSegment ? 1 : FCS_BYTES[fcsFlag]
  if (pos + fcsBytes > buf.length) throw new RangeError('zstd frame header truncated')
  const contentSize = readFcs(buf, pos, fcsBytes)
  return { windowSize: singleSegment ? contentSize ?? 0 : windowSize, contentSize }
}

function readFcs (buf: Buffer, pos: number, bytes: number): number | undefined {
  switch (bytes) {
    case 1: return buf[pos]
    case 2: return buf.readUInt16LE(pos) + 256 // RFC 8878: the 2-byte field is offset by 256
    case 4: return buf.readUInt32LE(pos)
    case 8: return Number(buf.readBigUInt64LE(pos))
    default: return undefined
  }
}

/**
 * Window_Size of the first zstd frame: from the Window_Descriptor, or the Frame_Content_Size when
 * Single_Segment_flag is set (RFC 8878 §3.1.1.1.2). Browsers refuse frames above 8 MB (RFC 9659).
 * Needs only the header (at most 18 bytes after any skippable frames). Throws on a non-zstd buffer.
 */
export function zstdFrameWindowSize (buf: Buffer): number {
  return parseZstdHeader(buf).windowSize
}

/** Frame_Content_Size of the first zstd frame, or undefined when the encoder did not record it. */
export function zstdContentSize (buf: Buffer): number | undefined {
  return parseZstdHeader(buf).contentSize
}

/**
 * D3: the decoded size a sibling file records about itself, for the server and `wasm-serve compress`
 * alike. gzip's ISIZE trailer (the size mod 2^32), zstd's frame content size after any skippable
 * frames; undefined where the format records none (br, a zstd frame without it). Throws when the file
 * is not of the format its name says.
 */
export async function recordedDecodedSize (file: string, size: number, token: EncodingToken): Promise<number | undefined> {
  if (token === 'br') return undefined
  const fh = await open(file, 'r')
  try {
    if (token === 'gzip') return gzipDecodedSize(await readAt(fh, size - 4, 4))
    let at = 0
    for (;;) {
      const head = await readAt(fh, at, 18) // the longest frame header
      if (head.length < 8 || (head.readUInt32LE(0) & 0xFFFFFFF0) !== 0x184D2A50) return zstdContentSize(head)
      at += 8 + head.readUInt32LE(4) // a skippable frame (RFC 8878 §3.1.2)
    }
  } finally {
    await fh.close()
  }
}

/** Whether a recorded decoded size (see recordedDecodedSize) agrees with the original's size. */
export function decodesToSize (recorded: number | undefined, size: number, token: EncodingToken): boolean {
  return recorded === undefined || recorded === (token === 'gzip' ? size % 2 ** 32 : size)
}

async function readAt (fh: FileHandle, position: number, length: number): Promise<Buffer> {
  const { bytesRead, buffer } = await fh.read(Buffer.alloc(Math.max(0, length)), 0, Math.max(0, length), Math.max(0, position))
  return buffer.subarray(0, bytesRead)
}

/**
 * Extensions decided here rather than by MIME type. mime-types has no type for some web formats
 * (.wat, .wast, Emscripten/Unity .data, Godot .pck) and its types for others say nothing about
 * whether the bytes are already compressed (.ico holds BMPs that shrink; .woff2 is brotli inside).
 */
const COMPRESSIBLE_EXT = new Set([
  'wasm', 'wat', 'wast', 'js', 'mjs', 'cjs', 'map', 'css', 'html', 'htm', 'json', 'svg', 'txt',
  'xml', 'md', 'csv', 'ico', 'ttf', 'otf', 'eot', 'data', 'pck', 'webmanifest',
])
const INCOMPRESSIBLE_EXT = new Set([
  'woff', 'woff2', 'png', 'jpg', 'jpeg', 'gif', 'webp', 'avif', 'jxl', 'heic', 'mp4', 'webm', 'mp3',
  'ogg', 'opus', 'zip', 'gz', 'tgz', 'br', 'zst', 'xz', 'bz2', '7z', 'rar', 'pdf',
])
const COMPRESSIBLE_TYPE = /^text\/|^application\/(json|javascript|xml|wasm)$|\+(json|xml)$/

/** Whether encoding the file is worth it: text-like formats and wasm yes, already-compressed media no. */
export function isCompressible (fileName: string): boolean {
  const ext = extname(fileName).slice(1).toLowerCase()
  if (COMPRESSIBLE_EXT.has(ext)) return true
  if (INCOMPRESSIBLE_EXT.has(ext)) return false
  const type = mime.lookup(fileName)
  return type !== false && COMPRESSIBLE_TYPE.test(type)
}
