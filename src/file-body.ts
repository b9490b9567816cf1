/**
 * Bodies of files streamed from disk (beyond the memory budget), for send.ts. Two promises: the
 * bytes sent are one version of the file, the one the headers describe (D16), and a streamed
 * response leaves no garbage behind (docs/memory.md): every chunk of a response is read into
 * one pooled buffer, read into again only once the socket is done with it. Dead read buffers are
 * only returned when V8 next collects; serving a root larger than the budget grew RSS by 20–35 MB
 * of them (`node bench/run.mjs --memory`).
 */
import { open, type FileHandle } from 'node:fs/promises'
import { ServerResponse } from 'node:http'
import { Http2ServerResponse } from 'node:http2'
import type { Socket } from 'node:net'
import { Readable } from 'node:stream'
import { BufferPool } from './buffers.js'
import { sameFile, stampOf } from './file-identity.js'
import { isSpan, type Piece } from './multipart.js'
import type { ByteRange } from './range.js'
import type { Representation } from './types.js'

const CHUNK = 64 * 1024

/** Files being sent right now, with how many responses send each. */
const sending = new Map<string, number>()

/** Whether a response is streaming `file` right now (the cache directory must not touch it meanwhile). */
export const isBeingSent = (file: string): boolean => sending.has(file)
/** Enough for the responses a server streams at once; beyond it buffers are simply collected. */
const chunkBuffers = new BufferPool(CHUNK, 32)

/**
 * Opens a streamed representation and checks it is still the file the headers describe. The body
 * is one span of the file, or (a multipart body, D8) spans with part headers between them. The first
 * chunk is read before any header goes out, and the last chunk is held back until a final check: a
 * file rewritten in place while being sent either gets a fresh index and answer (before the
 * headers) or has its connection cut before the response is complete, so a client never accepts
 * bytes that do not match the Content-Length and ETag it was given (D16). Undefined when the file
 * is not the one indexed any more.
 */
export async function openChecked (rep: Representation, pieces: Piece[]): Promise<Readable | undefined> {
  let fh: FileHandle
  try { fh = await open(rep.file, 'r') } catch { return undefined }
  const buffer = chunkBuffers.take()
  try {
    const span = pieces.find(isSpan)!
    const first = await readChunk(fh, buffer, span, span.start)
    if (first !== undefined && await unchanged(fh, rep)) return new FileBody({ fh, rep, buffer, first, pieces })
  } catch {} // unreadable now: handled like a file that changed, by the caller re-indexing it
  await fh.close()
  chunkBuffers.give(buffer)
  return undefined
}

/** Reads the chunk of a span at `from` into `buffer`; undefined when the file is shorter than it was. */
async function readChunk (fh: FileHandle, buffer: Buffer, span: ByteRange, from: number): Promise<Buffer | undefined> {
  const length = Math.min(buffer.length, span.end - from + 1)
  const { bytesRead } = await fh.read(buffer, 0, length, from)
  return bytesRead === length ? buffer.subarray(0, length) : undefined
}

async function unchanged (fh: FileHandle, rep: Representation): Promise<boolean> {
  return rep.stamp !== null && sameFile(stampOf(await fh.stat()), rep.stamp)
}

/** What Node's http and http2 responses share; their write callback fires once the socket is done with the chunk. */
interface Destination {
  write: (chunk: Buffer, callback: (err?: Error | null) => void) => boolean
  end: (chunk: Buffer, callback: (err?: Error | null) => void) => unknown
  destroy: (err?: Error) => unknown
  once: (event: 'close', listener: () => void) => unknown
}

interface FileBodyInput {
  fh: FileHandle
  rep: Representation
  /** The pooled buffer every chunk is read into when piped into Node's response. */
  buffer: Buffer
  /** The first chunk of the first span, already read into `buffer` and checked. */
  first: Buffer
  pieces: Piece[]
}

/**
 * Piped into Node's own response (what Fastify does with a stream payload), the body reads every
 * chunk into the pooled buffer that holds the first one and writes it with a callback. Into
 * anything else (an onSend hook that wraps the payload) it is a plain Readable of fresh buffers,
 * since a Writable's callback does not promise the chunk is no longer held.
 */
class FileBody extends Readable {
  private chunks?: AsyncGenerator<Buffer>
  private abortWrite?: () => void

  constructor (private readonly input: FileBodyInput) {
    super()
    sending.set(input.rep.file, (sending.get(input.rep.file) ?? 0) + 1)
  }

  override pipe<T extends NodeJS.WritableStream> (destination: T, options?: { end?: boolean }): T {
    if (!(destination instanceof ServerResponse || destination instanceof Http2ServerResponse)) return super.pipe(destination, options)
    const res = destination as unknown as Destination
    if (destination instanceof ServerResponse) closeWithConnection(destination.req.socket, this)
    this.pump(res, options?.end !== false).catch((err: Error) => {
      // Cut with an error: over HTTP/2 a bare destroy resets the stream with NO_ERROR, which a client
      // may take for a complete body (D16).
      res.destroy(err)
      this.destroy(err)
    })
    return destination
  }

  override _read (): void {
    this.chunks ??= this.read_(() => Buffer.allocUnsafe(CHUNK))
    this.chunks.next().then(({ value, done }) => this.push(done === true ? null : value), (err: Error) => this.destroy(err))
  }

  override _destroy (err: Error | null, callback: (err?: Error | null) => void): void {
    // Closes the file even when the reading loop never ran or is parked (a second close is harmless),
    // and stops a write that will not complete from holding the loop.
    this.input.fh.close().catch(() => {})
    this.abortWrite?.()
    const left = (sending.get(this.input.rep.file) ?? 1) - 1
    if (left > 0) sending.set(this.input.rep.file, left)
    else sending.delete(this.input.rep.file)
    callback(err)
  }

  private async pump (res: Destination, end: boolean): Promise<void> {
    const { buffer } = this.input
    let left = 0
    for (const piece of this.input.pieces) left += isSpan(piece) ? piece.end - piece.start + 1 : piece.length
    for await (const chunk of this.read_(() => buffer)) {
      if (this.destroyed) return
      left -= chunk.length
      if (left > 0 || !end) { await this.send(res, chunk, false); continue }
      // The body ends before the response does, so Fastify sees a finished source rather than a
      // response closed under an open one. The last chunk goes with end(): the response is finished
      // the moment its bytes are out, and a keep-alive connection is idle again before the client,
      // holding every byte, can ask the server to close.
      await this.finish()
      if (this.errored !== null) return
      await this.send(res, chunk, true)
    }
    if (!end) await this.finish() // trailers follow: Fastify ends the response when the body ends
    // Only a buffer whose every write completed is reused; after an abort, the collector has it.
    chunkBuffers.give(buffer)
  }

  private send (res: Destination, chunk: Buffer, last: boolean): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const done = (err?: Error | null) => err == null ? resolve() : reject(err)
      if (!last) {
        this.abortWrite = () => reject(new Error('response closed'))
        res.write(chunk, done)
        return
      }
      // This body has closed by now: the response's own close stands in for _destroy. After a
      // finish it settles nothing; before one, the connection went and the buffer is not reused.
      res.once('close', () => reject(new Error('response closed')))
      res.end(chunk, done)
    })
  }

  /** Ends this body (nothing reads it: the bytes went straight to the response) and waits until it has closed. */
  private finish (): Promise<void> {
    return new Promise(resolve => {
      this.once('close', resolve)
      this.push(null)
      this.resume()
    })
  }

  /**
   * The pieces, chunk by chunk, each span's chunks read into `into()` only after the previous chunk
   * was taken. The first chunk (read and checked before the headers were set) goes out before any
   * further read, so a failure later can only cut a response already under way, never turn into a
   * 500; bytes from several reads must all be one version of the file, checked before the last
   * chunk goes (D16).
   */
  private async * read_ (into: () => Buffer): AsyncGenerator<Buffer> {
    const { fh, rep, first, pieces } = this.input
    try {
      let pending: Buffer | undefined
      let reads = 0
      for (const piece of pieces) {
        if (!isSpan(piece)) {
          if (pending !== undefined) yield pending
          pending = piece
          continue
        }
        let from = piece.start
        do {
          if (pending !== undefined) yield pending
          const chunk = reads === 0 ? first : await readChunk(fh, into(), piece, from)
          if (chunk === undefined) throw new Error('file shrank while being sent')
          reads++
          pending = chunk
          from += chunk.length
        } while (from <= piece.end)
      }
      if (reads > 1 && !(await unchanged(fh, rep))) throw new Error('file changed while being sent')
      if (pending !== undefined) yield pending
    } finally {
      await fh.close()
    }
  }
}

/**
 * Node 20 never closes an HTTP/1 response still queued behind another (pipelining) when its
 * connection dies, so Fastify never destroys its body and the file would stay open until garbage
 * collection. Bodies are destroyed with their connection; one listener per connection, however many
 * responses are queued on it.
 */
const bodiesOnConnection = new WeakMap<Socket, Set<Readable>>()
function closeWithConnection (socket: Socket | null, body: Readable): void {
  if (socket === null) return
  if (socket.destroyed) { body.destroy(); return }
  let bodies = bodiesOnConnection.get(socket)
  if (bodies === undefined) {
    const set = bodies = new Set()
    bodiesOnConnection.set(socket, set)
    socket.once('close', () => { for (const b of set) b.destroy() })
  }
  bodies.add(body)
  body.once('close', () => bodies.delete(body))
}
