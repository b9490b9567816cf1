#!/usr/bin/env node
/**
 * `wasm-serve [dir]` and `wasm-serve compress <dir>`: a thin shell over the plugin.
 * It turns flags, environment and the config file into options, binds, prints where it listens,
 * and closes gracefully on SIGTERM/SIGINT. A start-up error (src/start-errors.ts) exits 2, any
 * other failure 1.
 */
import { readFileSync, statSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import type { Server, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { Server as TlsServer, type TLSSocket } from 'node:tls'
import { helpText, parseCli } from './config.js'
import { publishAddress } from './healthcheck.js'
import { createServer } from './server.js'
import { EXIT, NoRootError, StartError, startErrorText } from './start-errors.js'
import { printable } from './printable.js'
import { loadTls, type TlsMaterial } from './tls.js'

const DEMO = fileURLToPath(new URL('../public', import.meta.url))
const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version
const PORT_TRIES = 10
const SHUTDOWN_GRACE_MS = 8000

async function main (argv: string[]): Promise<number> {
  if (argv[0] === 'compress') {
    const { runCompress } = await import('./compress/index.js')
    return runCompress(argv.slice(1))
  }
  if (argv[0] === 'export') return (await import('./export/index.js')).runExport(argv.slice(1))
  if (argv[0] === 'check') return (await import('./check/index.js')).runCheck(argv.slice(1))
  const cli = parseCli(argv, process.env, process.cwd())
  if (cli.help) { process.stdout.write(helpText()); return EXIT.ok }
  if (cli.version) { process.stdout.write(`wasm-serve ${VERSION}\n`); return EXIT.ok }
  const root = cli.options.root ?? DEMO
  const label = cli.rootLabel ?? 'the demo'
  if (!isDirectory(root)) throw new NoRootError(`directory not found: ${label}`, { option: '/root', value: label })
  const tls = await loadTls(cli.options.https)
  const app = await createServer({ options: { ...cli.options, root }, ...(tls !== undefined ? { tls } : {}) })
  const address = await listen(app, cli.options.host, cli.options.port)
  announce({ label, address, tls })
  publishAddress({ address: app.server.address(), host: cli.options.host, tls: tls !== undefined, env: process.env })
  closeOnSignals(app)
  return EXIT.ok
}

function isDirectory (path: string): boolean {
  try { return statSync(path).isDirectory() } catch { return false }
}

/** Binds, moving to the next port when the asked one is taken, and saying so. */
async function listen (app: FastifyInstance, host: string, port: number): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    const tryPort = port === 0 ? 0 : port + attempt
    try {
      const address = await app.listen({ host, port: tryPort })
      if (attempt > 0) process.stderr.write(`wasm-serve: port ${port} is in use, using ${tryPort} instead\n`)
      return address
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || port === 0 || attempt + 1 >= PORT_TRIES) throw err
    }
  }
}

function announce (input: { label: string, address: string, tls: TlsMaterial | undefined }): void {
  const url = input.address.replace('://[::1]', '://localhost')
  const { tls } = input
  const label = printable(input.label) // the directory as typed
  if (tls?.selfSigned === true) {
    process.stderr.write(`wasm-serve: warning: using a self-signed certificate for local development only (SHA-256 ${tls.fingerprint256}); browsers will ask you to trust it\n`)
  }
  if (process.stdout.isTTY === true) {
    const https = tls === undefined ? '' : `  HTTP/2    on (TLS, ALPN fallback to HTTP/1.1)\n  Cert      SHA-256 ${tls.fingerprint256}\n`
    process.stdout.write(`\n  wasm-serve ${VERSION}\n\n  Serving   ${label}\n  Local     ${url}\n${https}\n  Ctrl+C to stop\n\n`)
  } else {
    process.stdout.write(`wasm-serve ${VERSION} serving ${label} at ${url}${tls === undefined ? '' : ' (HTTP/2)'}\n`)
  }
}

/**
 * SIGTERM/SIGINT: stop accepting, let in-flight responses finish, exit 0. Responses still under way
 * when the grace period ends are cut, and the last log line says how many (0 on a clean stop). A
 * second signal while waiting exits at once with 128 + its number, as a shell reports a process the
 * signal killed (130 SIGINT, 143 SIGTERM): whoever sent it asked for no clean stop.
 */
function closeOnSignals (app: FastifyInstance): void {
  let closing = false
  // HTTP/2 sessions (a browser tab keeps one open) are not connections server.close() ends by itself.
  const sessions = new Set<{ close: () => void, destroy: () => void }>()
  app.server.on('session', (session: { close: () => void, destroy: () => void, on: (e: string, f: () => void) => void }) => {
    sessions.add(session)
    session.on('close', () => sessions.delete(session))
  })
  keepSendingOnClose(app)
  const underWay = responsesUnderWay(app)
  const close = (signal: 'SIGTERM' | 'SIGINT') => {
    if (closing) {
      const exitCode = signal === 'SIGINT' ? EXIT.interrupted : EXIT.terminated
      app.log.warn({ signal, exitCode, cut: underWay() }, 'shut down at once on a second signal; responses under way were cut')
      process.exit(exitCode)
    }
    closing = true
    app.log.info({ signal, graceMs: SHUTDOWN_GRACE_MS }, 'shutting down')
    const force = setTimeout(() => {
      const cut = underWay()
      ;(app.server as { closeAllConnections?: () => void }).closeAllConnections?.()
      for (const session of sessions) session.destroy()
      app.log.warn({ cut, graceMs: SHUTDOWN_GRACE_MS }, 'shut down when the grace period ended; responses under way were cut')
      process.exit(EXIT.ok)
    }, SHUTDOWN_GRACE_MS)
    force.unref()
    // Sessions stop taking new streams; streams under way finish (graceful GOAWAY).
    for (const session of sessions) session.close()
    app.close().then(() => {
      app.log.info({ cut: 0 }, 'shut down')
      process.exit(EXIT.ok)
    }, () => process.exit(EXIT.failed))
  }
  process.on('SIGTERM', () => close('SIGTERM'))
  process.on('SIGINT', () => close('SIGINT'))
}

/**
 * Counts the responses not yet handed whole to the kernel: an HTTP/1 response whose last bytes still
 * wait for a slow reader, an HTTP/2 stream still open. What a forced exit cuts.
 */
function responsesUnderWay (app: FastifyInstance): () => number {
  const open = new Set<{ writableFinished: boolean }>()
  app.server.on('request', (_request: unknown, response: { writableFinished: boolean, once: (e: 'close', f: () => void) => void }) => {
    open.add(response)
    response.once('close', () => open.delete(response))
  })
  return () => [...open].filter(response => !response.writableFinished).length
}

/**
 * Node's server.close() ends "idle" connections, and a response counts as done once `res.end(buffer)`
 * was called, though megabytes may still wait in the socket: a slow download of a big module would be
 * cut. On shutdown, a connection still writing is closed only when its response has finished.
 *
 * Over TLS the HTTP/2 server has the same method, for its HTTP/1.1 fallback: only those connections
 * are handled here. An HTTP/2 connection carries no HTTP/1 response, so it would look idle and be
 * destroyed, cutting every stream at once; its session gets a graceful GOAWAY instead (above).
 */
function keepSendingOnClose (app: FastifyInstance): void {
  const server = app.server as unknown as Server
  if (typeof server.closeIdleConnections !== 'function') return
  const sockets = new Set<Socket>()
  const track = (socket: Socket) => { sockets.add(socket); socket.on('close', () => sockets.delete(socket)) }
  if (server instanceof TlsServer) server.on('secureConnection', (socket: TLSSocket) => { if (socket.alpnProtocol !== 'h2') track(socket) })
  else server.on('connection', track)
  server.closeIdleConnections = function closeIdleConnections () {
    for (const socket of sockets) {
      const res = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage
      if (res == null || res.writableFinished) socket.destroy()
      else res.once('finish', () => socket.destroy())
    }
  }
}

main(process.argv.slice(2)).then(code => { if (code !== EXIT.ok) process.exitCode = code }, (err: unknown) => {
  if (err instanceof StartError) {
    process.stderr.write(startErrorText(err))
    process.exitCode = EXIT.usage
  } else {
    process.stderr.write(`wasm-serve: ${printable((err as Error).message ?? String(err))}\n`)
    process.exitCode = EXIT.failed
  }
})
