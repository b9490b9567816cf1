#!/usr/bin/env node
/**
 * `wasm-serve [dir]` and `wasm-serve compress <dir>`: a thin shell over the plugin.
 * It turns flags, environment and the config file into options, binds, prints where it listens,
 * and closes gracefully on SIGTERM/SIGINT. A start-up error (src/start-errors.ts) exits 2, any
 * other failure 1.
 */
import { spawn } from 'node:child_process'
import cluster from 'node:cluster'
import { existsSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import type { Server, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { Server as TlsServer, type TLSSocket } from 'node:tls'
import { checkDirectory } from './args.js'
import { nearest } from './nearest.js'
import { helpText, parseCli } from './config.js'
import { publishAddress } from './healthcheck.js'
import { EXIT, StartError, startErrorText, UsageError } from './start-errors.js'
import { printable } from './printable.js'
import { destroyWhenAcknowledged } from './socket-drain.js'
import { loadTls, type TlsMaterial } from './tls.js'
import { bannerText, localUrl, networkHosts, networkUrls, openerFor, servingLine, startWarnings } from './banner.js'
import { devCertDir, trustAdvice } from './dev-cert.js'
import type { ResolvedOptions } from './options.js'
import { lineWriter, primaryLog, probePort, runPrimary, startWorker, workerCount, type Served } from './workers.js'

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
  if (argv[0] === 'explain') return (await import('./explain.js')).runExplain(argv.slice(1))
  refuseMistypedCommand(argv[0])
  const cli = parseCli(argv, process.env, process.cwd())
  if (cli.help) { process.stdout.write(helpText()); return EXIT.ok }
  if (cli.version) { process.stdout.write(`wasm-serve ${VERSION}\n`); return EXIT.ok }
  const root = cli.options.root ?? DEMO
  const label = cli.rootLabel ?? 'the demo'
  checkDirectory(root, label, folder => `serve its folder with \`wasm-serve ${folder}\``)
  // Listings are on in the CLI unless asked off (null: not said; the plugin's default is off).
  const options = { ...cli.options, root, listing: cli.options.listing ?? true }
  // --workers (src/workers.ts): a worker takes its port and certificate from the primary.
  if (cluster.isWorker) return serveAsWorker(options)
  // The certificate names the LAN addresses too, so the Network URLs the banner prints verify.
  const tls = await loadTls(cli.options.https, devCertDir(process.env), networkHosts(cli.options.host))
  const workers = workerCount(cli.options.workers)
  // The primary serves nothing: it never loads the server (Fastify, the plugin), ~30 MB less RSS.
  if (workers > 1) return servePrimary({ cli, label, options, tls, workers })
  const { createServer } = await import('./server.js')
  const app = await createServer({ options, ...(tls !== undefined ? { tls } : {}) })
  // Not bound: the app's watchers and timers would keep the process alive after the message.
  const address = await listen(port => app.listen({ host: cli.options.host, port }), cli.options.host, cli.options.port, cli.portFrom).catch(async (err: unknown) => { await app.close(); throw err })
  // Published before it is announced: whoever waits for the serving line may read the file at once.
  publishAddress({ address: app.server.address(), host: cli.options.host, tls: tls !== undefined, env: process.env })
  announce({ label, address, tls, served: servedBy(app, address), options })
  if (cli.options.open) openBrowser(localUrl(address, cli.options.host))
  closeOnSignals(app)
  return EXIT.ok
}

/** `--workers N`: the primary picks the port (as the single process would), then runs the workers on it. */
async function servePrimary (input: { cli: ReturnType<typeof parseCli>, label: string, options: Announce['options'], tls: TlsMaterial | undefined, workers: number }): Promise<number> {
  const { cli, options, tls } = input
  const host = cli.options.host
  let port = 0
  await listen(async tryPort => { port = await probePort(host, tryPort); return '' }, host, cli.options.port, cli.portFrom)
  return runPrimary({
    count: input.workers,
    port,
    tls,
    graceMs: SHUTDOWN_GRACE_MS,
    log: primaryLog(options.logLevel, options.logFormat),
    announce: served => {
      publishAddress({ address: { address: host, family: 'IPv4', port: served.port }, host, tls: tls !== undefined, env: process.env })
      announce({ label: input.label, address: served.address, tls, served, options })
      if (cli.options.open) openBrowser(localUrl(served.address, host))
    },
  })
}

/** One of the workers: the server as above, bound where the primary says, draining when it says. */
async function serveAsWorker (options: Announce['options']): Promise<number> {
  const worker = await startWorker()
  const { start } = worker
  const { createServer } = await import('./server.js')
  const logStream = lineWriter(process.stdout.fd, process.stdout.isTTY)
  const app = await createServer({ options, logStream, share: worker.share, ...(start.tls !== undefined ? { tls: start.tls } : {}) })
  // `exclusive`: a cluster worker binds its own socket instead of asking the primary for a shared one.
  const balance = start.reusePort ? { exclusive: true, reusePort: true } : {}
  const address = await app.listen({ host: options.host, port: start.port, ...balance } as { host: string, port: number }).catch(async (err: unknown) => { await app.close(); throw err })
  worker.onDrain(closeOnSignals(app))
  worker.listening(app, address)
  return EXIT.ok
}

function servedBy (app: FastifyInstance, address: string): Served {
  return { port: (app.server.address() as { port: number }).port, address, files: app.wasmServe.files, hasBrSiblings: app.wasmServe.hasSiblings('br') }
}

/**
 * Binds. The default port moves on to the next one when taken, saying so; a port asked for (`portFrom`:
 * a flag, PORT, the config file) does not: behind a port mapping or on a PaaS another port is
 * unreachable, so a taken one is an error (exit 1: it fails at run time, docs/delivery.md "Exit codes").
 */
async function listen (bind: (port: number) => Promise<string>, host: string, port: number, portFrom: string | undefined): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    const tryPort = port === 0 ? 0 : port + attempt
    try {
      const address = await bind(tryPort)
      if (attempt > 0) process.stderr.write(`wasm-serve: port ${port} is in use, using ${tryPort} instead\n`)
      return address
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      // `--host localhost:3000`, a typo, an address of another machine: the host is what is wrong.
      if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EADDRNOTAVAIL') {
        throw new UsageError(`--host: cannot listen on ${JSON.stringify(host)}: ${code === 'EADDRNOTAVAIL' ? 'no interface of this machine has that address' : 'no such host'} (${code}); give a name or an address of this machine, and the port with --port`, { option: '--host', value: host })
      }
      const inUse = code === 'EADDRINUSE'
      if (inUse && portFrom !== undefined) throw new Error(`port ${port} on ${host} is in use (asked for by ${portFrom}): stop what holds it, or ask for another port`)
      if (!inUse || port === 0 || attempt + 1 >= PORT_TRIES) throw err
    }
  }
}

interface Announce {
  label: string
  address: string
  tls: TlsMaterial | undefined
  served: Served
  options: ResolvedOptions & { root: string }
}

/**
 * The banner (a terminal) or the one line (anything else), then warnings on stderr, one line each.
 * What a certificate needs is said before it: whoever waits for the serving line has it all by then.
 */
function announce (input: Announce): void {
  const { tls, served, options } = input
  const network = networkUrls(options.host, served.port, tls === undefined ? 'http' : 'https')
  const listing = options.listing === true
  const files = served.files
  const warn = (line: string) => process.stderr.write(`wasm-serve: warning: ${line}\n`)
  if (tls?.notKept !== undefined) warn(`${tls.notKept}; this certificate lasts until the server stops`)
  if (tls?.selfSigned === true) {
    warn(`using a self-signed certificate for local development only (SHA-256 ${tls.fingerprint256}); browsers will ask you to trust it${tls.dev !== undefined ? ` until you trust ${tls.dev.certFile} once` : ''}`)
    // How to trust it: when it is new (it will be kept), and to a person at a terminal every time.
    if (tls.dev !== undefined && (tls.dev.made || process.stdout.isTTY === true)) for (const line of trustAdvice(tls.dev, tls.fingerprint256)) process.stderr.write(`wasm-serve: ${printable(line)}\n`)
  }
  if (process.stdout.isTTY === true) {
    process.stdout.write(bannerText({ version: VERSION, label: input.label, local: localUrl(input.address, options.host), network, tls, files, features: { ...options, listing } }))
  } else {
    process.stdout.write(servingLine(VERSION, input.label, input.address.replace('://[::1]', '://localhost'), tls !== undefined))
  }
  const warnings = startWarnings({
    label: input.label,
    files,
    hasIndex: isFile(join(options.root, 'index.html')),
    listing,
    isolation: options.crossOriginIsolation,
    hasBrSiblings: served.hasBrSiblings,
    tls: tls !== undefined,
    network,
    local: localUrl(input.address, options.host),
  })
  for (const line of warnings) warn(line)
}

function isFile (path: string): boolean {
  try { return statSync(path).isFile() } catch { return false }
}

/** `--open`: the local URL in the default browser, detached; a failure is a note, never the server's end. */
function openBrowser (url: string): void {
  const { command, args } = openerFor(process.platform, process.env)
  const note = (why: string) => process.stderr.write(`wasm-serve: could not open a browser (${printable(command)}: ${why}); open ${url}\n`)
  try {
    const child = spawn(command, [...args, url], { detached: true, stdio: 'ignore' })
    child.on('error', err => note((err as NodeJS.ErrnoException).code ?? err.message))
    child.unref()
  } catch (err) {
    note((err as Error).message)
  }
}

/**
 * SIGTERM/SIGINT: stop accepting, let in-flight responses finish, exit 0. Responses still under way
 * when the grace period ends are cut, and the last log line says how many (0 on a clean stop). A
 * second signal while waiting exits at once with 128 + its number, as a shell reports a process the
 * signal killed (130 SIGINT, 143 SIGTERM): whoever sent it asked for no clean stop. Returns the same
 * graceful stop for a worker's primary to ask for (src/workers.ts): asked twice, it is not a second signal.
 */
function closeOnSignals (app: FastifyInstance): (signal: 'SIGTERM' | 'SIGINT') => void {
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
  return signal => { if (!closing) close(signal) }
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
 * cut. On shutdown, a connection is ended (FIN after its last bytes), one still writing only when its
 * response has finished; it closes when the client has read everything.
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
  const destroyWhenRead = destroyWhenAcknowledged()
  const endThenDestroy = (socket: Socket) => { socket.end(); destroyWhenRead(socket) }
  if (server instanceof TlsServer) server.on('secureConnection', (socket: TLSSocket) => { if (socket.alpnProtocol !== 'h2') track(socket) })
  else server.on('connection', track)
  server.closeIdleConnections = function closeIdleConnections () {
    for (const socket of sockets) {
      const res = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage
      // end(), not destroy(): a response Node counts as finished may still have its last bytes in the
      // kernel's buffers, and a container's network is torn down as soon as the process exits, dropping
      // them. The FIN follows those bytes; the socket is destroyed once the client has acknowledged
      // them (socket-drain.ts), or closes when the client closes its side (the grace period bounds
      // a client that never does).
      if (res == null || res.writableFinished) endThenDestroy(socket)
      else res.once('finish', () => endThenDestroy(socket))
    }
  }
}

const COMMANDS = ['compress', 'export', 'check', 'explain']

/**
 * `wasm-serve compres dist` is a command mistyped, not two directories: said as such when the word
 * is near a command's name and names nothing on disk.
 */
function refuseMistypedCommand (word: string | undefined): void {
  if (word === undefined || word.startsWith('-') || existsSync(word)) return
  const near = nearest(word, COMMANDS)
  if (near !== undefined) throw new UsageError(`unknown command "${word}" (did you mean ${near}?)`, { value: word })
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
