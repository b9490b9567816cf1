/**
 * CORS (D13 in docs/delivery.md). With `origin: "*"` every header is static and precomputed by the policy; with a
 * list of origins only the echo of an allowed Origin is per request (`Vary: Origin` is precomputed
 * with the file's other headers).
 */
import type { IncomingHttpHeaders } from 'node:http'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { ResolvedOptions } from './options.js'

export function corsFor (opts: ResolvedOptions, headers: IncomingHttpHeaders): Record<string, string> | undefined {
  if (opts.cors === false || opts.cors.origin === '*') return undefined
  const origin = headers.origin
  return origin !== undefined && opts.cors.origin.includes(origin) ? { 'access-control-allow-origin': origin } : undefined
}

/** Preflight: 204 with the methods a static server allows and the request headers the page asked for. */
export function preflight (opts: ResolvedOptions, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const headers: Record<string, string> = { allow: 'GET, HEAD, OPTIONS' }
  const origin = request.headers.origin
  if (opts.cors !== false && origin !== undefined) {
    const list = opts.cors.origin
    const allowed = list === '*' || list.includes(origin)
    if (list !== '*') headers.vary = 'Origin'
    if (allowed) {
      headers['access-control-allow-origin'] = list === '*' ? '*' : origin
      headers['access-control-allow-methods'] = 'GET, HEAD, OPTIONS'
      const asked = request.headers['access-control-request-headers']
      if (asked !== undefined) headers['access-control-allow-headers'] = asked
      headers['access-control-max-age'] = '86400'
    }
  }
  return reply.code(204).headers(headers).send()
}
