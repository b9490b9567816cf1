/**
 * Worker thread of `wasm-serve compress`: reads one file, encodes it at 'max' level, checks the result
 * against the browser limits and hands the bytes back (transferred, not copied). Writing stays in the
 * main thread so that it alone knows which temp files exist and can remove them on interrupt.
 */
import { open } from 'node:fs/promises'
import { parentPort } from 'node:worker_threads'
import { encode, zstdFrameWindowSize, ZSTD_MAX_WINDOW } from '../codecs.js'
import type { WorkerJob, WorkerReply } from './types.js'

async function readStable (path: string): Promise<{ data: Buffer, size: number, mtimeMs: number }> {
  const fh = await open(path, 'r')
  try {
    const before = await fh.stat()
    const data = await fh.readFile()
    const after = await fh.stat()
    // A file rewritten while we read it would give a sibling of neither version.
    if (after.mtimeMs !== before.mtimeMs || data.length !== after.size) {
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
  const started = performance.now()
  const { data, size, mtimeMs } = await readStable(job.path)
  const encoded = await encode(data, job.token, 'max')
  if (job.token === 'zstd' && zstdFrameWindowSize(encoded) > ZSTD_MAX_WINDOW) {
    // RFC 9659 §3: a larger window makes Chrome fail the whole response.
    throw new Error(`zstd frame window ${zstdFrameWindowSize(encoded)} B exceeds the 8 MB browser limit`)
  }
  return { id: job.id, ok: true, data: ownBytes(encoded), size, mtimeMs, ms: performance.now() - started }
}

parentPort?.on('message', (job: WorkerJob) => {
  handle(job).then(
    reply => parentPort?.postMessage(reply, reply.ok ? [reply.data.buffer as ArrayBuffer] : []),
    (err: NodeJS.ErrnoException) => parentPort?.postMessage({ id: job.id, ok: false, message: err.message, code: err.code }),
  )
})
