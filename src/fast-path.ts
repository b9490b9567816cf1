/**
 * The CLI's fast path: a GET or HEAD for a file the catalog holds in memory, answered from node:http's
 * `request` event with a precomputed flat header array, before Fastify builds its request and reply
 * objects and runs its router and hooks. Measured on one core (docs/benchmarks.md): Fastify's route
 * machinery cost a third of the rate a bare node:http server reaches on a 36-byte module.
 *
 * It answers only what it can answer exactly as the plugin would (the same catalog, resolution,
 * negotiation, validators and headers); everything else goes on to Fastify unchanged: misses,
 * directories' redirects, the SPA page, ranges, delta requests, 103 Early Hints, files streamed from
 * disk, 406, HTTPS-only headers, and any request while the server is closing (Fastify answers those
 * 503). Over HTTP/2 (TLS with ALPN) the same answers are given on the stream itself.
 * The plugin on its own never installs it: an app's hooks must run for every request.
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http'
import type { ServerHttp2Stream } from 'node:http2'
import type { TLSSocket } from 'node:tls'
import type { Catalog } from './catalog.js'
import { corsFor } from './cors.js'
import type { Deltas } from './deltas.js'
import { negotiate } from './negotiate.js'
import type { OnTheFly } from './onthefly.js'
import type { ResolvedOptions } from './options.js'
import { resolvePath } from './resolve.js'
import { notModified } from './send.js'
import type { Representation } from './types.js'

/** Answers the request and returns the representation sent (its headers say what), or returns undefined and touches nothing. */
export type FastAnswer = (req: IncomingMessage, res: ServerResponse) => Representation | undefined
/** The same for an HTTP/2 stream, before node:http2's compatibility layer. */
export type FastStream = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders & { ':method'?: string, ':path'?: string }) => Representation | undefined
export interface FastPaths { request: FastAnswer, stream: FastStream }

export interface FastPathInput {
  catalog: Catalog
  opts: ResolvedOptions
  prefix: string
  deltas: Deltas | undefined
  compression: OnTheFly | undefined
}

/** The plugin registers one per instance; the CLI's server takes it (fastPathOf). */
const registry = new WeakMap<object, FastPaths>()

export function registerFastPath (app: object, input: FastPathInput): void {
  if (!registry.has(app)) registry.set(app, fastPath(input))
}

export function fastPathOf (app: object): FastPaths | undefined {
  return registry.get(app)
}

/** 200 headers as the flat array `writeHead` takes: built once per representation, when first sent. */
const flat = new WeakMap<Representation, string[]>()

function flatHeaders (rep: Representation): string[] {
  let headers = flat.get(rep)
  if (headers === undefined) {
    headers = Object.entries(rep.headers).flat()
    flat.set(rep, headers)
  }
  return headers
}

/** What the fast path sends: a 200 or a 304 of one representation, with the per-request headers. */
interface Decision { status: 200 | 304, rep: Representation, extra: Record<string, string> | undefined }

/**
 * The plugin's answer to a GET or HEAD, when it is one the fast path gives exactly: undefined for
 * anything the plugin must decide (see the header comment).
 */
function decider (input: FastPathInput): (method: string | undefined, url: string, headers: IncomingHttpHeaders, encrypted: boolean) => Decision | undefined {
  const { catalog, opts, prefix, deltas, compression } = input
  const dotfiles = opts.dotfiles
  const perRequestCors = opts.cors !== false && opts.cors.origin !== '*'
  const healthz = opts.healthz ? `${prefix}/healthz` : undefined
  return (method, url, headers, encrypted) => {
    if (method !== 'GET' && method !== 'HEAD') return undefined
    if (headers.range !== undefined || (deltas !== undefined && headers['available-dictionary'] !== undefined)) return undefined
    const query = url.indexOf('?')
    const path = query === -1 ? url : url.slice(0, query)
    if (!path.startsWith(prefix + '/') || path === healthz) return undefined
    const resolved = resolvePath(prefix === '' ? path : path.slice(prefix.length), dotfiles)
    if (!resolved.ok) return undefined
    const asset = catalog.get(resolved.lookup)
    if (asset === undefined || (asset.isHtml && opts.earlyHints && asset.policy.links.length > 0)) return undefined
    // HTTPS-only headers (HSTS, D19) depend on the request's host: left to the plugin.
    if (asset.policy.https !== undefined && encrypted) return undefined
    const coding = negotiate(headers['accept-encoding'], asset.codings)
    if (coding === null) return undefined
    const rep = asset.reps[asset.codings.indexOf(coding)]!
    if (rep.body === null && method === 'GET') return undefined
    compression?.requested(asset)
    const extra = perRequestCors ? corsFor(opts, headers) : undefined
    const valid = notModified(headers, rep, asset)
    return valid !== undefined ? { status: 304, rep: valid, extra } : { status: 200, rep, extra }
  }
}

function fastPath (input: FastPathInput): FastPaths {
  const decide = decider(input)
  const request: FastAnswer = (req, res) => {
    const d = decide(req.method, req.url ?? '', req.headers, (req.socket as TLSSocket).encrypted === true)
    if (d === undefined) return undefined
    const { rep, extra } = d
    if (d.status === 304) {
      res.writeHead(304, extra === undefined ? rep.notModified : { ...rep.notModified, ...extra })
      res.end()
      return rep
    }
    // HTTP/2's compatibility API (a stream the raw path left) takes an object; node:http the flat array.
    if (req.httpVersionMajor === 2) res.writeHead(200, extra === undefined ? rep.headers : { ...rep.headers, ...extra })
    else {
      const sent = flatHeaders(rep)
      res.writeHead(200, extra === undefined ? sent : [...sent, ...Object.entries(extra).flat()])
    }
    if (req.method === 'HEAD') res.end()
    else res.end(rep.body)
    return rep
  }
  // HTTP/2 on the stream itself, before node:http2 builds its compatibility request and response
  // (measured: a bare server answers 1.4× as many tiny requests this way).
  const stream: FastStream = (s, headers) => {
    const method = headers[':method']
    const d = decide(method, headers[':path'] ?? '', headers, true)
    if (d === undefined) return undefined
    const { rep, extra } = d
    const sent = d.status === 304 ? rep.notModified : rep.headers
    const head = method === 'HEAD' || d.status === 304
    s.respond({ ':status': d.status, ...sent, ...extra }, { endStream: head })
    if (!head) s.end(rep.body)
    return rep
  }
  return { request, stream }
}
