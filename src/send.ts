/**
 * The last stage of the pipeline (resolve → catalog → negotiate → send): one asset, one request →
 * 200, 206, 304, 406 or 416, for GET and HEAD alike (D9 in docs/delivery.md). Headers come
 * precomputed from the catalog; only a range or a per-request CORS origin adds anything here.
 */
import { open, type FileHandle } from 'node:fs/promises'
import type { IncomingHttpHeaders } from 'node:http'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Catalog } from './catalog.js'
import { hashBuffer } from './etag.js'
import { sameFile, stampOf } from './file-identity.js'
import { isTransient, RETRY_AFTER_S, Unavailable } from './transient.js'
import type { Asset, Representation } from './types.js'
import { acceptedCodings, negotiate } from './negotiate.js'
import { parseRanges, type ByteRange } from './range.js'
import { joinPieces, multipart, type Piece } from './multipart.js'
import { sendError } from './http-errors.js'
import { openChecked } from './file-body.js'

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
  const valid = notModified(request.headers, rep, asset)
  if (valid !== undefined) { reply.code(304).headers(merge(valid.notModified, input.extra)).send(); return undefined }
  const range = rangeFor(request, asset)
  if (range === 'unsatisfiable') {
    sendError(reply, 416, { ...errorHeaders(input), 'content-range': `bytes */${asset.identity.size}` })
    return undefined
  }
  if (range?.length === 1) {
    const { start, end } = range[0]!
    const headers = { ...asset.identity.headers, 'content-length': String(end - start + 1), 'content-range': `bytes ${start}-${end}/${asset.identity.size}` }
    return sendBody(input, { rep: asset.identity, headers: merge(headers, input.extra), status: 206, start, end }, attempt)
  }
  if (range !== undefined) return sendBody(input, multipartSpec(input, range), attempt)
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
export function notModified (headers: IncomingHttpHeaders, rep: Representation, asset: Asset): Representation | undefined {
  const inm = headers['if-none-match']
  if (inm !== undefined) {
    if (inm.trim() === '*') return rep
    const tags = inm.split(',').map(tag => stripWeak(tag.trim()))
    if (tags.includes(rep.etag)) return rep
    const accepted = acceptedCodings(headers['accept-encoding'], asset.codings)
    return asset.reps.find(r => r !== rep && tags.includes(r.etag) && accepted.includes(r.coding) && r.headers['content-type'] === rep.headers['content-type'])
  }
  const ims = headers['if-modified-since']
  if (ims === undefined) return undefined
  const since = Date.parse(ims)
  return !Number.isNaN(since) && Math.floor(asset.lastModifiedMs / 1000) * 1000 <= since ? rep : undefined
}

const stripWeak = (tag: string) => tag.startsWith('W/') ? tag.slice(2) : tag

/** D8: ranges of the identity bytes; If-Range must match (strongly) or the whole file is sent. */
function rangeFor (request: FastifyRequest, asset: Asset): ByteRange[] | 'unsatisfiable' | undefined {
  const header = request.headers.range
  if (header === undefined) return undefined
  const ifRange = request.headers['if-range']
  if (typeof ifRange === 'string' && !ifRangeMatches(ifRange.trim(), asset)) return undefined
  return parseRanges(header, asset.identity.size)
}

/** D8: several ranges as one multipart/byteranges 206, with the identity's validators and policy headers. */
function multipartSpec (input: SendInput, ranges: ByteRange[]): BodySpec {
  const { identity } = input.asset
  const body = multipart(ranges, identity.size, identity.headers['content-type']!)
  const headers = { ...identity.headers, 'content-type': body.type, 'content-length': String(body.length) }
  return { rep: identity, headers: merge(headers, input.extra), status: 206, start: 0, end: identity.size - 1, pieces: body.pieces }
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
  /** A multipart body (D8): part headers and the spans between them, in place of start–end. */
  pieces?: Piece[]
}

function sendBody (input: SendInput, spec: BodySpec, attempt: number): Promise<unknown> | undefined {
  const { reply } = input
  const { rep, start, end } = spec
  if (input.request.method === 'HEAD' || rep.body !== null) {
    reply.code(spec.status).headers(spec.headers)
    if (rep.body === null || input.request.method === 'HEAD') reply.send()
    else if (spec.pieces !== undefined) reply.send(joinPieces(spec.pieces, rep.body))
    else reply.send(start === 0 && end === rep.body.length - 1 ? rep.body : rep.body.subarray(start, end + 1))
    return undefined
  }
  return sendFromDisk(input, spec, attempt)
}

async function sendFromDisk (input: SendInput, spec: BodySpec, attempt: number): Promise<unknown> {
  const { reply } = input
  const { rep, start, end } = spec
  const stream = await openChecked(rep, spec.pieces ?? [{ start, end }])
  if (stream !== undefined) return reply.code(spec.status).headers(spec.headers).send(stream)
  // The file changed on disk since it was indexed (D16): index it again and answer from the new entry.
  if (attempt >= 2) return sendSnapshot(reply, spec)
  await input.catalog.refresh(input.asset.path)
  const fresh = input.catalog.get(input.asset.path)
  if (fresh === undefined) return reply.callNotFound()
  return sendAsset({ ...input, asset: fresh }, attempt + 1)
}

/**
 * Last resort for a file that keeps changing faster than it can be indexed: one consistent snapshot
 * of its bytes (the same file before and after the read), with length and ETag computed
 * from exactly those bytes.
 */
async function sendSnapshot (reply: FastifyReply, input: BodySpec): Promise<unknown> {
  const { rep } = input
  for (let i = 0; i < 5; i++) {
    let fh: FileHandle
    try { fh = await open(rep.file, 'r') } catch (err) {
      if (isTransient(err)) throw new Unavailable(err)
      return reply.callNotFound()
    }
    try {
      const before = await fh.stat()
      const body = await fh.readFile()
      const after = await fh.stat()
      if (!sameFile(stampOf(before), stampOf(after)) || body.length !== after.size) continue
      const slice = cut(input, body)
      if (slice === undefined) continue
      const headers: Record<string, string> = { ...input.headers, 'content-length': String(slice.length), etag: `"${hashBuffer(body)}"` }
      // Last-Modified is the original's (D6): only the identity's own bytes bring a new date.
      if (rep.coding === 'identity') headers['last-modified'] = after.mtime.toUTCString()
      delete headers['x-decoded-content-length'] // a sibling caught mid-change: its decoded size is not known
      if (input.status === 206 && input.pieces === undefined) headers['content-range'] = `bytes ${input.start}-${input.end}/${body.length}`
      return reply.code(input.status).headers(headers).send(slice)
    } finally {
      await fh.close()
    }
  }
  return sendError(reply, 503, { 'retry-after': String(RETRY_AFTER_S) })
}

/** What a response sends of a snapshot's bytes; undefined when its range no longer fits them. */
function cut (spec: BodySpec, body: Buffer): Buffer | undefined {
  // Part headers name the size the ranges were cut for: a multipart body needs that size exactly.
  if (spec.pieces !== undefined) return body.length === spec.rep.size ? joinPieces(spec.pieces, body) : undefined
  if (spec.status === 200) return body
  const slice = body.subarray(spec.start, spec.end + 1)
  return slice.length === spec.end - spec.start + 1 ? slice : undefined
}
