/**
 * Real servers on 127.0.0.1 port 0 for HTTP tests: the CLI's app (`createServer`) and the plugin
 * registered in a plain Fastify app, each with a way to read what it logged.
 */
import { createHash } from 'node:crypto'
import { Writable } from 'node:stream'
import Fastify, { type FastifyInstance } from 'fastify'
import { createServer } from '../../src/server.js'
import { resolveOptions, type WasmServeOptions } from '../../src/options.js'
import wasmServe, { type WasmServePluginOptions } from '../../src/plugin.js'

export const SQLITE_WASM_PATH = 'node_modules/@sqlite.org/sqlite-wasm/sqlite-wasm/jswasm/sqlite3.wasm'
export const WEBP_WASM_PATH = 'node_modules/playwright-core/lib/webp_codec.wasm'

export interface Running {
  app: FastifyInstance
  /** e.g. http://127.0.0.1:41234 (no trailing slash) */
  url: string
  port: number
  /** Log records the server wrote at warn level and above (pino JSON, parsed). */
  logs: Array<Record<string, unknown>>
  close: () => Promise<void>
}

/** The strong ETag wasm-serve gives these bytes (D6): sha256, base64url, first 27 characters. */
export function etagOf (body: Buffer): string {
  return `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`
}

/** Starts the CLI's app (healthz, 405, plain-text errors) on a free loopback port. */
export async function startCliApp (options: WasmServeOptions & { root: string }): Promise<Running> {
  const logs: Array<Record<string, unknown>> = []
  const resolved = resolveOptions({ logLevel: 'warn', ...options })
  const app = await createServer({ options: { ...resolved, root: options.root }, logStream: logStreamInto(logs) })
  return listen(app, logs)
}

/** Starts a plain Fastify app with the plugin registered (e.g. under `prefix: '/static'`) and one route of its own, `GET /app-route`. */
export async function startPluginApp (options: WasmServePluginOptions): Promise<Running> {
  const logs: Array<Record<string, unknown>> = []
  const app = Fastify({ logger: { level: 'warn', stream: logStreamInto(logs) } })
  app.get('/app-route', async () => 'the app\'s own route\n')
  await app.register(wasmServe, options)
  return listen(app, logs)
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

async function listen (app: FastifyInstance, logs: Array<Record<string, unknown>>): Promise<Running> {
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('server has no TCP address')
  return { app, url: `http://127.0.0.1:${address.port}`, port: address.port, logs, close: () => app.close() }
}
