/**
 * Worker thread of `wasm-serve compress`: reads one file, encodes it at 'max' level (or as a delta
 * against a file of an earlier release), checks the result against the browser limits and hands the
 * bytes back (transferred, not copied). Writing stays in the main thread so that it alone knows which
 * temp files exist and can remove them on interrupt.
 */
import { createHash } from 'node:crypto'
import { open, stat } from 'node:fs/promises'
import { parentPort } from 'node:worker_threads'
import { encodeDelta } from '../dictionary.js'
import { encodingOf } from '../encodings.js'
import { sameFile, stampOf } from '../file-identity.js'
import type { WorkerJob, WorkerReply } from './types.js'

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

async function handle (job: WorkerJob): Promise<WorkerReply> {
  if ('dictionary' in job) return handleDelta(job)
  const started = performance.now()
  const { data, size, mtimeMs } = await readStable(job.path)
  const encoding = encodingOf(job.token)
  const encoded = await encoding.encode(data, 'max')
  // A browser fails the whole response on bytes it refuses (a zstd window over 8 MB, RFC 9659 §3).
  const refusal = encoding.refusal?.(encoded)
  if (refusal !== undefined) throw new Error(refusal)
  return { id: job.id, ok: true, data: ownBytes(encoded), size, mtimeMs, ms: performance.now() - started }
}

/** The delta of a module against a dictionary that must still be the file the plan hashed (its name is in the delta's name). */
async function handleDelta (job: Extract<WorkerJob, { dictionary: string }>): Promise<WorkerReply> {
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
