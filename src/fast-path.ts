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
 * 503). Over HTTP/2 (TLS with ALPN) the same answers go through node:http2's compatibility API.
 * The plugin on its own never installs it: an app's hooks must run for every request.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
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

export interface FastPathInput {
  catalog: Catalog
  opts: ResolvedOptions
  prefix: string
  deltas: Deltas | undefined
  compression: OnTheFly | undefined
}

/** The plugin registers one per instance; the CLI's server takes it (fastPathOf). */
const registry = new WeakMap<object, FastAnswer>()

export function registerFastPath (app: object, input: FastPathInput): void {
  if (!registry.has(app)) registry.set(app, fastPath(input))
}

export function fastPathOf (app: object): FastAnswer | undefined {
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

function fastPath (input: FastPathInput): FastAnswer {
  const { catalog, opts, prefix, deltas, compression } = input
  const dotfiles = opts.dotfiles
  const perRequestCors = opts.cors !== false && opts.cors.origin !== '*'
  const healthz = opts.healthz ? `${prefix}/healthz` : undefined
  return (req, res) => {
    const method = req.method
    if (method !== 'GET' && method !== 'HEAD') return undefined
    const h2 = req.httpVersionMajor === 2
    const headers = req.headers
    if (headers.range !== undefined || (deltas !== undefined && headers['available-dictionary'] !== undefined)) return undefined
    const url = req.url ?? ''
    const query = url.indexOf('?')
    const path = query === -1 ? url : url.slice(0, query)
    if (!path.startsWith(prefix + '/') || path === healthz) return undefined
    const resolved = resolvePath(prefix === '' ? path : path.slice(prefix.length), dotfiles)
    if (!resolved.ok) return undefined
    const asset = catalog.get(resolved.lookup)
    if (asset === undefined || (asset.isHtml && opts.earlyHints && asset.policy.links.length > 0)) return undefined
    // HTTPS-only headers (HSTS, D19) depend on the request's host: left to the plugin.
    if (asset.policy.https !== undefined && (req.socket as TLSSocket).encrypted === true) return undefined
    const coding = negotiate(headers['accept-encoding'], asset.codings)
    if (coding === null) return undefined
    const rep = asset.reps[asset.codings.indexOf(coding)]!
    if (rep.body === null && method === 'GET') return undefined
    compression?.requested(asset)
    const extra = perRequestCors ? corsFor(opts, req) : undefined
    const valid = notModified(req, rep, asset)
    if (valid !== undefined) {
      res.writeHead(304, extra === undefined ? valid.notModified : { ...valid.notModified, ...extra })
      res.end()
      return valid
    }
    // HTTP/2's compatibility API takes the headers as an object; node:http the flat array too.
    if (h2) res.writeHead(200, extra === undefined ? rep.headers : { ...rep.headers, ...extra })
    else {
      const sent = flatHeaders(rep)
      res.writeHead(200, extra === undefined ? sent : [...sent, ...Object.entries(extra).flat()])
    }
    if (method === 'HEAD') res.end()
    else res.end(rep.body)
    return rep
  }
}
