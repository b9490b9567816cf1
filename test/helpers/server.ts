/**
 * Real servers on 127.0.0.1 port 0, closed when the test ends, each with what it logged: the plugin
 * registered in a plain Fastify app (`startPlugin`), and the server the CLI runs (`startCliApp`:
 * the plugin plus health check, 405 and plain-text errors; over TLS it speaks HTTP/2).
 */
import { createHash } from 'node:crypto'
import { readdirSync, readlinkSync } from 'node:fs'
import { Writable } from 'node:stream'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { createServer } from '../../src/server.js'
import { resolveOptions, type WasmServeOptions } from '../../src/options.js'
import wasmServe, { type WasmServePluginOptions } from '../../src/plugin.js'
import type { TlsMaterial } from '../../src/tls.js'

export interface Running {
  app: FastifyInstance
  /** e.g. http://127.0.0.1:41234 (no trailing slash; https:// over TLS) */
  url: string
  port: number
  /** What the server logged at its log level and above (pino JSON, parsed). */
  logs: Array<Record<string, unknown>>
  /** Closes the server; a second call (the teardown after a test closed it) does nothing more. */
  close: () => Promise<void>
}

/** What tap's tests and its root object both have. */
interface Teardown { teardown: (fn: () => unknown) => void }

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error'

export interface PluginAppOptions {
  /** The app's log level (default warn): records at it and above land in `logs`. */
  logLevel?: LogLevel
  /** Fastify's own options, e.g. forceCloseConnections. */
  fastify?: Omit<FastifyServerOptions, 'logger'>
  /** Runs before the plugin is registered: the app's own routes, hooks and plugins. */
  before?: (app: FastifyInstance) => unknown
  /** Runs after it is registered, before the app listens. */
  after?: (app: FastifyInstance) => unknown
}

/** The strong ETag wasm-serve gives these bytes (D6): sha256, base64url, first 27 characters. */
export function etagOf (body: Buffer): string {
  return `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`
}

/** How many files under `dir` this process holds open: the servers run in it (Linux: /proc). */
export function openUnder (dir: string): number {
  return readdirSync('/proc/self/fd').filter(fd => { try { return readlinkSync(`/proc/self/fd/${fd}`).startsWith(dir) } catch { return false } }).length
}

/**
 * The one way a test starts the plugin: registered in a plain Fastify app, without watchers unless
 * `options.watch` asks for them (most tests do not change files while serving).
 */
export async function startPlugin (t: Teardown, options: WasmServePluginOptions, setup: PluginAppOptions = {}): Promise<Running> {
  const logs: Array<Record<string, unknown>> = []
  const app = Fastify({ ...setup.fastify, logger: { level: setup.logLevel ?? 'warn', stream: logStreamInto(logs) } })
  await setup.before?.(app)
  await app.register(wasmServe, { watch: false, ...options })
  await setup.after?.(app)
  return listen(t, app, logs)
}

/**
 * The server the CLI runs, logging at warn; with `tls`, HTTP/2 over TLS with HTTP/1.1 fallback.
 * `fastPath: false` sends every request through Fastify (the CLI answers files in memory before it);
 * `before` runs before it listens (a test's own hooks).
 */
export async function startCliApp (t: Teardown, options: WasmServeOptions & { root: string }, tls?: TlsMaterial, server: { fastPath?: boolean, before?: (app: FastifyInstance) => unknown } = {}): Promise<Running> {
  const logs: Array<Record<string, unknown>> = []
  const resolved = resolveOptions({ logLevel: 'warn', ...options })
  const app = await createServer({ options: { ...resolved, root: options.root }, logStream: logStreamInto(logs), tls, fastPath: server.fastPath })
  await server.before?.(app)
  return listen(t, app, logs)
}

/** A pino destination that parses each JSON line into `logs`. */
function logStreamInto (logs: Array<Record<string, unknown>>): Writable {
  return new Writable({
    write (chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') logs.push(JSON.parse(line) as Record<string, unknown>)
      done()
    },
  })
}

async function listen (t: Teardown, app: FastifyInstance, logs: Array<Record<string, unknown>>): Promise<Running> {
  let closing: Promise<void> | undefined
  const close = () => (closing ??= app.close())
  t.teardown(close)
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  return { app, url, port: Number(new URL(url).port), logs, close }
}
