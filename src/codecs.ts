/**
 * Encoding work the server and `wasm-serve compress` share, over the table of encodings
 * (src/encodings.ts; rules: docs/delivery.md): a buffer encoded one-shot or a slice at a time so it can
 * be stopped, a file encoded into another without holding either in memory (D4), the decoded size a
 * sibling file records (D3, D5), and whether a file is worth encoding at all.
 */
import { isUtf8 } from 'node:buffer'
import { extname } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { open, type FileHandle } from 'node:fs/promises'
import mime from 'mime-types'
import { writeAtomicStream } from './atomic-write.js'
import { encodingOf, type EncodingToken, type Level } from './encodings.js'
import { digestOf } from './etag.js'

// Format details that live with the table, for the modules that import all encoding work from here.
export { zstdAvailable, zstdContentSize, zstdFrameWindowSize, ZSTD_MAX_WINDOW, type Level } from './encodings.js'

/** Encodes `buf` with `token` in one call: 'max' for precompression. */
export async function encode (buf: Buffer, token: EncodingToken, level: Level = 'max'): Promise<Buffer> {
  return encodingOf(token).encode(buf, level)
}

const SLICE = 256 * 1024

/**
 * The same encodings, fed to a zlib stream a slice at a time, for the server: `signal` stops the
 * work between slices. A one-shot brotli call on a 32 MB module occupies a pool thread for minutes
 * and process exit waits for it; a slice takes well under a second.
 */
export async function encodeAbortable (buf: Buffer, token: EncodingToken, level: Level, signal: AbortSignal): Promise<Buffer> {
  const encoder = encodingOf(token).createEncoder({ size: buf.length, text: isUtf8(buf) }, level)
  const chunks: Buffer[] = []
  await pipeline(
    function * () { for (let at = 0; at < buf.length; at += SLICE) yield buf.subarray(at, at + SLICE) },
    encoder,
    async function (source: AsyncIterable<string | Buffer>) { for await (const chunk of source) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk) },
    { signal }
  )
  return Buffer.concat(chunks)
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
  const encoder = encodingOf(input.token).createEncoder({ size: input.size, text: !input.src.endsWith('.wasm') }, input.level)
  await writeAtomicStream(input.dest, out => pipeline(
    createReadStream(input.src, { highWaterMark: 64 * 1024 }),
    async function * (source: AsyncIterable<Buffer>) { for await (const chunk of source) { inHash.update(chunk); yield chunk } },
    encoder,
    async function * (source: AsyncIterable<string | Buffer>) { for await (const chunk of source) { outHash.update(chunk); size += Buffer.byteLength(chunk); yield chunk } },
    out,
    { signal: input.signal }
  ))
  return { size, inputHash: digestOf(inHash), outputHash: digestOf(outHash) }
}

/**
 * D3: the decoded size a sibling file records about itself, for the server and `wasm-serve compress`
 * alike (gzip's ISIZE, zstd's frame content size); undefined where the format records none (br, a
 * zstd frame without it). Throws when the file is not of the format its name says.
 */
export async function recordedDecodedSize (file: string, size: number, token: EncodingToken): Promise<number | undefined> {
  const recorded = encodingOf(token).decodedSize
  if (recorded === undefined) return undefined
  const fh = await open(file, 'r')
  try {
    return await recorded.read((position, length) => readAt(fh, position, length), size)
  } finally {
    await fh.close()
  }
}

/** Whether a recorded decoded size (see recordedDecodedSize) agrees with the original's size. */
export function decodesToSize (recorded: number | undefined, size: number, token: EncodingToken): boolean {
  return recorded === undefined || (encodingOf(token).decodedSize?.agrees(recorded, size) ?? true)
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
