/**
 * The last stage of the pipeline (STYLE 1): one asset, one request → 200, 206, 304, 406 or 416,
 * for GET and HEAD alike (D9). Headers come precomputed from the catalog; only a range or a
 * per-request CORS origin adds anything here.
 */
import { open, type FileHandle } from 'node:fs/promises'
import { ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { Http2ServerResponse } from 'node:http2'
import { Readable } from 'node:stream'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { hashBuffer, type Asset, type Catalog, type Representation } from './catalog.js'
import { acceptedCodings, negotiate } from './negotiate.js'
import { parseRange } from './range.js'
import { sendError } from './errors.js'
import { BufferPool } from './buffers.js'

export interface SendInput {
  request: FastifyRequest
  reply: FastifyReply
  asset: Asset
  catalog: Catalog
  /** Per-request headers (CORS for a list of origins), applied last. */
  extra?: Record<string, string>
}

/** Answers synchronously from memory; returns a promise only when bytes come from disk. */
export function sendAsset (input: SendInput, attempt = 0): Promise<unknown> | undefined {
  const { request, reply, asset } = input
  const coding = negotiate(request.headers['accept-encoding'], asset.codings)
  if (coding === null) { sendError(reply, 406, errorHeaders(input)); return undefined }
  const rep = asset.reps[asset.codings.indexOf(coding)]!
  const valid = notModified(request, rep, asset)
  if (valid !== undefined) { reply.code(304).headers(merge(valid.notModified, input.extra)).send(); return undefined }
  const range = rangeFor(request, asset)
  if (range === 'unsatisfiable') {
    sendError(reply, 416, { ...errorHeaders(input), 'content-range': `bytes */${asset.identity.size}` })
    return undefined
  }
  if (range !== undefined) {
    const { start, end } = range
    const headers = { ...asset.identity.headers, 'content-length': String(end - start + 1), 'content-range': `bytes ${start}-${end}/${asset.identity.size}` }
    return sendBody(input, { rep: asset.identity, headers: merge(headers, input.extra), status: 206, start, end }, attempt)
  }
  return sendBody(input, { rep, headers: merge(rep.headers, input.extra), status: 200, start: 0, end: rep.size - 1 }, attempt)
}

function merge (headers: Record<string, string>, extra: Record<string, string> | undefined): Record<string, string> {
  return extra === undefined ? headers : { ...headers, ...extra }
}

/** 406 and 416 keep the file's policy headers (CORS, CORP, Vary): a cross-origin fetch must see them to read the status. */
function errorHeaders (input: SendInput): Record<string, string> {
  const { asset } = input
  const vary = asset.identity.headers.vary
  return { ...asset.policy.headers, ...(vary === undefined ? {} : { vary }), ...input.extra }
}

/**
 * D6 / RFC 9110 §13.1.2–13.1.3: If-None-Match (weak comparison, lists, `*`) wins over
 * If-Modified-Since. Returns the representation whose validators the 304 carries, or undefined.
 *
 * A cached copy of another representation of the same bytes that this client accepts also
 * validates: a browser that cached the identity response while the on-the-fly br was being made
 * then revalidates with the identity ETag, and a 304 (which keeps Chrome's compiled-wasm code
 * cache) beats sending the module again. The 304 carries that copy's own ETag.
 */
function notModified (request: FastifyRequest, rep: Representation, asset: Asset): Representation | undefined {
  const inm = request.headers['if-none-match']
  if (inm !== undefined) {
    if (inm.trim() === '*') return rep
    const tags = inm.split(',').map(tag => stripWeak(tag.trim()))
    if (tags.includes(rep.etag)) return rep
    const accepted = acceptedCodings(request.headers['accept-encoding'], asset.codings)
    return asset.reps.find(r => r !== rep && tags.includes(r.etag) && accepted.includes(r.coding) && r.headers['content-type'] === rep.headers['content-type'])
  }
  const ims = request.headers['if-modified-since']
  if (ims === undefined) return undefined
  const since = Date.parse(ims)
  return !Number.isNaN(since) && Math.floor(asset.lastModifiedMs / 1000) * 1000 <= since ? rep : undefined
}

const stripWeak = (tag: string) => tag.startsWith('W/') ? tag.slice(2) : tag

/** D8: a single range of the identity bytes; If-Range must match (strongly) or the whole file is sent. */
function rangeFor (request: FastifyRequest, asset: Asset): { start: number, end: number } | 'unsatisfiable' | undefined {
  const header = request.headers.range
  if (header === undefined) return undefined
  const ifRange = request.headers['if-range']
  if (typeof ifRange === 'string' && !ifRangeMatches(ifRange.trim(), asset)) return undefined
  return parseRange(header, asset.identity.size)
}

function ifRangeMatches (value: string, asset: Asset): boolean {
  if (value.startsWith('"')) return value === asset.identity.etag
  if (value.startsWith('W/')) return false // weak tags never match for ranges (RFC 9110 §13.1.5)
  const date = Date.parse(value)
  return !Number.isNaN(date) && Math.floor(asset.lastModifiedMs / 1000) * 1000 === date
}

/** What to send. Kept apart from SendInput: spreading the request objects into a new one per request measured at half the tiny-file rate. */
interface BodySpec {
  rep: Representation
  headers: Record<string, string>
  status: 200 | 206
  start: number
  end: number
}

function sendBody (input: SendInput, spec: BodySpec, attempt: number): Promise<unknown> | undefined {
  const { reply } = input
  const { rep, start, end } = spec
  if (input.request.method === 'HEAD' || rep.body !== null) {
    reply.code(spec.status).headers(spec.headers)
    if (rep.body === null || input.request.method === 'HEAD') reply.send()
    else reply.send(start === 0 && end === rep.body.length - 1 ? rep.body : rep.body.subarray(start, end + 1))
    return undefined
  }
  return sendFromDisk(input, spec, attempt)
}

async function sendFromDisk (input: SendInput, spec: BodySpec, attempt: number): Promise<unknown> {
  const { reply } = input
  const { rep, start, end } = spec
  const stream = await openChecked(rep, start, end)
  if (stream !== undefined) return reply.code(spec.status).headers(spec.headers).send(stream)
  // The file changed on disk since it was indexed (D16): index it again and answer from the new entry.
  if (attempt >= 2) return sendSnapshot(reply, spec)
  await input.catalog.refresh(input.asset.path)
  const fresh = input.catalog.get(input.asset.path)
  if (fresh === undefined) return reply.callNotFound()
  return sendAsset({ ...input, asset: fresh }, attempt + 1)
}

/**
 * Opens a streamed representation and checks it is still the file the headers describe. The first
 * chunk is read before any header goes out, and the last chunk is held back until a final check: a
 * file rewritten in place while being sent either gets a fresh index and answer (before the
 * headers) or has its connection cut before the response is complete, so a client never accepts
 * bytes that do not match the Content-Length and ETag it was given (D16).
 */
async function openChecked (rep: Representation, start: number, end: number): Promise<Readable | undefined> {
  let fh: FileHandle
  try { fh = await open(rep.file, 'r') } catch { return undefined }
  try {
    const buffer = chunkBuffers.take()
    const first = await readChunk(fh, buffer, start, end)
    if (first === undefined || !(await unchanged(fh, rep))) { await fh.close(); chunkBuffers.give(buffer); return undefined }
    return new FileBody(fh, rep, buffer, { start, end })
  } catch {
    await fh.close()
    return undefined
  }
}

/**
 * Last resort for a file that keeps changing faster than it can be indexed: one consistent snapshot
 * of its bytes (same size, mtime and inode before and after the read), with length and ETag computed
 * from exactly those bytes.
 */
async function sendSnapshot (reply: FastifyReply, input: BodySpec): Promise<unknown> {
  const { rep } = input
  for (let i = 0; i < 5; i++) {
    let fh: FileHandle
    try { fh = await open(rep.file, 'r') } catch { return reply.callNotFound() }
    try {
      const before = await fh.stat()
      const body = await fh.readFile()
      const after = await fh.stat()
      if (before.mtimeMs !== after.mtimeMs || before.size !== after.size || body.length !== after.size) continue
      const slice = input.status === 206 ? body.subarray(input.start, Math.min(input.end, body.length - 1) + 1) : body
      if (input.status === 206 && (input.start >= body.length || slice.length !== input.end - input.start + 1)) continue
      const headers: Record<string, string> = { ...input.headers, 'content-length': String(slice.length), 'last-modified': after.mtime.toUTCString(), etag: `"${hashBuffer(body)}"` }
      delete headers['x-decoded-content-length'] // a sibling caught mid-change: its decoded size is not known
      if (input.status === 206) headers['content-range'] = `bytes ${input.start}-${input.end}/${body.length}`
      return reply.code(input.status).headers(headers).send(slice)
    } finally {
      await fh.close()
    }
  }
  return sendError(reply, 503)
}

const CHUNK = 64 * 1024
/** Enough for the responses a server streams at once; beyond it buffers are simply collected. */
const chunkBuffers = new BufferPool(CHUNK, 32)

/** Reads the next chunk of a range into `buffer`; undefined when the file is shorter than it was. */
async function readChunk (fh: FileHandle, buffer: Buffer, position: number, end: number): Promise<Buffer | undefined> {
  const length = Math.min(buffer.length, end - position + 1)
  const { bytesRead } = await fh.read(buffer, 0, length, position)
  return bytesRead === length ? buffer.subarray(0, length) : undefined
}

async function unchanged (fh: FileHandle, rep: Representation): Promise<boolean> {
  const now = await fh.stat()
  // The inode too: a file renamed over with the same size and mtime (cp -p, reproducible builds) is another file.
  return now.size === rep.size && now.mtimeMs === rep.mtimeMs && (rep.ino === undefined || now.ino === rep.ino)
}

/**
 * The body of a file streamed from disk. Piped into Node's own response (what Fastify does with
 * a stream payload) it reads every chunk into one pooled buffer and writes it with a callback: the
 * buffer is read into again only once the socket is done with it, so a streamed response makes no
 * garbage. Into anything else (an onSend hook that wraps the payload) it is a plain Readable of
 * fresh buffers, since a Writable's callback does not promise the chunk is no longer held.
 */
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

/** What Node's http and http2 responses share; their write callback fires once the socket is done with the chunk. */
interface Destination {
  write: (chunk: Buffer, callback: (err?: Error | null) => void) => boolean
  end: (chunk: Buffer, callback: (err?: Error | null) => void) => unknown
  destroy: (err?: Error) => unknown
}

class FileBody extends Readable {
  constructor (private readonly fh: FileHandle, private readonly rep: Representation, private readonly buffer: Buffer, private readonly range: { start: number, end: number }) {
    super()
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

  private chunks?: AsyncGenerator<Buffer>
  override _read (): void {
    this.chunks ??= this.read_(() => Buffer.allocUnsafe(CHUNK))
    this.chunks.next().then(({ value, done }) => this.push(done === true ? null : value), (err: Error) => this.destroy(err))
  }

  override _destroy (err: Error | null, callback: (err?: Error | null) => void): void {
    // Closes the file even when the reading loop never ran or is parked (a second close is harmless),
    // and stops a write that will not complete from holding the loop.
    this.fh.close().catch(() => {})
    this.abortWrite?.()
    callback(err)
  }

  private abortWrite?: () => void

  private async pump (res: Destination, end: boolean): Promise<void> {
    let left = this.range.end - this.range.start + 1
    for await (const chunk of this.read_(() => this.buffer)) {
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
    chunkBuffers.give(this.buffer)
  }

  private send (res: Destination, chunk: Buffer, last: boolean): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.abortWrite = () => reject(new Error('response closed'))
      const done = (err?: Error | null) => err == null ? resolve() : reject(err)
      if (last) res.end(chunk, done)
      else res.write(chunk, done)
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
   * The range, chunk by chunk, each read into `into()` only after the previous one was taken. The
   * first chunk (read and checked before the headers were set) goes out before any further read, so
   * a failure later can only cut a response already under way, never turn into a 500; bytes from
   * several reads must all be one version of the file, checked before the last chunk goes (D16).
   */
  private async * read_ (into: () => Buffer): AsyncGenerator<Buffer> {
    const { fh, rep, range } = this
    try {
      let pending = this.buffer.subarray(0, Math.min(CHUNK, range.end - range.start + 1))
      let reads = 1
      for (let position = range.start + pending.length; position <= range.end; reads++) {
        yield pending
        const chunk = await readChunk(fh, into(), position, range.end)
        if (chunk === undefined) throw new Error('file shrank while being sent')
        pending = chunk
        position += chunk.length
      }
      if (reads > 1 && !(await unchanged(fh, rep))) throw new Error('file changed while being sent')
      yield pending
    } finally {
      await fh.close()
    }
  }
}
