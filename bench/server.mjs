#!/usr/bin/env node
/**
 * One benchmark server, started by bench/run.mjs as its own process (pinned to a core with taskset).
 *
 *   node bench/server.mjs <raw|ceiling|wasm-serve|static> <root> [jsonOptions]
 *
 * Listens on 127.0.0.1 port 0 and prints `PORT <n>` on stdout once ready; exits 3 with
 * `NOT_BUILT` when dist/plugin.js does not exist yet.
 *
 *   raw         node:http alone answering from memory: `res.writeHead(200, flatHeaderArray)` and
 *               `res.end(buffer)`, nothing else per request: the limit of one Node process.
 *   ceiling     a bare Fastify 5 route per file answering from buffers read at start-up, headers
 *               precomputed: what any Fastify-based server could reach at best.
 *
 * Both ceilings take `{ "routes": { "/path": { "body": FILE, "headers": [name, value, …] } } }`:
 * the exact header set and bytes wasm-serve sent for that request (bench/run.mjs captures them), so
 * a ratio compares the same response. Without routes, the ceiling serves every .wasm in the root.
 *   wasm-serve  the plugin from dist/, `{ root, ...jsonOptions }`.
 *   static      @fastify/static with preCompressed: true (streams from disk): the baseline.
 */
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { createServer } from 'node:http'
import { readdir, readFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import Fastify from 'fastify'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const [kind, root, json] = process.argv.slice(2)
const extra = json ? JSON.parse(json) : {}

/**
 * The representation the ceiling sends for `Accept-Encoding: br`: the .br sibling when there is one,
 * else the identity bytes (tiny.wasm has no sibling on purpose).
 */
async function ceilingEntry (name) {
  const path = join(root, name)
  const br = await readFile(path + '.br').catch(() => null)
  const body = br ?? await readFile(path)
  const headers = {
    'content-type': 'application/wasm',
    'content-length': String(body.length),
    etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`,
    vary: 'Accept-Encoding',
    ...(br ? { 'content-encoding': 'br' } : {}),
  }
  return { body, headers }
}

/** The captured routes, bodies read once: [path, body, flat headers]. */
async function capturedRoutes () {
  return Promise.all(Object.entries(extra.routes).map(async ([path, r]) => [path, await readFile(r.body), r.headers]))
}

async function ceiling (app) {
  if (extra.routes) {
    for (const [path, body, flat] of await capturedRoutes()) {
      const headers = {}
      for (let i = 0; i < flat.length; i += 2) headers[flat[i]] = flat[i + 1]
      app.get(path, (request, reply) => { reply.headers(headers).send(body) })
    }
    return
  }
  const names = (await readdir(root)).filter(n => n.endsWith('.wasm'))
  for (const name of names) {
    const { body, headers } = await ceilingEntry(name)
    app.get(`/${name}`, (request, reply) => { reply.headers(headers).send(body) })
  }
}

async function wasmServe (app) {
  const plugin = join(ROOT, 'dist', 'plugin.js')
  if (!existsSync(plugin)) {
    console.log('NOT_BUILT')
    process.exit(3)
  }
  const { default: wasmServe } = await import(pathToFileURL(plugin).href)
  await app.register(wasmServe, { root, ...extra })
}

async function fastifyStatic (app) {
  const { default: fastifyStatic } = await import('@fastify/static')
  await app.register(fastifyStatic, { root, preCompressed: true, ...extra })
}

const SETUP = { ceiling, 'wasm-serve': wasmServe, static: fastifyStatic }

/** node:http with nothing between the request event and the precomputed answer. */
async function raw () {
  const routes = new Map((await capturedRoutes()).map(([path, body, headers]) => [path, { body, headers }]))
  const server = createServer((req, res) => {
    const route = routes.get(req.url)
    if (route === undefined) {
      res.writeHead(404, ['content-length', '0'])
      res.end()
      return
    }
    res.writeHead(200, route.headers)
    res.end(req.method === 'HEAD' ? undefined : route.body)
  })
  server.keepAliveTimeout = 72_000
  await new Promise(resolve => server.listen(0, '127.0.0.1', resolve))
  console.log(`PORT ${server.address().port}`)
  const stop = () => server.close(() => process.exit(0))
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}

async function main () {
  if (kind === 'raw') return raw()
  const setup = SETUP[kind]
  if (!setup || !root) throw new Error(`usage: server.mjs <${Object.keys(SETUP).join('|')}> <root> [jsonOptions]`)
  const app = Fastify({ logger: false })
  await setup(app)
  await app.listen({ host: '127.0.0.1', port: 0 })
  console.log(`PORT ${app.server.address().port}`)
  const stop = () => app.close().then(() => process.exit(0))
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}

main().catch((err) => {
  console.error(`bench server (${kind}): ${err.stack ?? err}`)
  process.exit(1)
})
