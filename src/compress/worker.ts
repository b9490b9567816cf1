/**
 * Worker thread of `wasm-serve compress`: reads one file, encodes it at 'max' level (or as a delta
 * against a file of an earlier release), checks the result against the browser limits and hands the
 * bytes back (transferred, not copied). A sibling is encoded by feeding the encoder a chunk at a time
 * and saying after each how many bytes it has taken, so that a 32 MB module at brotli quality 11
 * (minutes) shows byte progress rather than 0 % until it is done. Writing stays in the main thread
 * so that it alone knows which temp files exist and can remove them on interrupt.
 */
import { isUtf8 } from 'node:buffer'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { open, stat } from 'node:fs/promises'
import { parentPort } from 'node:worker_threads'
import { encodeDelta } from '../dictionary.js'
import { encodingOf, type EncodingToken } from '../encodings.js'
import { sameFile, stampOf } from '../file-identity.js'
import type { WorkerJob, WorkerReply } from './types.js'

type Answer = Exclude<WorkerReply, { progress: number }>

/**
 * A file rewritten or replaced while we read it would give a sibling of neither version, so the file
 * at the path after the read must be the one opened before it (src/file-identity.ts).
 */
async function readStable (path: string): Promise<{ data: Buffer, size: number, mtimeMs: number }> {
  const fh = await open(path, 'r')
  try {
    const before = await fh.stat()
    const data = await fh.readFile()
    const after = await stat(path)
    if (!sameFile(stampOf(before), stampOf(after)) || data.length !== after.size) {
      throw new Error('file changed while it was being read; run again')
    }
    return { data, size: after.size, mtimeMs: after.mtimeMs }
  } finally {
    await fh.close()
  }
}

/** A standalone Uint8Array that can be transferred without detaching Buffer's shared pool. */
function ownBytes (buf: Buffer): Uint8Array {
  if (buf.byteOffset === 0 && buf.byteLength === buf.buffer.byteLength) {
    return new Uint8Array(buf.buffer, 0, buf.byteLength)
  }
  return new Uint8Array(buf)
}

/**
 * 1 MiB: at brotli quality 11 the encoder takes a chunk in about a second, which is how often progress
 * can move. The bytes are those of the one-shot encode (brotli, zstd and zlib buffer their input until
 * a block is full, so the chunking does not show in the output; test/compress.test.ts compares).
 */
const CHUNK = 2 ** 20

/** Encodes `data` through the encoding's stream, calling `progress` with the bytes taken so far. */
async function encodeInChunks (data: Buffer, token: EncodingToken, progress: (read: number) => void): Promise<Buffer> {
  const encoder = encodingOf(token).createEncoder({ size: data.length, text: isUtf8(data) }, 'max')
  const out: Buffer[] = []
  encoder.on('data', (chunk: Buffer) => out.push(chunk))
  const ended = once(encoder, 'end')
  // An encoder error rejects both the pending write and `ended`: the write's rejection is the one thrown.
  ended.catch(() => undefined)
  for (let at = 0; at < data.length; at += CHUNK) {
    const chunk = data.subarray(at, at + CHUNK)
    // The write callback fires once the encoder has taken the chunk: waiting for it keeps the count honest.
    await new Promise<void>((resolve, reject) => encoder.write(chunk, err => err == null ? resolve() : reject(err)))
    progress(at + chunk.length)
  }
  encoder.end()
  await ended
  return Buffer.concat(out)
}

async function handle (job: WorkerJob): Promise<Answer> {
  if ('dictionary' in job) return handleDelta(job)
  const started = performance.now()
  const { data, size, mtimeMs } = await readStable(job.path)
  const encoding = encodingOf(job.token)
  const progress = (read: number): void => parentPort?.postMessage({ id: job.id, progress: read })
  progress(0) // the file is read: its encoding starts now
  const encoded = await encodeInChunks(data, job.token, progress)
  // A browser fails the whole response on bytes it refuses (a zstd window over 8 MB, RFC 9659 §3).
  const refusal = encoding.refusal?.(encoded)
  if (refusal !== undefined) throw new Error(refusal)
  return { id: job.id, ok: true, data: ownBytes(encoded), size, mtimeMs, ms: performance.now() - started }
}

/** The delta of a module against a dictionary that must still be the file the plan hashed (its name is in the delta's name). */
async function handleDelta (job: Extract<WorkerJob, { dictionary: string }>): Promise<Answer> {
  const started = performance.now()
  const [{ data, size, mtimeMs }, dictionary] = await Promise.all([readStable(job.path), readStable(job.dictionary)])
  const dictionaryHash = createHash('sha256').update(dictionary.data).digest()
  if (dictionaryHash.toString('hex') !== job.sha256) throw new Error(`${job.dictionary} changed since it was hashed; run again`)
  const delta = await encodeDelta({ target: data, dictionary: dictionary.data, dictionaryHash, coding: job.coding, level: 'max' })
  const reply = { id: job.id, ok: true, size, mtimeMs, ms: performance.now() - started } as const
  return delta === undefined ? { ...reply, data: new Uint8Array(0), beyondLimits: true } : { ...reply, data: ownBytes(delta) }
}

parentPort?.on('message', (job: WorkerJob) => {
  handle(job).then(
    reply => parentPort?.postMessage(reply, reply.ok ? [reply.data.buffer as ArrayBuffer] : []),
    (err: NodeJS.ErrnoException) => parentPort?.postMessage({ id: job.id, ok: false, message: err.message, code: err.code })
  )
})
