/**
 * Limits that protect the CLI and Docker server from slow, stalled and greedy clients (options
 * `limits.*`; docs/delivery.md, §5). nginx is the reference: it cuts a slow request after 60 s
 * (client_header_timeout) and a response that makes no progress after 60 s (send_timeout).
 * Without these, Fastify's defaults leave requestTimeout at 0 and the socket timeout off: 200
 * clients that stopped reading a 32 MB module held 200 sockets (and 200 open files) for as long as
 * they liked, an HTTP/2 connection could open 2^32-1 streams, and slowloris connections were held
 * 81-86 s, Node's 60 s headers timeout being checked only every 30 s.
 */
import { constants as http2 } from 'node:http2'
import type { Server } from 'node:net'
import type { ResolvedOptions } from './options.js'
import { openFilesLimit } from './transient.js'
import type { Logger } from './types.js'

type Limits = ResolvedOptions['limits']

/** How often Node checks requests against the headers timeout: a slow sender is cut within timeout + this. */
const CHECK_EVERY_MS = 2000
/** Descriptors kept for files, the cache directory, watchers and logs when the connection cap is derived. */
const RESERVED_FDS = 64
const LOG_EVERY_MS = 10_000

/** Fastify server options that carry the limits (merged into the options `Fastify()` is called with). */
export function serverOptions (limits: Limits): Record<string, unknown> {
  const headers = limits.headersTimeout * 1000
  return {
    requestTimeout: headers, // a static server takes no request bodies: the whole request is its headers
    keepAliveTimeout: limits.keepAliveTimeout * 1000,
    // The socket's inactivity timeout: a response that makes no progress for this long is cut. Half of
    // it, because Node lets the first expiry pass while a write is pending (net.Socket's _onTimeout
    // sees the write queue changed since the last one): a stalled download was cut at twice the limit.
    connectionTimeout: limits.sendTimeout * 1000 / 2,
    http2SessionTimeout: limits.keepAliveTimeout * 1000,
    http: { headersTimeout: headers, requestTimeout: headers, connectionsCheckingInterval: CHECK_EVERY_MS },
  }
}

/** HTTP/2 settings the TLS server is created with. */
export function http2Settings (limits: Limits): { maxConcurrentStreams: number } {
  return { maxConcurrentStreams: limits.maxStreams }
}

/**
 * Applies what cannot be given at creation: the connection cap (logged when reached, with what to
 * do) and, over HTTP/2, a stream that makes no progress is cancelled (the session's own timeout only
 * closes it gracefully, which waits for every stream).
 */
export function guard (server: Server, limits: Limits, log: Logger): { maxConnections: number } {
  // Also on the HTTP/2 server's HTTP/1.1 fallback (allowHTTP1), which takes no creation options for
  // these and otherwise kept a slowloris connection open indefinitely; both read them on 'listening'.
  Object.assign(server, { headersTimeout: limits.headersTimeout * 1000, requestTimeout: limits.headersTimeout * 1000, connectionsCheckingInterval: CHECK_EVERY_MS })
  const maxConnections = limits.maxConnections ?? defaultMaxConnections()
  server.maxConnections = maxConnections
  let loggedAt = -Infinity
  let dropped = 0
  server.on('drop', () => {
    dropped++
    if (Date.now() - loggedAt < LOG_EVERY_MS) return
    log.warn({ maxConnections, dropped }, 'connection limit reached: new connections are refused until some close; raise limits.maxConnections (and ulimit -n) or add replicas')
    loggedAt = Date.now()
    dropped = 0
  })
  watchStreams(server, limits.sendTimeout * 1000)
  return { maxConnections }
}

interface Stream { writableLength: number, destroyed: boolean, setTimeout: (ms: number, cb: () => void) => void, close: (code: number) => void, once: (e: 'close', f: () => void) => void }

/** A streamed file is written a chunk at a time (file-body.ts): 64 KB pending at most. */
const CHUNK_MAX = 64 * 1024

/**
 * HTTP/2: a stream that makes no progress is cancelled (RST_STREAM CANCEL, never a clean end). Node's
 * own stream timeout lets a stalled stream live as long as its session sends anything for other
 * streams (1 of 7 stalled streams outlived the limit, one by 90 s, under `npm run soak`). So the
 * pending bytes of every stream are looked at too: a chunk of a streamed file that has not moved for
 * `ms` is a client that stopped reading it. A whole buffer written at once (a file held in memory)
 * shows no progress until it is done, so only Node's timeout applies to those: they hold no file.
 */
function watchStreams (server: Server, ms: number): void {
  const streams = new Map<Stream, { pending: number, since: number }>()
  let timer: NodeJS.Timeout | undefined
  const check = () => {
    const now = Date.now()
    for (const [stream, seen] of streams) {
      const pending = stream.writableLength
      if (pending !== seen.pending || pending === 0 || pending > CHUNK_MAX) { seen.pending = pending; seen.since = now; continue }
      if (now - seen.since >= ms) stream.close(http2.NGHTTP2_CANCEL)
    }
    if (streams.size === 0) { clearInterval(timer); timer = undefined }
  }
  server.on('stream', (stream: Stream) => {
    stream.setTimeout(ms, () => stream.close(http2.NGHTTP2_CANCEL))
    streams.set(stream, { pending: 0, since: Date.now() })
    stream.once('close', () => streams.delete(stream))
    if (timer === undefined) { timer = setInterval(check, Math.max(100, ms / 10)); timer.unref() }
  })
}

/** Half the open-file limit less a reserve (a streamed response holds a file besides its socket), 10,000 at most. */
function defaultMaxConnections (): number {
  const limit = openFilesLimit()
  if (limit === undefined) return 10_000
  return Math.max(16, Math.min(10_000, Math.floor((limit - RESERVED_FDS) / 2)))
}
