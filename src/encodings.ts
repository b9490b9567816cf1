/**
 * The content codings wasm-serve knows, one row each (rules: docs/delivery.md): the Accept-Encoding
 * token, the file suffix of a precompressed sibling (D3), whether this Node can make it, how to encode
 * a buffer or a stream, and the decoded size the encoded bytes record about themselves (D3, D5).
 * Adding an encoding is adding a row. Order is the server's preference for ties (D2: br > zstd > gzip).
 *
 * Every encoder is zlib's async API or a zlib stream, so the work runs on libuv's thread pool and
 * never blocks the event loop.
 */
import { isUtf8 } from 'node:buffer'
import { promisify } from 'node:util'
import * as zlib from 'node:zlib'
import type { DictionaryCoding } from './dictionary.js'

/**
 * 'max' is for build time (`wasm-serve compress`) and the server's smaller files; 'dense' is the
 * server's on-the-fly setting for large files: br quality 9 with a 4 MB window costs ~16 % in size
 * against q11 on the 32 MB ffmpeg module (8.37 MB vs 7.18 MB) but takes 6 s instead of minutes.
 */
export type Level = 'max' | 'dense'

/** What an encoder is told about its input up front: the size (window, size hint) and whether it is text. */
interface EncodeInput { size: number, text: boolean }

/** Reads `length` bytes at `position` of an encoded file (fewer at its end). */
type ReadAt = (position: number, length: number) => Promise<Buffer>

interface Encoding<T extends string = string> {
  token: T
  suffix: string
  /** Why this Node cannot make it (zstd is detected at run time); undefined when it can. */
  unavailable: string | undefined
  /** One-shot encoding of a whole buffer. */
  encode: (buf: Buffer, level: Level) => Promise<Buffer>
  /** The same encoding as a stream, for input fed a slice at a time or read from disk. */
  createEncoder: (input: EncodeInput, level: Level) => NodeJS.ReadWriteStream
  /** Why browsers would refuse these encoded bytes, if they would (a limit the encoder is set to keep). */
  refusal?: (encoded: Buffer) => string | undefined
  /** The decoded size the format records in the encoded bytes; absent where it records none (br). */
  decodedSize?: {
    /** The recorded size, undefined when this file does not record one; throws when it is not of this format. */
    read: (readAt: ReadAt, encodedSize: number) => Promise<number | undefined>
    /** Whether a recorded size agrees with an original of `size` bytes. */
    agrees: (recorded: number, size: number) => boolean
  }
}

/** RFC 9659 §3: browsers decode zstd with at most an 8 MB window (Chrome: ERR_ZSTD_WINDOW_SIZE_TOO_BIG). */
const ZSTD_MAX_WINDOW_LOG = 23
export const ZSTD_MAX_WINDOW = 2 ** ZSTD_MAX_WINDOW_LOG
/** RFC 7932 §9.1: a standard brotli stream has a window of 10..24 bits; browsers reject large-window streams. */
const BROTLI_MAX_WINDOW_BITS = 24

/** Smallest window (in bits) whose size, 2^bits − 16 (RFC 7932 §9.1), holds the whole input. */
export function brotliWindowBitsFor (size: number): number {
  let bits = 10
  while (bits < BROTLI_MAX_WINDOW_BITS && (2 ** bits) - 16 < size) bits++
  return bits
}

const BROTLI_QUALITY: Record<Level, number> = { max: 11, dense: 9 }

function brotliOptions (input: EncodeInput, level: Level): zlib.BrotliOptions {
  const c = zlib.constants
  const bits = brotliWindowBitsFor(input.size)
  return {
    params: {
      [c.BROTLI_PARAM_QUALITY]: BROTLI_QUALITY[level],
      // 'dense' caps the window at 4 MB: on the 32 MB ffmpeg module q9 with lgwin 22 is smaller (8,367,469 B
      // vs 8,434,563), 2.7x faster and needs 35 MB less working memory than with lgwin 24.
      [c.BROTLI_PARAM_LGWIN]: level === 'dense' ? Math.min(22, bits) : bits,
      [c.BROTLI_PARAM_SIZE_HINT]: Math.min(input.size, 2 ** 30),
      // TEXT mode tunes literal context modelling for UTF-8; wasm and other binaries stay GENERIC.
      [c.BROTLI_PARAM_MODE]: input.text ? c.BROTLI_MODE_TEXT : c.BROTLI_MODE_GENERIC,
    },
  }
}

const brotliCompress = promisify(zlib.brotliCompress)
const gzip = promisify(zlib.gzip)
const GZIP_OPTIONS: zlib.ZlibOptions = { level: 9 }

/** Size of the gzip member's uncompressed data mod 2^32 (ISIZE, RFC 1952 §2.3); needs only the last 4 bytes. */
export function gzipDecodedSize (buf: Buffer): number {
  if (buf.length < 4) throw new RangeError('gzip data too short for an ISIZE trailer')
  return buf.readUInt32LE(buf.length - 4)
}

/**
 * zstd arrived in node:zlib in 22.15 / 23.8; @types/node@20 does not declare it, so it is reached
 * through a loosely typed view and detected at run time rather than by version number.
 */
type Callback = (buf: Buffer, opts: object, cb: (err: Error | null, out: Buffer) => void) => void
const zlibAny = zlib as unknown as Record<string, unknown> & { constants: Record<string, number> }
const zstdCompress = zlibAny.zstdCompress as Callback | undefined
const createZstdCompress = zlibAny.createZstdCompress as ((opts: object) => NodeJS.ReadWriteStream) | undefined
const ZSTD_MISSING = typeof zstdCompress === 'function' && typeof createZstdCompress === 'function'
  ? undefined
  : `Node ${process.version} has no zstd in node:zlib (added in 22.15 and 23.8)`

export const zstdAvailable: boolean = ZSTD_MISSING === undefined

function zstdOr<F> (fn: F | undefined): F {
  if (fn === undefined) throw new Error(`cannot encode zstd: ${ZSTD_MISSING ?? ''}`)
  return fn
}

/** Smallest zstd window log holding the input, capped at the browser limit (RFC 9659). */
function zstdWindowLogFor (size: number): number {
  let log = 10
  while (log < ZSTD_MAX_WINDOW_LOG && 2 ** log < size) log++
  return log
}

/** zstd params by constant name; only names this Node's zlib knows, so an older build cannot reject them. */
function zstdOptions (size: number): object {
  const params: Record<number, number> = {}
  for (const [name, value] of [
    ['ZSTD_c_compressionLevel', 19],
    ['ZSTD_c_windowLog', zstdWindowLogFor(size)],
    // The frame content size lets the server spot a stale .zst without decoding it (D3); zstd
    // records it only when it knows the size up front, hence pledgedSrcSize.
    ['ZSTD_c_contentSizeFlag', 1],
  ] as const) {
    const key = zlibAny.constants[name]
    if (typeof key === 'number') params[key] = value
  }
  return { params, pledgedSrcSize: size }
}

async function zstdEncode (buf: Buffer): Promise<Buffer> {
  const fn = zstdOr(zstdCompress)
  return new Promise((resolve, reject) => {
    fn(buf, zstdOptions(buf.length), (err, out) => { err ? reject(err) : resolve(out) })
  })
}

const ZSTD_MAGIC = 0xFD2FB528
const isSkippableFrame = (magic: number): boolean => (magic & 0xFFFFFFF0) === 0x184D2A50
/** The longest zstd frame header: magic, descriptor, window, 4-byte dictionary id, 8-byte content size. */
const ZSTD_HEADER_MAX = 18
const DICT_ID_BYTES = [0, 1, 2, 4]
const FCS_BYTES = [0, 2, 4, 8]

/** Parses the first zstd frame header (RFC 8878 §3.1.1.1), skipping skippable frames (§3.1.2). */
function parseZstdHeader (buf: Buffer): { windowSize: number, contentSize: number | undefined } {
  let at = 0
  while (at + 8 <= buf.length && isSkippableFrame(buf.readUInt32LE(at))) at += 8 + buf.readUInt32LE(at + 4)
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
  if (bytes === 0) return undefined
  if (bytes === 1) return buf[pos]
  if (bytes === 2) return buf.readUInt16LE(pos) + 256 // RFC 8878: the 2-byte field is offset by 256
  return bytes === 4 ? buf.readUInt32LE(pos) : Number(buf.readBigUInt64LE(pos))
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

/** Reads the header of the first data frame from a file, a header at a time past skippable frames. */
async function zstdFileContentSize (readAt: ReadAt): Promise<number | undefined> {
  let at = 0
  for (;;) {
    const head = await readAt(at, ZSTD_HEADER_MAX)
    if (head.length < 8 || !isSkippableFrame(head.readUInt32LE(0))) return zstdContentSize(head)
    at += 8 + head.readUInt32LE(4)
  }
}

/** Lets TypeScript keep each row's token as a literal, so EncodingToken is the union of them. */
const row = <T extends string>(encoding: Encoding<T>): Encoding<T> => encoding

export const ENCODINGS = [
  row({
    token: 'br',
    suffix: '.br',
    unavailable: undefined,
    encode: (buf, level) => brotliCompress(buf, brotliOptions({ size: buf.length, text: isUtf8(buf) }, level)),
    createEncoder: (input, level) => zlib.createBrotliCompress(brotliOptions(input, level)),
  }),
  row({
    token: 'zstd',
    suffix: '.zst',
    unavailable: ZSTD_MISSING,
    encode: zstdEncode,
    createEncoder: input => zstdOr(createZstdCompress)(zstdOptions(input.size)),
    refusal: encoded => {
      const window = zstdFrameWindowSize(encoded)
      return window > ZSTD_MAX_WINDOW ? `zstd frame window ${window} B exceeds the 8 MB browser limit` : undefined
    },
    decodedSize: { read: zstdFileContentSize, agrees: (recorded, size) => recorded === size },
  }),
  row({
    token: 'gzip',
    suffix: '.gz',
    unavailable: undefined,
    encode: buf => gzip(buf, GZIP_OPTIONS),
    createEncoder: () => zlib.createGzip(GZIP_OPTIONS),
    decodedSize: {
      read: async (readAt, encodedSize) => gzipDecodedSize(await readAt(encodedSize - 4, 4)),
      agrees: (recorded, size) => recorded === size % 2 ** 32, // ISIZE keeps the size mod 2^32
    },
  }),
] as const

export type EncodingToken = (typeof ENCODINGS)[number]['token']
/** Every content coding a representation can have: a sibling's, identity, or a delta's (RFC 9842). */
export type Coding = EncodingToken | 'identity' | DictionaryCoding

/** The row of a token. */
export function encodingOf (token: EncodingToken): Encoding<EncodingToken> {
  const found = ENCODINGS.find(e => e.token === token)
  if (found === undefined) throw new RangeError(`unknown encoding ${String(token)}`)
  return found
}

/** The encoding a sibling suffix stands for (`.br` → br), or undefined. */
export function encodingOfSuffix (name: string): (typeof ENCODINGS)[number] | undefined {
  return ENCODINGS.find(e => name.endsWith(e.suffix))
}
