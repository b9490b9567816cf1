/**
 * Route policy (D10–D13 in docs/delivery.md): which headers a served file gets besides its representation headers.
 * Computed once per file when the catalog indexes it, so a request only merges precomputed objects.
 */
import picomatch from 'picomatch'
import type { ResolvedOptions, RouteOptions } from './options.js'
import { originalName } from './content-type.js'
import { matchPatternFor } from './dictionary.js'
import type { Asset, FilePolicy, Logger } from './types.js'

export const IMMUTABLE = 'public, max-age=31536000, immutable'
export const REVALIDATE = 'no-cache'

/**
 * Does the file name carry a content hash (D10)? Recognises the hashes bundlers emit:
 * - hex runs of 8+ that mix digits and letters (Parcel `index.2b3c4d5e.js`, webpack `[contenthash]`
 *   20 hex, Unity "name files as hashes" 32 hex, wasm-pack via webpack);
 * - Rollup/Vite and esbuild `name-XXXXXXXX.ext`: 8 base64url/base32 characters after the last `-`
 *   that are not all lower-case letters or all digits (`index-DiwrgTda.js`, `main-K7ZBXP5Q.js`).
 * Versions (`jquery-3.7.1.min.js`), years (`report-2024.pdf`) and plain names (`sqlite3.wasm`) do
 * not count: a false "hashed" would pin a changing file in caches for a year, a false "not hashed"
 * only costs a 304.
 */
export function isHashedName (fileName: string): boolean {
  return hashIn(fileName) !== undefined
}

/** The content hash in a file name, as isHashedName recognises it, or undefined. */
export function hashIn (fileName: string): string | undefined {
  const base = originalName(fileName.slice(fileName.lastIndexOf('/') + 1))
  const stem = base.replace(/\.[^.]*$/, '')
  for (const part of base.split(/[.\-_]/)) {
    if (/^[0-9a-f]{8,}$/i.test(part) && /\d/.test(part) && (/[a-f]/i.test(part) || part.length >= 16)) return part
  }
  const tail = /-([A-Za-z0-9_-]{8})$/.exec(stem)?.[1]
  // One capitalised word (`widget-Carousel`, `Lato-Hairline`) or a camera name (`photo-IMG_1234`):
  // names people give, rare as hashes ((26/64)^8: a Vite hash looks like one such word about once in 1,400).
  if (tail === undefined || isWords(tail) || /^[A-Z][a-z]{7}$/.test(tail) || /^[A-Z]{3,4}_\d+$/.test(tail)) return undefined
  return !/^[a-z]+$/.test(tail) && !/^\d+$/.test(tail) && /[A-Z0-9]/.test(tail) && /[a-zA-Z]/.test(tail) ? tail : undefined
}

/**
 * Capitalised words that end asset names without being hashes: font styles (`OpenSans-SemiBold`,
 * `Inter-Variable`) and icon names. A Vite hash can also look like two words (`DiwrgTda`), so only
 * names made entirely of these words are excluded.
 */
const WORDS = new Set(['regular', 'bold', 'semi', 'extra', 'ultra', 'demi', 'black', 'heavy', 'light', 'thin', 'medium', 'italic', 'oblique', 'variable', 'condensed', 'expanded', 'narrow', 'wide', 'book', 'roman', 'display', 'text', 'mono', 'download', 'upload', 'close', 'open', 'menu', 'search', 'settings', 'arrow', 'left', 'right', 'up', 'down', 'home', 'user', 'logo', 'icon', 'small', 'large', 'dark'])
function isWords (tail: string): boolean {
  const parts = tail.match(/[A-Z][a-z]+|[a-z]+/g)
  return parts !== null && parts.join('') === tail && parts.every(p => WORDS.has(p.toLowerCase()))
}

/** The configured routes, compiled once: the first one whose glob matches a path, if any. */
function routeFinder (opts: ResolvedOptions): (path: string) => RouteOptions | undefined {
  const routes = opts.routes.map(route => ({ test: picomatch(route.match, { dot: true }), route }))
  return path => routes.find(r => r.test(path))?.route
}

/** Compiles the configured routes once; returns the per-file policy function. */
export function compilePolicy (opts: ResolvedOptions, dictionaries: DictionaryPolicy = NO_DICTIONARIES): (path: string, type: string, size?: number) => FilePolicy {
  const routeOf = routeFinder(opts)
  return (path, type, size) => {
    const route = routeOf(path)
    const isDocument = type.startsWith('text/html')
    const headers: Record<string, string> = {
      'cache-control': route?.cacheControl ?? (isHashedName(path) ? IMMUTABLE : REVALIDATE),
      ...isolationHeaders(opts, type),
      ...corsHeaders(opts),
    }
    const configured = route?.dictionary
    // A file this small gains nothing from a delta (nor from compression: compress.minSize), a
    // sibling asked for by name (x.wasm.br) is not the module a browser would store, and a browser
    // keeps a dictionary only while its response is fresh: Chromium refuses one from a no-cache
    // response (WriteErrorExpiredResponse), so plain names, revalidated every time, announce none.
    const worthIt = dictionaries.on && size !== undefined && size >= opts.compress.minSize && originalName(path) === path && staysFresh(headers['cache-control']!)
    const match = worthIt ? dictionaryMatch(path, type, typeof configured === 'object' ? configured.match : configured, dictionaries.prefix) : undefined
    if (match !== undefined) {
      const id = typeof configured === 'object' ? `, id=${sfString(configured.id)}` : ''
      headers['use-as-dictionary'] = `match=${sfString(match)}${id}`
      headers.vary = headers.vary === undefined ? 'Available-Dictionary' : `${headers.vary}, Available-Dictionary`
    }
    for (const [name, value] of Object.entries(route?.headers ?? {})) headers[name.toLowerCase()] = value
    const links = isDocument ? [...(route?.preload ?? []), ...opts.preload].map(preloadLink) : []
    if (links.length > 0) headers.link = links.join(', ')
    return { headers, links }
  }
}

/** Whether a response with this Cache-Control is fresh for a while (RFC 9111 §4.2): max-age above 0, not no-cache or no-store. */
function staysFresh (cacheControl: string): boolean {
  const maxAge = /(?:^|,)\s*max-age\s*=\s*"?(\d+)/i.exec(cacheControl)
  return maxAge !== null && Number(maxAge[1]) > 0 && !/(?:^|,)\s*(no-cache|no-store)\b/i.test(cacheControl)
}

/** An sf-string (RFC 8941 §3.3.3): quoted, backslash and double quote escaped. */
const sfString = (s: string) => `"${s.replace(/[\\"]/g, c => '\\' + c)}"`

/** Whether delta updates are on (this Node can make them), and the URL prefix files are served under. */
export interface DictionaryPolicy { on: boolean, prefix: string }
const NO_DICTIONARIES: DictionaryPolicy = { on: false, prefix: '' }

/** Types a later release replaces and a delta pays for: modules and scripts, never documents. */
const DICTIONARY_TYPES = /^(application\/wasm|text\/javascript)\b/

/**
 * The match pattern a file is announced with as a dictionary (RFC 9842 §2.1), or undefined: a route's
 * `dictionary` (false: none), else derived from the file's URL for wasm and JavaScript.
 */
export function dictionaryMatch (path: string, type: string, configured: string | false | undefined, prefix: string): string | undefined {
  if (configured === false) return undefined
  if (typeof configured === 'string') return configured
  if (!DICTIONARY_TYPES.test(type)) return undefined
  return matchPatternFor(`${prefix}/${path}`, hashIn)
}

/** Pages named in a warning, at most. */
const PAGES_NAMED = 3

/**
 * D10: a configured route whose Cache-Control says `immutable` and that matches HTML pages pins them
 * in browsers until max-age runs out, without a reload asking again: the next deploy is not seen (a
 * `**` route pins index.html for a year). Said at start-up, once per route, with up to three pages.
 */
export function warnImmutablePages (opts: ResolvedOptions, assets: Iterable<Asset>, log: Logger): void {
  const routeOf = routeFinder(opts)
  const pinned = new Map<RouteOptions, string[]>()
  for (const asset of assets) {
    if (!asset.isHtml) continue
    const route = routeOf(asset.path)
    if (route?.cacheControl === undefined || !/(?:^|[\s,])immutable(?:$|[\s,;=])/i.test(route.cacheControl)) continue
    const pages = pinned.get(route) ?? []
    pages.push(asset.path)
    pinned.set(route, pages)
  }
  for (const [route, pages] of pinned) {
    // Top-level pages first: index.html is the one that matters.
    const named = pages.sort((a, b) => a.split('/').length - b.split('/').length || a.localeCompare(b)).slice(0, PAGES_NAMED)
    log.warn({ route: route.match, cacheControl: route.cacheControl, pages: named, htmlPages: pages.length },
      'a route makes HTML pages immutable: browsers keep them without asking again until max-age runs out, so a new deploy is not seen; give HTML "no-cache" in a route before it')
  }
}

/**
 * D11: `crossorigin` is required — the page's fetch() runs in CORS mode and a preload without it is
 * not reused, so the module downloads twice (w3c/preload#100). Scripts get modulepreload.
 */
export function preloadLink (url: string): string {
  const path = url.split(/[?#]/)[0] ?? url
  const target = encodeURI(decodeURISafe(url))
  return /\.m?js$/i.test(path) ? `<${target}>; rel=modulepreload; crossorigin` : `<${target}>; rel=preload; as=fetch; crossorigin`
}

function decodeURISafe (url: string): string {
  try { return decodeURI(url) } catch { return url }
}

/** D12: COOP + COEP on documents (and worker scripts), CORP on everything served. */
function isolationHeaders (opts: ResolvedOptions, type: string): Record<string, string> {
  if (opts.crossOriginIsolation === false) return {}
  const corp = opts.cors !== false ? 'cross-origin' : 'same-origin'
  const isDocumentOrWorker = type.startsWith('text/html') || type.startsWith('text/javascript')
  return isDocumentOrWorker
    ? { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': opts.crossOriginIsolation, 'cross-origin-resource-policy': corp }
    : { 'cross-origin-resource-policy': corp }
}

/**
 * D13: the static part of CORS. For a list of origins only Access-Control-Allow-Origin is per request
 * (see cors.ts); `Vary: Origin` is on every response, so shared caches keep one per origin.
 */
function corsHeaders (opts: ResolvedOptions): Record<string, string> {
  if (opts.cors === false) return {}
  const shared = {
    'access-control-expose-headers': 'X-Decoded-Content-Length, ETag, Content-Length, Content-Encoding',
    'timing-allow-origin': opts.cors.origin === '*' ? '*' : opts.cors.origin.join(', '),
  }
  return opts.cors.origin === '*' ? { 'access-control-allow-origin': '*', ...shared } : { ...shared, vary: 'Origin' }
}
