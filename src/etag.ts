/**
 * The content hash behind every ETag (D6 in docs/delivery.md): sha256, base64url, first 27
 * characters (160 bits). One recipe for files held in memory, files hashed from disk a slice at a
 * time, and encodings made on the fly, whose hashes are compared with the catalog's ETags.
 */
import { createHash, type Hash } from 'node:crypto'
import { open, type FileHandle } from 'node:fs/promises'
import { BufferPool } from './buffers.js'

export const digestOf = (hash: Hash): string => tagOf(hash.digest())

/** The ETag value (without quotes) of a full sha256 digest. */
export const tagOf = (sha256: Buffer): string => sha256.toString('base64url').slice(0, 27)

export const hashBuffer = (buf: Buffer): string => digestOf(createHash('sha256').update(buf))

const SLICE = 1 << 20

/** The same hash, a megabyte at a time with a turn of the event loop in between: for files re-indexed while serving. */
export async function hashBufferAsync (buf: Buffer): Promise<string> {
  return tagOf(await sha256Async(buf))
}

/** The full sha256 of a buffer, a megabyte at a time (the full digest also names a dictionary, RFC 9842 §2.2). */
export async function sha256Async (buf: Buffer): Promise<Buffer> {
  const hash = createHash('sha256')
  for (let at = 0; at < buf.length; at += SLICE) {
    hash.update(buf.subarray(at, at + SLICE))
    if (at + SLICE < buf.length) await new Promise(resolve => setImmediate(resolve))
  }
  return hash.digest()
}

/**
 * Read buffers for hashing files that stay on disk are reused: a fresh megabyte per file made RSS
 * grow by tens of MB over a large root (allocator churn, docs/memory.md), though the bytes were
 * garbage at once. The catalog keeps one per parallel indexer while it walks the root, one after.
 */
export const hashBuffers = new BufferPool(SLICE, 1)

/** Full sha256 of the first `size` bytes of an open file. */
export async function hashHandle (fh: FileHandle, size: number): Promise<Buffer> {
  const hash = createHash('sha256')
  const chunk = hashBuffers.take()
  try {
    for (let position = 0; position < size;) {
      const { bytesRead } = await fh.read(chunk, 0, Math.min(chunk.length, size - position), position)
      if (bytesRead === 0) break
      hash.update(chunk.subarray(0, bytesRead))
      position += bytesRead
    }
  } finally {
    hashBuffers.give(chunk)
  }
  return hash.digest()
}

/** ETag of a whole file read a slice at a time (an encoding too large for memory). */
export async function etagOfFile (file: string): Promise<string> {
  const fh = await open(file, 'r')
  try { return `"${tagOf(await hashHandle(fh, (await fh.stat()).size))}"` } finally { await fh.close() }
}
