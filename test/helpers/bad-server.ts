/**
 * A bare node:http server that gets WebAssembly delivery wrong in every way `wasm-serve check` looks
 * for, each fault switchable so a test can break one rule at a time: a charset on wasm, brotli for
 * any Accept-Encoding naming br (q=0 too) and gzip for none at all, gzip sent chunked, no Vary, one
 * strong ETag for every encoding, no ranges, a wrong X-Decoded-Content-Length, a page pinned for a
 * year, hashed names revalidated, dotfiles served, index.html for any missing path, preload links
 * without crossorigin, and a HEAD that disagrees with GET. Served from memory, on 127.0.0.1 port 0.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { brotliCompressSync, constants, gzipSync } from 'node:zlib'
import { isHashedName } from '../../src/policy.js'
import type { Files } from './site.js'

export interface Faults {
  /** `application/wasm; charset=utf-8` */
  wasmCharset: boolean
  /** br whenever Accept-Encoding contains "br", whatever its q-value (else gzip, then identity, by substring) */
  substringBr: boolean
  /** gzip for a request without Accept-Encoding */
  encodesUnasked: boolean
  /** gzip responses chunked, without Content-Length */
  chunkedGzip: boolean
  /** identity responses chunked too */
  chunkedIdentity: boolean
  noVary: boolean
  /** one strong ETag for every representation of a file */
  sharedEtag: boolean
  /** Range ignored: always the whole file, 200 */
  noRanges: boolean
  /** X-Decoded-Content-Length one more than the identity size */
  wrongDecodedLength: boolean
  /** pages `public, max-age=31536000, immutable` */
  immutableHtml: boolean
  /** hashed names `no-cache` like everything else (fault off: a year, immutable) */
  hashedNoCache: boolean
  /** dotfiles of `files` served */
  dotfiles: boolean
  /** index.html, 200, for any missing path (a .wasm too) */
  spaFallback: boolean
  /** pages carry `Link: </x.wasm>; rel=preload; as=fetch` for each module, without crossorigin */
  preloadNoCrossorigin: boolean
  /** HEAD answers application/octet-stream */
  headType: boolean
  /** the Server header sent, if any */
  server?: string
}

export const ALL_FAULTS: Faults = {
  wasmCharset: true,
  substringBr: true,
  encodesUnasked: true,
  chunkedGzip: true,
  chunkedIdentity: false,
  noVary: true,
  sharedEtag: true,
  noRanges: true,
  wrongDecodedLength: true,
  immutableHtml: true,
  hashedNoCache: true,
  dotfiles: true,
  spaFallback: true,
  preloadNoCrossorigin: true,
  headType: true,
}

/** Every fault off: a plain, correct server (no isolation, no preload, no 103). */
export const NO_FAULTS: Faults = Object.fromEntries(Object.entries(ALL_FAULTS).map(([k]) => [k, false])) as unknown as Faults

interface Teardown { teardown: (fn: () => unknown) => void }

const TYPES: Record<string, string> = { wasm: 'application/wasm', html: 'text/html; charset=utf-8', js: 'text/javascript; charset=utf-8', env: 'text/plain' }

/** Starts the server for `t` (closed at teardown); returns its base URL, e.g. http://127.0.0.1:41234. */
export async function startBadServer (t: Teardown, files: Files, faults: Partial<Faults> = {}): Promise<string> {
  const f: Faults = { ...ALL_FAULTS, ...faults }
  const encoded = new Map<string, Buffer>()
  const encode = (name: string, coding: 'br' | 'gzip', bytes: Buffer): Buffer => {
    const key = `${coding} ${name}`
    if (!encoded.has(key)) encoded.set(key, coding === 'br' ? brotliCompressSync(bytes, { params: { [constants.BROTLI_PARAM_QUALITY]: 4 } }) : gzipSync(bytes))
    return encoded.get(key)!
  }
  const server = createServer((req, res) => answer(req, res, { files, f, encode }))
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>(resolve => { server.closeAllConnections(); server.close(() => resolve()) }))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

/** The coding this server picks: by substring, or (fault off) honouring q=0. */
function pick (accept: string | undefined, f: Faults): 'br' | 'gzip' | 'identity' {
  if (accept === undefined) return f.encodesUnasked ? 'gzip' : 'identity'
  const refused = (c: string) => !f.substringBr && new RegExp(`${c}\\s*;\\s*q=0(\\.0*)?\\s*(,|$)`).test(accept)
  if (accept.includes('br') && !refused('br')) return 'br'
  if (accept.includes('gzip') && !refused('gzip')) return 'gzip'
  return 'identity'
}

interface Served { files: Files, f: Faults, encode: (name: string, coding: 'br' | 'gzip', bytes: Buffer) => Buffer }

function answer (req: IncomingMessage, res: ServerResponse, { files, f, encode }: Served): void {
  const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname).replace(/^\//, '') || 'index.html'
  const hidden = path.split('/').some(p => p.startsWith('.')) && !f.dotfiles
  let name = path
  if (!(name in files) || hidden) {
    if (!f.spaFallback || !('index.html' in files)) { res.writeHead(404, { 'content-type': 'text/plain' }).end('Not Found\n'); return }
    name = 'index.html'
  }
  const identity = Buffer.from(files[name]!)
  const ext = name.slice(name.lastIndexOf('.') + 1)
  const html = ext === 'html'
  let type = TYPES[ext] ?? 'application/octet-stream'
  if (ext === 'wasm' && f.wasmCharset) type += '; charset=utf-8'
  if (req.method === 'HEAD' && f.headType) type = 'application/octet-stream'
  const coding = pick(req.headers['accept-encoding'], f)
  const body = coding === 'identity' ? identity : encode(name, coding, identity)
  const headers: Record<string, string> = { 'content-type': type }
  if (f.server !== undefined) headers.server = f.server
  headers.etag = f.sharedEtag ? `"${identity.length}-1"` : `"${identity.length}-${coding}"`
  const immutable = 'public, max-age=31536000, immutable'
  headers['cache-control'] = html ? (f.immutableHtml ? immutable : 'no-cache') : isHashedName(name) && !f.hashedNoCache ? immutable : 'no-cache'
  if (!f.noVary) headers.vary = 'Accept-Encoding'
  if (coding !== 'identity') {
    headers['content-encoding'] = coding
    headers['x-decoded-content-length'] = String(identity.length + (f.wrongDecodedLength ? 1 : 0))
  }
  if (html && f.preloadNoCrossorigin) {
    const links = Object.keys(files).filter(p => p.endsWith('.wasm')).map(p => `</${p}>; rel=preload; as=fetch`)
    if (links.length > 0) headers.link = links.join(', ')
  }
  if (req.headers['if-none-match'] === headers.etag) { res.writeHead(304, headers).end(); return }
  const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '')
  if (range !== null && !f.noRanges && coding === 'identity') {
    const [start, end] = [Number(range[1]), Math.min(Number(range[2]), identity.length - 1)]
    res.writeHead(206, { ...headers, 'content-range': `bytes ${start}-${end}/${identity.length}`, 'content-length': String(end - start + 1) })
    res.end(req.method === 'HEAD' ? undefined : identity.subarray(start, end + 1))
    return
  }
  const chunked = (coding === 'gzip' && f.chunkedGzip) || (coding === 'identity' && f.chunkedIdentity)
  if (!chunked) headers['content-length'] = String(body.length)
  res.writeHead(200, headers)
  if (req.method === 'HEAD') { res.end(); return }
  // Written in pieces so that Node sends it chunked when no length was set.
  for (let i = 0; i < body.length; i += 64 * 1024) res.write(body.subarray(i, i + 64 * 1024))
  res.end()
}
