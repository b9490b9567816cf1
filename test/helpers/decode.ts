/**
 * Decoders for the tests, which check that what wasm-serve encodes decodes to the original. The
 * server itself never decodes. A Record, so that a new row in ENCODINGS does not compile here until
 * it has a decoder, and the round-trip tests then cover it.
 */
import { createHash } from 'node:crypto'
import { promisify } from 'node:util'
import * as zlib from 'node:zlib'
import type { EncodingToken } from '../../src/encodings.js'

/** zstd is absent from @types/node@20 and from node:zlib before 22.15 / 23.8. */
const zstdDecompress = (zlib as unknown as Record<string, unknown>).zstdDecompress as
  ((buf: Buffer, opts: object, cb: (err: Error | null, out: Buffer) => void) => void) | undefined

/** RFC 9659 §3: browsers decode zstd with at most an 8 MB window; decoding here enforces the same. */
const ZSTD_D_WINDOW_LOG_MAX = (zlib.constants as unknown as Record<string, number>).ZSTD_d_windowLogMax

const DECODERS: Record<EncodingToken, (buf: Buffer) => Promise<Buffer>> = {
  br: promisify(zlib.brotliDecompress),
  gzip: promisify(zlib.gunzip),
  zstd: async buf => new Promise((resolve, reject) => {
    if (zstdDecompress === undefined) throw new Error(`Node ${process.version} has no zstd in node:zlib`)
    zstdDecompress(buf, { params: { [ZSTD_D_WINDOW_LOG_MAX]: 23 } }, (err, out) => { err ? reject(err) : resolve(out) })
  }),
}

/** Decodes `buf` encoded with `token`. */
export async function decode (buf: Buffer, token: EncodingToken): Promise<Buffer> {
  return DECODERS[token](buf)
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

/** What a browser does with a dcz/dcb body (RFC 9842 §4): check the header names the dictionary, decode the rest with it. */
export function decodeDelta (body: Buffer, coding: string, dictionary: Buffer): Buffer {
  const magic = coding === 'dcz' ? Buffer.from([0x5e, 0x2a, 0x4d, 0x18, 0x20, 0, 0, 0]) : Buffer.from([0xff, 0x44, 0x43, 0x42])
  if (!body.subarray(0, magic.length).equals(magic)) throw new Error('no RFC 9842 header')
  if (!body.subarray(magic.length, magic.length + 32).equals(createHash('sha256').update(dictionary).digest())) throw new Error('the header names another dictionary')
  const rest = body.subarray(magic.length + 32)
  const z = zlib as unknown as Record<string, (b: Buffer, o: object) => Buffer>
  return coding === 'dcz' ? z.zstdDecompressSync!(rest, { dictionary }) : zlib.brotliDecompressSync(rest, { dictionary } as zlib.BrotliOptions)
}
