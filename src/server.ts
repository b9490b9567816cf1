/**
 * The server the CLI and the Docker image run: a Fastify app with the plugin, a health endpoint,
 * 405 for other methods (D17), plain-text errors, and one log line per request (docs/delivery.md, "The CLI").
 */
import Fastify, { LogController, type FastifyInstance, type FastifyReply } from 'fastify'
import type { IncomingHttpHeaders, IncomingMessage, Server, ServerResponse } from 'node:http'
import type { ServerHttp2Stream } from 'node:http2'
import type { Representation } from './types.js'
import { performance } from 'node:perf_hooks'
import wasmServe from './plugin.js'
import { fastPathOf } from './fast-path.js'
import { sendError } from './http-errors.js'
import { guard, http2Settings, serverOptions } from './limits.js'
import type { ResolvedOptions } from './options.js'
import type { TlsMaterial } from './tls.js'
import type { EncodingShare } from './onthefly.js'
import { chooseFormat, prettyStream, useColour } from './log-format.js'

export interface ServerInput {
  options: ResolvedOptions & { root: string }
  /** Where log lines go (pino destination); defaults to stdout. Formatted per `options.logFormat`. */
  logStream?: NodeJS.WritableStream & { isTTY?: boolean }
  /** With TLS material the server speaks HTTP/2 over TLS, with ALPN fallback to HTTP/1.1. */
  tls?: TlsMaterial
  /** Answer files held in memory before Fastify's router (fast-path.ts); default true. false: every request goes through Fastify (tests compare the two). */
  fastPath?: boolean
  /** One of several workers (src/workers.ts): encodings made on the fly are shared with the others. */
  share?: EncodingShare
}

export async function createServer (input: ServerInput): Promise<FastifyInstance> {
  const { options } = input
  const out = input.logStream ?? process.stdout
  const stream = chooseFormat(options.logFormat, out) === 'pretty' ? prettyStream(out, useColour(out, process.env)) : input.logStream
  const tls = input.tls === undefined ? {} : { http2: true as const, https: { allowHTTP1: true, cert: input.tls.cert, key: input.tls.key, settings: http2Settings(options.limits) } }
  // One code path for HTTP/1.1 and HTTP/2: Fastify's typings split them, the runtime does not.
  const app = (Fastify as unknown as (options: object) => FastifyInstance)({
    ...serverOptions(options.limits),
    ...tls,
    // Registration indexes the whole root (hashing every file): a root of gigabytes takes longer than
    // Fastify's 10 s default, and the server must start whatever the root's size.
    pluginTimeout: 0,
    logger: { level: options.logLevel, ...(stream !== undefined ? { stream } : {}) },
    // One line per request, written by the onResponse hook below, instead of Fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    genReqId: nextRequestId,
    // A bad percent-encoding in the URL is the client's error: a fixed 400, the URL not echoed back.
    frameworkErrors: (err: unknown, _request: unknown, reply: FastifyReply) => { void sendError(reply, (err as { statusCode?: number }).statusCode === 431 ? 431 : 400) },
  })
  // Added only when request lines are written at all (--quiet, --log-level warn: no per-request work).
  const logsRequests = ['info', 'debug', 'trace'].includes(options.logLevel)
  if (logsRequests) {
    app.addHook('onResponse', (request, reply, done) => {
      request.log.info({
        method: request.method,
        url: request.url,
        status: reply.statusCode,
        encoding: reply.getHeader('content-encoding') ?? 'identity',
        bytes: Number(reply.getHeader('content-length') ?? 0),
        ms: Math.round(reply.elapsedTime * 10) / 10,
      }, 'request')
      done()
    })
  }
  guard(app.server, options.limits, app.log)
  app.setNotFoundHandler((_request, reply) => sendError(reply, 404))
  app.setErrorHandler((err: { statusCode?: number }, request, reply) => {
    const status = typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500
    if (status === 500) request.log.error({ err }, 'request failed')
    return sendError(reply, status)
  })
  const { logLevel: _level, logFormat: _format, open: _open, workers: _workers, host: _host, port: _port, https: _https, limits: _limits, ...pluginOptions } = options
  await app.register(wasmServe, { ...pluginOptions, healthz: true, methodNotAllowed: true, ...(input.share !== undefined ? { share: input.share } : {}) })
  if (input.fastPath !== false) answerHitsFirst(app, logsRequests)
  return app
}

/**
 * Puts the plugin's fast path (fast-path.ts) in front of Fastify's own `request` listener: a file
 * held in memory is answered there, anything else goes to Fastify as before. The request line is the
 * one the onResponse hook writes, with the same fields and a request id from the same counter.
 */
function answerHitsFirst (app: FastifyInstance, logsRequests: boolean): void {
  const fast = fastPathOf(app)
  const server = app.server as Server
  const [fastify, ...others] = server.listeners('request') as RequestListener[]
  if (fast === undefined || fastify === undefined || others.length > 0) return
  let closing = false
  app.addHook('preClose', done => { closing = true; done() })
  const logLine = (method: string | undefined, url: string | undefined, status: number, rep: Representation, started: number) => app.log.info({
    reqId: nextRequestId(),
    method,
    url,
    status,
    encoding: status === 200 ? rep.headers['content-encoding'] ?? 'identity' : 'identity',
    bytes: status === 200 ? rep.size : 0,
    ms: Math.round((performance.now() - started) * 10) / 10,
  }, 'request')
  server.removeListener('request', fastify)
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const started = logsRequests ? performance.now() : 0
    const rep = closing ? undefined : fast.request(req, res)
    if (rep === undefined) return fastify(req, res)
    if (!logsRequests) return
    const status = res.statusCode
    res.once('finish', () => logLine(req.method, req.url, status, rep, started))
  })
  // Over HTTP/2, node:http2 builds its compatibility request and response in its own `stream`
  // listener (onServerStream), which emits `request`: hits are answered before it.
  const streams = server.listeners('stream') as StreamListener[]
  const compat = streams.find(listener => listener.name === 'bound onServerStream')
  if (compat === undefined) return
  server.removeListener('stream', compat)
  server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number, rawHeaders: string[]) => {
    const started = logsRequests ? performance.now() : 0
    const rep = closing ? undefined : fast.stream(stream, headers)
    if (rep === undefined) return compat(stream, headers, flags, rawHeaders)
    if (!logsRequests) return
    const status = Number(stream.sentHeaders[':status'])
    stream.once('close', () => logLine(headers[':method'] as string | undefined, headers[':path'] as string | undefined, status, rep, started))
  })
}

type RequestListener = (req: IncomingMessage, res: ServerResponse) => void
type StreamListener = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number, rawHeaders: string[]) => void

/** Request ids for both paths, as Fastify's default makes them (`req-1`, `req-2`, …). */
let requestCount = 0
const nextRequestId = () => `req-${(++requestCount).toString(36)}`
