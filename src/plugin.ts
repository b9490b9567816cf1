/**
 * The Fastify plugin: `app.register(wasmServe, { root: 'dist' })`. The CLI and the Docker image are
 * thin shells over it. The request pipeline reads top to bottom in `handle`: resolve (URL → path,
 * D14) → catalog lookup (index, SPA) → negotiate + send (send.ts). The rules are in docs/delivery.md.
 *
 * Why not @fastify/static underneath: it streams every file from disk on every request (measured on
 * this machine: 5.5k / 922 / 41 req/s for a 36 B / 866 KB / 32 MB br module, against 34k / 7.5k / 473
 * for a Fastify route sending pre-read buffers, docs/benchmarks.md), derives ETags from size and mtime
 * (not stable across replicas, D6), answers ranges over the encoded bytes (D8) and passes the
 * sibling's path (`x.wasm.br`) to setHeaders. The catalog answers from memory with precomputed
 * headers instead.
 */
import fp from 'fastify-plugin'
import { existsSync, realpathSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve as resolvePathOnDisk, sep } from 'node:path'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { Catalog } from './catalog.js'
import { Deltas } from './deltas.js'
import { ENCODINGS, type EncodingToken } from './encodings.js'
import { resolveOptions, type ResolvedOptions, type WasmServeOptions } from './options.js'
import { compilePolicy, warnImmutablePages } from './policy.js'
import { warnLoosePreloads } from './isolation-preloads.js'
import { resolvePath } from './resolve.js'
import { sendAsset } from './send.js'
import { registerFastPath } from './fast-path.js'
import { sendError } from './http-errors.js'
import { sendListing } from './listing.js'
import { corsFor, preflight } from './cors.js'
import { withHttpsOnly } from './security.js'
import { encodable, OnTheFly, type EncodingShare } from './onthefly.js'
import { healthOf } from './health.js'
import { reportSink, reportSinkNeeded } from './report-sink.js'
import { OptionsError } from './options.js'
import { budgetWithinMachine } from './size.js'
import { RETRY_AFTER_S, Unavailable } from './transient.js'
import type { Asset } from './types.js'

/** What an app can ask of a registered wasm-serve instance (`app.wasmServe`). */
export interface WasmServeHandle {
  /** Files (and sibling names) the catalog answers for. */
  readonly files: number
  /** Bytes of file contents held in memory, within `memoryBudget`. */
  readonly bytesInMemory: number
  /** Resolves when on-the-fly compression has nothing left to do. */
  compressionIdle: () => Promise<void>
  /** Whether some file has a precompressed sibling in this coding (x.wasm.br for 'br'): the CLI's start-up advice. */
  hasSiblings: (token: EncodingToken) => boolean
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The first registered wasm-serve instance. */
    wasmServe: WasmServeHandle
  }
}

export interface WasmServePluginOptions extends Omit<WasmServeOptions, 'root'> {
  /** Directory to serve. */
  root: string
  /** URL prefix the files are served under, e.g. "/static". */
  prefix?: string
  /** Watch the root's directories for changes (D16). Default true; false also turns the periodic check off unless `revalidate` is given. */
  watch?: boolean
  /** Processes serving the same root make each encoding once (the CLI's --workers, src/workers.ts). */
  share?: EncodingShare
}

export type { WasmServeOptions, ResolvedOptions } from './options.js'
export { OptionsError, resolveOptions } from './options.js'
export { NoRootError, StartError } from './start-errors.js'

const STATIC_METHODS = ['GET', 'HEAD'] as const

async function wasmServe (fastify: FastifyInstance, pluginOptions: WasmServePluginOptions): Promise<void> {
  const { prefix: rawPrefix = '', watch = true, share, ...rest } = pluginOptions
  const opts = resolveOptions(rest, 'wasm-serve options', PLUGIN_KEYS)
  const revalidate = watch || rest.revalidate !== undefined ? opts.revalidate : 0
  const prefix = prefixOf(rawPrefix)
  const root = rootOf(opts.root)
  const { onTheFly, minSize } = opts.compress
  const cacheDir = onTheFly ? cacheDirFor(opts, root) : null
  const tokens = opts.precompressed
  const policy = compilePolicy(opts, { on: Deltas.supported, prefix }, fastify.log)
  const catalog = await Catalog.open({
    root,
    memoryBudget: budgetWithinMachine(opts.memoryBudget, fastify.log),
    precompressed: tokens,
    dotfiles: opts.dotfiles,
    policy,
    log: fastify.log,
    watch,
    revalidateMs: revalidate * 1000,
    // The rule the compression queue applies, so a file Varies (D7) only when it can get an encoding.
    encodable: onTheFly ? encodable({ tokens, minSize }) : () => false,
  })
  const deltas = Deltas.supported ? new Deltas({ catalog, dirs: opts.dictionaries.map(d => resolvePathOnDisk(d)), prefix, policy, maxBytes: Math.min(64 * 1024 * 1024, opts.memoryBudget / 4), log: fastify.log }) : undefined
  const compression = onTheFly ? new OnTheFly(catalog, { tokens, minSize, cacheDir, cacheMaxSize: opts.compress.cacheMaxSize, log: fastify.log, ...(share !== undefined ? { share } : {}) }) : undefined
  await catalog.load()
  await deltas?.ready()
  if (deltas === undefined) sayNoDeltas(opts, fastify.log)
  warnMissingPreloads(opts, catalog, prefix, fastify.log)
  warnImmutablePages(opts, catalog.assets(), fastify.log)
  warnLoosePreloads(opts, catalog.assets(), fastify.log)
  warnProjectRoot(root, catalog, fastify.log)
  fastify.addHook('onClose', async () => { compression?.close(); catalog.close() })
  if (!fastify.hasDecorator('wasmServe')) fastify.decorate('wasmServe', handleOf(catalog, compression))
  registerFastPath(fastify, { catalog, opts, prefix, deltas, compression })
  fastify.log.debug({ files: catalog.size, bytesInMemory: catalog.bytesInMemory }, 'wasm-serve catalog ready')

  const handler = (request: FastifyRequest, reply: FastifyReply) => handle({ request, reply, catalog, opts, prefix, deltas, compression })
  // `compress: false` keeps @fastify/compress (if the app registers it) off these routes: the
  // representations here are already encoded and carry their own Content-Length and ETag (D4, D5).
  const routeOptions = { compress: false } as Record<string, unknown>
  fastify.route({ ...routeOptions, method: [...STATIC_METHODS], url: `${prefix}/*`, handler })
  // `/static` is the prefix's directory without its slash: redirected as any directory is (unless the app answers it).
  if (prefix !== '' && !fastify.hasRoute({ method: 'GET', url: prefix })) {
    fastify.route({ ...routeOptions, method: [...STATIC_METHODS], url: prefix, handler: (request, reply) => pathOf(request.url) === prefix ? redirectToDirectory(request, reply, prefix) : handler(request, reply) })
  }
  if (opts.cors !== false) fastify.route({ ...routeOptions, method: 'OPTIONS', url: `${prefix}/*`, handler: (request, reply) => preflight(opts, request, reply) })
  if (opts.methodNotAllowed) {
    // D17: any other method on a static path is 405, answered in onRequest, before a body would be
    // parsed (a POST with a JSON body would otherwise get 400/415), and for methods no route knows.
    const allowed = new Set(opts.cors !== false ? ['GET', 'HEAD', 'OPTIONS'] : ['GET', 'HEAD'])
    const allow = [...allowed].join(', ')
    fastify.addHook('onRequest', (request, reply, done) => {
      const route = request.routeOptions.url
      // Only static paths: the app's own routes (any other route url) keep their methods.
      if (allowed.has(request.method) || (route !== undefined && route !== `${prefix}/*`) || !request.url.startsWith(prefix + '/')) return done()
      sendError(reply, 405, { allow })
    })
  }
  // D12: where browsers post what the report-only policies would block (report-sink.ts).
  if (reportSinkNeeded(opts)) await fastify.register(reportSink, { prefix, methodNotAllowed: opts.methodNotAllowed })
  if (opts.healthz) {
    if (opts.healthzRequireFiles && catalog.size === 0) fastify.log.warn({ root }, 'the root has no file to serve: GET /healthz answers 503 until files appear (healthzRequireFiles)')
    fastify.get(`${prefix}/healthz`, async (_request, reply) => {
      const health = await healthOf({ root, files: catalog.size, requireFiles: opts.healthzRequireFiles })
      return reply.code(health.code).send(health.body)
    })
  }
}

/** The plugin's own keys, beside the schema's: named when an unknown key is near one. */
const PLUGIN_KEYS = ['prefix', 'watch']

/** `/static` or `/static/` → `/static`; '' serves at the site's root. A route path must start with '/'. */
function prefixOf (prefix: unknown): string {
  if (typeof prefix !== 'string' || (prefix !== '' && !prefix.startsWith('/'))) {
    throw new OptionsError([{ path: '/prefix', message: 'must be a URL path starting with "/", e.g. "/static"', value: prefix }], 'wasm-serve options')
  }
  return prefix.replace(/\/+$/, '')
}

/** The root, resolved, checked before anything reads it: missing, not found, or a file are each said so. */
function rootOf (root: string | null): string {
  const problem = (message: string) => new OptionsError([{ path: '/root', message, value: root }], 'wasm-serve options')
  if (root === null) throw problem('is required: the directory wasm-serve serves')
  const resolved = resolvePathOnDisk(root)
  let stats
  try { stats = statSync(resolved) } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw problem(code === 'ENOENT' ? `no such directory${resolved === root ? '' : ` (${resolved})`}` : `cannot be read: ${code ?? String(err)}`)
  }
  if (!stats.isDirectory()) throw problem(`${stats.isFile() ? 'is a file, not' : 'is not'} a directory: give the directory to serve`)
  return resolved
}

const pathOf = (url: string) => url.split('?', 1)[0]!

/** 301 to the directory's URL with its trailing slash, the query kept. `path` is already encoded. */
function redirectToDirectory (request: FastifyRequest, reply: FastifyReply, path: string): FastifyReply {
  const query = request.url.indexOf('?')
  return reply.code(301).header('location', `${path}/${query === -1 ? '' : request.url.slice(query)}`).send()
}

function handleOf (catalog: Catalog, compression: OnTheFly | undefined): WasmServeHandle {
  return {
    get files () { return catalog.size },
    get bytesInMemory () { return catalog.bytesInMemory },
    compressionIdle: async () => compression?.idle(),
    hasSiblings: token => {
      const suffix = ENCODINGS.find(e => e.token === token)!.suffix
      for (const asset of catalog.assets()) if (asset.path.endsWith(suffix) && catalog.get(asset.path.slice(0, -suffix.length)) !== undefined) return true
      return false
    },
  }
}

/** Delta updates need a Node that compresses with a dictionary: said once, louder when they were asked for. */
function sayNoDeltas (opts: ResolvedOptions, log: FastifyInstance['log']): void {
  const asked = opts.dictionaries.length > 0 || opts.routes.some(r => typeof r.dictionary === 'string')
  const message = `delta updates (RFC 9842) are off: Node ${process.version} cannot compress with a dictionary (Node 24 can); modules are served as usual`
  if (asked) log.warn({}, message)
  else log.debug({}, message)
}

/**
 * `wasm-serve .` in a project root serves package.json and node_modules/ as nginx would serve them;
 * it is most likely a mistake for the build output, so it is said once (files are not hidden).
 */
function warnProjectRoot (root: string, catalog: Catalog, log: FastifyInstance['log']): void {
  if (catalog.get('package.json') === undefined || !existsSync(join(root, 'node_modules'))) return
  log.warn({ root }, 'serving a project root (package.json, node_modules/): did you mean its build output, e.g. ./dist? Files under node_modules/ are compressed only when first requested')
}

/** D11: a preload that names no file would make every page load fetch a 404; say so at start-up. */
function warnMissingPreloads (opts: ResolvedOptions, catalog: Catalog, prefix: string, log: FastifyInstance['log']): void {
  const urls = new Set([...opts.preload, ...opts.routes.flatMap(r => r.preload ?? [])])
  for (const url of urls) {
    const path = url.split(/[?#]/)[0]!
    const local = path.startsWith(prefix + '/') ? path.slice(prefix.length) : undefined
    const resolved = local === undefined ? undefined : resolvePath(local, opts.dotfiles)
    if (resolved === undefined || !resolved.ok || catalog.get(resolved.path) === undefined) {
      log.warn({ preload: url }, 'preload names no file in the root; browsers would fetch a 404 on every page load')
    }
  }
}

/** The on-the-fly cache lives outside the served root (D4): the root may be read-only, and must never grow files. */
function cacheDirFor (opts: ResolvedOptions, root: string): string {
  // Per user by default: a shared, predictable /tmp path could be created by someone else first.
  const dir = resolvePathOnDisk(opts.compress.cacheDir ?? join(tmpdir(), `wasm-serve-cache-${process.getuid?.() ?? 'user'}`))
  let realRoot = root
  try { realRoot = realpathSync(root) } catch {}
  for (const r of new Set([root, realRoot])) {
    if (dir === r || dir.startsWith(r + sep)) throw new OptionsError([{ path: '/compress/cacheDir', message: `must be outside the served root ${r}`, value: dir }])
  }
  return dir
}

interface HandleInput {
  request: FastifyRequest
  reply: FastifyReply
  catalog: Catalog
  opts: ResolvedOptions
  prefix: string
  deltas: Deltas | undefined
  compression: OnTheFly | undefined
}

/**
 * One request. The common case (a file the catalog holds) runs synchronously to the send: no
 * promise, no await (measured: the async version cost about a fifth of the tiny-file rate).
 */
function handle (input: HandleInput): Promise<unknown> | undefined {
  const { request, reply, catalog, opts } = input
  const url = request.url
  const query = url.indexOf('?')
  const rawPath = (query === -1 ? url : url.slice(0, query)).slice(input.prefix.length)
  const resolved = resolvePath(rawPath, opts.dotfiles)
  if (!resolved.ok) {
    if (resolved.status === 404) reply.callNotFound()
    else sendError(reply, resolved.status)
    return undefined
  }
  // A directory URL looks its index.html up here too: `/` is the most requested page.
  const asset = catalog.get(resolved.lookup)
  if (asset === undefined) return handleMiss(input, resolved.path, resolved.directory).catch(err => unavailable(reply, err))
  return serve(input, asset)?.catch(err => unavailable(reply, err))
}

/** A file that exists but cannot be read just now (out of descriptors, mid-rewrite): 503, never 404. */
function unavailable (reply: FastifyReply, err: unknown): FastifyReply {
  if (!(err instanceof Unavailable)) throw err
  return sendError(reply, 503, { 'retry-after': String(RETRY_AFTER_S) })
}

/** Directory indexes, listings (when on), redirects, files added since start-up, the SPA page. */
async function handleMiss (input: HandleInput, path: string, directory: boolean): Promise<unknown> {
  const { request, reply, catalog } = input
  const found = await lookup(catalog, path, directory)
  if (found === undefined && input.opts.listing === true) {
    // A directory without index.html: its listing, at its URL with the trailing slash.
    if (directory) {
      const listed = sendListing(request, reply, catalog, path, `${input.prefix}/${path === '' ? '' : path + '/'}`)
      if (listed !== undefined) return listed
    } else if (catalog.hasDir(path)) return redirectInto(input, path)
  }
  if (found === 'redirect') return redirectInto(input, path)
  const asset = found ?? await spaFallback(input, path)
  if (asset === undefined) return reply.callNotFound()
  return serve(input, asset)
}

/** `/dir` → 301 `/dir/`, the query kept: relative links in the directory's page resolve against it. */
function redirectInto (input: HandleInput, path: string): FastifyReply {
  return redirectToDirectory(input.request, input.reply, `${input.prefix}/${path.split('/').map(encodeURIComponent).join('/')}`)
}

function serve (input: HandleInput, asset: Asset): Promise<unknown> | undefined {
  const { request, reply, catalog, opts } = input
  input.compression?.requested(asset) // a dependency file is encoded on its first request (onthefly.ts)
  // 1xx only to HTTP/1.1 and later: an HTTP/1.0 client cannot tell an interim response from the
  // final one (RFC 9110 §15.2). Chrome acts on 103 only over HTTP/2 anyway.
  if (asset.isHtml && opts.earlyHints && asset.policy.links.length > 0 && request.method === 'GET' && request.raw.httpVersion !== '1.0') {
    // Fastify's writeEarlyHints promise resolves only when the response ends, so awaiting it would hang.
    void Promise.resolve(reply.writeEarlyHints({ link: asset.policy.links })).catch(() => {})
  }
  return sendAsset({ request, reply, asset: input.deltas?.answerFor(request, asset) ?? asset, catalog, extra: withHttpsOnly(request, asset.policy, corsFor(opts, request.headers)) })
}

/** A file, a directory's index.html, or a redirect that adds the directory's trailing slash. */
async function lookup (catalog: Catalog, path: string, directory: boolean): Promise<Asset | 'redirect' | undefined> {
  if (directory) return catalog.find(path === '' ? 'index.html' : `${path}/index.html`)
  const asset = await catalog.find(path)
  if (asset !== undefined) return asset
  if (catalog.hasDir(path) && (await catalog.find(`${path}/index.html`)) !== undefined) return 'redirect'
  return undefined
}

/** D15: unknown extension-less paths that accept HTML get the SPA page; anything with an extension stays 404. */
async function spaFallback (input: HandleInput, path: string): Promise<Asset | undefined> {
  const page = input.opts.spa
  if (page === false) return undefined
  const last = path.slice(path.lastIndexOf('/') + 1)
  if (last.includes('.')) return undefined
  if (!/text\/html|application\/xhtml\+xml/.test(input.request.headers.accept ?? '')) return undefined
  return input.catalog.find(page.replace(/^\/+/, ''))
}

export default fp(wasmServe, { fastify: '5.x', name: 'wasm-serve' })
export { wasmServe }
