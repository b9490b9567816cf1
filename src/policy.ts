/**
 * Route policy (D10–D13 in docs/delivery.md): which headers a served file gets besides its representation headers.
 * Computed once per file when the catalog indexes it, so a request only merges precomputed objects.
 */
import picomatch from 'picomatch'
import type { ResolvedOptions, RouteOptions } from './options.js'
import { originalName } from './content-type.js'
import { matchPatternFor } from './dictionary.js'
import type { Asset, FilePolicy, Logger } from './types.js'
import { REPORT_GROUP, reportingEndpoints } from './reporting.js'
import { HTTPS_ONLY, securityHeaders, securitySettings } from './security.js'

export const IMMUTABLE = 'public, max-age=31536000, immutable'
export const REVALIDATE = 'no-cache'

/**
 * Does the file name carry a content hash a bundler put there (D10)? Two shapes count:
 * - a hex run of 8 or more, one letter case, with digits and letters (Parcel `index.2b3c4d5e.js`,
 *   webpack `[contenthash]` 20 hex, Angular 16 hex, Next.js 16 hex, Unity "name files as hashes" 32
 *   hex, trunk `app-<16 hex>_bg.wasm`), unless it reads as a word and a number (`facade01`, `cafe2024`);
 * - 8 base64url characters in both cases, or base32 capitals (digits 2–7), after the last `-` or `.`
 *   (Rollup/Vite `index-BXaH3k2f.js`, Astro and SvelteKit `index.BXaH3k2f.js`, esbuild and Angular
 *   17+ `main-K7ZBXP5Q.js`) that do not
 *   read as words people write: `GameOver`, `NotoSans`, `ResNet50`, `Player01`, `Stage_01`, `IMG_1234`
 *   never count. Such a tail needs a digit, or must lie in a folder bundlers write their output to
 *   (`assets/`, `_astro/`, …): about a fifth of real 8-character hashes have no digit.
 * A false "hashed" pins a changing file in browsers for a year; a false "not hashed" only costs a 304,
 * so every doubt falls on the side of "not hashed".
 */
export function isHashedName (fileName: string): boolean {
  return hashIn(fileName) !== undefined
}

/** The content hash in a file name, as isHashedName recognises it, or undefined. */
export function hashIn (fileName: string): string | undefined {
  const slash = fileName.lastIndexOf('/')
  const base = originalName(fileName.slice(slash + 1))
  for (const part of base.split(/[.\-_]/)) if (isHexHash(part)) return part
  const stem = base.replace(/\.[^.]*$/, '')
  const inAssetDir = ASSET_DIRS.test(fileName.slice(0, slash + 1))
  // SvelteKit names some chunks by their hash alone (`_app/immutable/chunks/CazlH01L.js`).
  const tail = (inAssetDir ? /(?:^|[.-])([A-Za-z0-9_-]{8})$/ : /[.-]([A-Za-z0-9_-]{8})$/).exec(stem)?.[1]
  if (tail === undefined || !bundlerAlphabet(tail) || readsAsWords(tail)) return undefined
  return /\d/.test(tail) || inAssetDir ? tail : undefined
}

/**
 * Whether 8 characters could be a bundler's hash at all. Rollup and Vite write base64url: both letter
 * cases, all but about 3 % of the time ((38/64)^8 for a missing case). esbuild writes base32 in
 * capitals, whose digits are 2–7 only (RFC 4648 §6). Lower case with digits is how people write
 * sizes, versions and part numbers (`1200x630`, `v1beta12`, `nrf52840`), and capitals with a 0, 1, 8
 * or 9 how cameras and reports name files (`DSCF0042`, `Q3FY2024`): none of those is a hash.
 */
function bundlerAlphabet (tail: string): boolean {
  if (/[a-z]/.test(tail) && /[A-Z]/.test(tail)) return true
  return /^[A-Z2-7]{8}$/.test(tail) && /[A-Z]/.test(tail)
}

/** Folders bundlers write hashed output to: Vite/Rollup `assets/`, Astro `_astro/`, SvelteKit, Next.js, create-react-app `static/js|css|media/`. */
const ASSET_DIRS = /(?:^|\/)(?:assets|_astro|_app\/immutable(?:\/[^/]+)?|_next\/static(?:\/[^/]+)*|static\/(?:js|css|media))\/$/

function isHexHash (part: string): boolean {
  if (part.length < 8 || !(/^[0-9a-f]+$/.test(part) || /^[0-9A-F]+$/.test(part)) || !/\d/.test(part)) return false
  if (part.length >= 16) return true
  // A word of hex letters and a number (`facade01`, `cafe2024`) is a name, not a hash.
  const wordAndNumber = /^([a-f]{4,})\d+$|^\d+([a-f]{4,})$/i.exec(part)
  return /[a-f]/i.test(part) && !(wordAndNumber !== null && /[ae]/i.test(wordAndNumber[1] ?? wordAndNumber[2]!))
}

/**
 * Whether an 8-character tail reads as what people name files: one word (`Carousel`), words in
 * CamelCase or upper case (`DarkMode`, `NotoSans`, `GAMEOVER`), or words and one number at an end
 * (`ResNet50`, `Player01`, `Stage_01`, `IMG_1234`, `Item3D`). A word has a vowel and no run of four
 * consonants, opening as English words do (in capitals, also a vowel in every four letters); acronyms of up to three capitals count. A hash mixes cases and
 * digits in runs no word has (`BXaH3k2f`, `K7ZBXP5Q`); the few hashes that read as words lose only
 * their year of caching.
 */
function readsAsWords (tail: string): boolean {
  if (/^[A-Z]?[a-z]+$/.test(tail)) return true
  // A name and a number, separated: `Stage_01`, `IMG_1234`, `level-10`.
  if (/^[A-Za-z]+[_-]\d+$|^\d+[_-][A-Za-z]+$/.test(tail)) return true
  // One number, maybe in parts (`1_1`), at either end; a unit letter may follow it (`3D`, `Level10A`),
  // and a label letter may lead it after a separator (`Theme_A1`, `Boss-B2`).
  if (/\d/.test(tail) && !/^[A-Za-z_-]*\d+(?:[_-]\d+)*[A-Za-z]?$|^\d+[A-Za-z_-]*$/.test(tail)) return false
  const words = tail.replace(/(?:[_-][A-Za-z])?\d+(?:[_-]\d+)*[A-Za-z]?$|^\d+/, '').match(/[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[-_]/g) ?? []
  return words.every(w => w === '-' || w === '_' || isWord(w))
}

/** The two-consonant starts of English words. */
const ONSETS = new Set(['bl', 'br', 'ch', 'cl', 'cr', 'dr', 'dw', 'fl', 'fr', 'gl', 'gn', 'gr', 'kl', 'kn', 'kr', 'ph', 'pl', 'pr', 'ps', 'sc', 'sh', 'sk', 'sl', 'sm', 'sn', 'sp', 'sq', 'st', 'sw', 'th', 'tr', 'ts', 'tw', 'wh', 'wr'])

function isWord (token: string): boolean {
  if (token.length === 1) return /^[vx]$/i.test(token) // `Hero_v2`, `x64`
  if (/^[A-Z]{2,3}$/.test(token)) return true
  const vowels = token.match(/[aeiouy]/gi)?.length ?? 0
  if (token.length < 2 || vowels === 0 || /[^aeiouy]{4}/i.test(token)) return false
  // Two consonants open a word only as English onsets do (`Stage`, `Track`, `Player`), not `Tda`.
  const start = token.slice(0, 2).toLowerCase()
  if (/^[^aeiouy]{2}/.test(start) && !ONSETS.has(start)) return false
  // Capitals are compared letter by letter: a base32 hash has a vowel in about one letter in five.
  return token !== token.toUpperCase() || vowels * 4 >= token.length
}

/** The configured routes, compiled once: the first one whose glob matches a path, if any, with its index. */
function routeFinder (opts: ResolvedOptions): (path: string) => { route: RouteOptions, index: number } | undefined {
  const routes = opts.routes.map((route, index) => ({ test: picomatch(route.match, { dot: true }), route, index }))
  return path => routes.find(r => r.test(path))
}

/**
 * Folders whose framework serves every file in them immutable, because each build writes new names:
 * Next.js `_next/static/` (its chunks, CSS, media and `<buildId>/` manifests; nextjs.org docs, "Caching")
 * and SvelteKit `_app/immutable/`.
 */
const IMMUTABLE_DIRS = /(?:^|\/)(_next\/static|_app\/immutable)\//

/** Which rule set a file's Cache-Control (D10), in words, for the debug log and `wasm-serve explain`. */
export interface CacheDecision { cacheControl: string, rule: string }

/**
 * D10, in order: the first matching route with `cacheControl`, then `noCache` globs, then
 * `immutable` globs, then the name (a content hash, or a framework's immutable folder), else no-cache.
 */
export function cacheRules (opts: ResolvedOptions): (path: string) => CacheDecision {
  const routeOf = routeFinder(opts)
  const globs = (list: string[]) => list.map(glob => ({ glob, test: picomatch(glob, { dot: true }) }))
  const noCache = globs(opts.noCache)
  const immutable = globs(opts.immutable)
  return path => {
    const found = routeOf(path)
    if (found?.route.cacheControl !== undefined) return { cacheControl: found.route.cacheControl, rule: `route ${found.index} "${found.route.match}"` }
    const revalidated = noCache.find(g => g.test(path))
    if (revalidated !== undefined) return { cacheControl: REVALIDATE, rule: `noCache "${revalidated.glob}"` }
    const pinned = immutable.find(g => g.test(path))
    if (pinned !== undefined) return { cacheControl: IMMUTABLE, rule: `immutable "${pinned.glob}"` }
    const hash = hashIn(path)
    if (hash !== undefined) return { cacheControl: IMMUTABLE, rule: `hashed name "${hash}"` }
    const dir = IMMUTABLE_DIRS.exec(path)?.[1]
    if (dir !== undefined) return { cacheControl: IMMUTABLE, rule: `bundler folder "${dir}/"` }
    return { cacheControl: REVALIDATE, rule: 'default: no content hash in the name' }
  }
}

/** A file's policy and, for each header it sets, the rule that gave it (D-number and reason). */
export interface ExplainedPolicy { policy: FilePolicy, rules: Record<string, string> }

/** Compiles the configured routes once; returns the per-file policy function. With `log`, each file's cache rule is logged at debug level. */
export function compilePolicy (opts: ResolvedOptions, dictionaries: DictionaryPolicy = NO_DICTIONARIES, log?: Logger): PolicyOf {
  const explained = explainPolicy(opts, dictionaries)
  return (path, type, size, body) => {
    const { policy, rules } = explained(path, type, size, body)
    log?.debug({ path, cacheControl: policy.headers['cache-control'], rule: rules['cache-control'] }, 'cache policy')
    return policy
  }
}

/**
 * A file's policy from its path, type and size; `body`, an HTML document's bytes when held, gives the
 * hashes of its inline scripts to the security preset's CSP (D19).
 */
export type PolicyOf = (path: string, type: string, size?: number, body?: Buffer | null) => FilePolicy

/** The per-file policy function, also saying which rule gave each header (`wasm-serve explain`). */
export function explainPolicy (opts: ResolvedOptions, dictionaries: DictionaryPolicy = NO_DICTIONARIES): (path: string, type: string, size?: number, body?: Buffer | null) => ExplainedPolicy {
  const routeOf = routeFinder(opts)
  const cacheOf = cacheRules(opts)
  const security = securitySettings(opts.security)
  return (path, type, size, body) => {
    const found = routeOf(path)
    const route = found?.route
    const isDocument = type.startsWith('text/html')
    const cache = cacheOf(path)
    const headers: Record<string, string> = { 'cache-control': cache.cacheControl }
    const rules: Record<string, string> = { 'cache-control': `D10 ${cache.rule}` }
    const add = (set: Record<string, string>, rule: string) => { for (const [name, value] of Object.entries(set)) { headers[name] = value; rules[name] = rule } }
    add(isolationHeaders(opts, type, dictionaries.prefix), `D12 crossOriginIsolation ${String(opts.crossOriginIsolation)}`)
    add(corsHeaders(opts), `D13 cors ${opts.cors === false ? '' : Array.isArray(opts.cors.origin) ? opts.cors.origin.join(',') : opts.cors.origin}`)
    if (security !== undefined) add(securityHeaders(security, opts, { type, body, prefix: dictionaries.prefix }), 'D19 security preset')
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
      rules['use-as-dictionary'] = configured !== undefined ? `D18 route ${found!.index} dictionary` : 'D18 a module that stays fresh'
      headers.vary = headers.vary === undefined ? 'Available-Dictionary' : `${headers.vary}, Available-Dictionary`
      rules.vary = rules.vary === undefined ? 'D18 delta updates' : `${rules.vary}; D18 delta updates`
    }
    for (const [name, value] of Object.entries(route?.headers ?? {})) { headers[name.toLowerCase()] = value; rules[name.toLowerCase()] = `route ${found!.index} "${route!.match}" headers` }
    // An empty value drops the header, whatever set it (a route without the preset's CSP, say).
    for (const [name, value] of Object.entries(headers)) if (value === '') { delete headers[name]; delete rules[name] }
    const preloads = isDocument ? [...(route?.preload ?? []).map(url => ({ url, from: `route ${found!.index}` })), ...opts.preload.map(url => ({ url, from: 'preload' }))] : []
    const links = preloads.map(p => preloadLink(p.url))
    if (links.length > 0) {
      headers.link = links.join(', ')
      rules.link = `D11 ${[...new Set(preloads.map(p => p.from))].join(' and ')}`
    }
    return { policy: { headers, links, ...httpsOnly(headers) }, rules }
  }
}

/** Strict-Transport-Security, from the preset or a route, taken out of the headers: the plugin sends it over HTTPS only (D19, RFC 6797 §7.2). */
function httpsOnly (headers: Record<string, string>): Pick<FilePolicy, 'https'> {
  const value = headers[HTTPS_ONLY]
  if (value === undefined) return {}
  delete headers[HTTPS_ONLY]
  return { https: { [HTTPS_ONLY]: value } }
}

/** Whether a response with this Cache-Control is fresh for a while (RFC 9111 §4.2): max-age above 0, not no-cache or no-store. */
function staysFresh (cacheControl: string): boolean {
  const maxAge = /(?:^|,)\s*max-age\s*=\s*"?(\d+)/i.exec(cacheControl)
  return maxAge !== null && Number(maxAge[1]) > 0 && !/(?:^|,)\s*(no-cache|no-store)\b/i.test(cacheControl)
}

/** An sf-string (RFC 8941 §3.3.3): quoted, backslash and double quote escaped. */
const sfString = (s: string) => `"${s.replace(/[\\"]/g, c => '\\' + c)}"`

/** Whether delta updates are on (this Node can make them), and the URL prefix files (and the report sink) are served under. */
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
  const pinnedGlob = opts.immutable.map(glob => ({ glob, test: picomatch(glob, { dot: true }) }))
  const notPinned = opts.noCache.map(glob => picomatch(glob, { dot: true }))
  const pinned = new Map<RouteOptions, string[]>()
  const byGlob = new Map<string, string[]>()
  for (const asset of assets) {
    if (!asset.isHtml) continue
    const route = routeOf(asset.path)?.route
    if (route?.cacheControl !== undefined) {
      if (!/(?:^|[\s,])immutable(?:$|[\s,;=])/i.test(route.cacheControl)) continue
      pinned.set(route, [...pinned.get(route) ?? [], asset.path])
      continue
    }
    // `--immutable '**'` pins pages as surely as a route does (unless --no-cache takes them back).
    const glob = notPinned.some(test => test(asset.path)) ? undefined : pinnedGlob.find(g => g.test(asset.path))?.glob
    if (glob !== undefined) byGlob.set(glob, [...byGlob.get(glob) ?? [], asset.path])
  }
  for (const [route, pages] of pinned) {
    log.warn({ route: route.match, cacheControl: route.cacheControl, pages: topPages(pages), htmlPages: pages.length },
      'a route makes HTML pages immutable: browsers keep them without asking again until max-age runs out, so a new deploy is not seen; give HTML "no-cache" in a route before it')
  }
  for (const [glob, pages] of byGlob) {
    log.warn({ immutable: glob, cacheControl: IMMUTABLE, pages: topPages(pages), htmlPages: pages.length },
      'an immutable glob makes HTML pages immutable: browsers keep them for a year without asking again, so a new deploy is not seen; narrow the glob, or add the pages to --no-cache')
  }
}

/** Top-level pages first (index.html is the one that matters), at most PAGES_NAMED. */
function topPages (pages: string[]): string[] {
  return pages.sort((a, b) => a.split('/').length - b.split('/').length || a.localeCompare(b)).slice(0, PAGES_NAMED)
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

/**
 * D12: what each isolation mode sends. Documents and JavaScript (the scripts workers start from) get
 * the policy; every served file gets CORP, so a page isolated by any mode may embed it.
 * - "require-corp" / "credentialless": COOP same-origin and that COEP;
 * - "document" / "document-credentialless": Document-Isolation-Policy, which isolates the document
 *   without COOP, so a popup keeps its opener (Chromium 137+; other browsers stay un-isolated). A
 *   dedicated worker is isolated with its owner whatever its script's response says, but its own
 *   fetches follow that response's DIP, and a shared or service worker has only its own (WICG
 *   document-isolation-policy; WPT html/document-isolation-policy/): scripts carry the page's DIP;
 * - "report": the Report-Only forms of COOP and COEP, reporting to the built-in sink: nothing breaks,
 *   and what would break is logged.
 */
function isolationHeaders (opts: ResolvedOptions, type: string, prefix: string): Record<string, string> {
  const mode = opts.crossOriginIsolation
  if (mode === false) return {}
  const corp = { 'cross-origin-resource-policy': opts.cors !== false ? 'cross-origin' : 'same-origin' }
  const isDocumentOrWorker = type.startsWith('text/html') || type.startsWith('text/javascript')
  if (!isDocumentOrWorker) return corp
  switch (mode) {
    case 'document': return { 'document-isolation-policy': 'isolate-and-require-corp', ...corp }
    case 'document-credentialless': return { 'document-isolation-policy': 'isolate-and-credentialless', ...corp }
    case 'report': return {
      'cross-origin-opener-policy-report-only': `same-origin; report-to="${REPORT_GROUP}"`,
      'cross-origin-embedder-policy-report-only': `require-corp; report-to="${REPORT_GROUP}"`,
      'reporting-endpoints': reportingEndpoints(prefix),
      ...corp,
    }
    default: return { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': mode, ...corp }
  }
}

/**
 * D13: the static part of CORS. For a list of origins only Access-Control-Allow-Origin is per request
 * (see cors.ts); `Vary: Origin` is on every response, so shared caches keep one per origin.
 */
function corsHeaders (opts: ResolvedOptions): Record<string, string> {
  if (opts.cors === false) return {}
  const shared = {
    // Content-Range and Accept-Ranges too: a page reading a database or a data file by ranges from
    // another origin (SQLite over HTTP, DuckDB-wasm, Emscripten's lazy files) must see them.
    'access-control-expose-headers': 'X-Decoded-Content-Length, ETag, Content-Length, Content-Encoding, Content-Range, Accept-Ranges',
    'timing-allow-origin': opts.cors.origin === '*' ? '*' : opts.cors.origin.join(', '),
  }
  return opts.cors.origin === '*' ? { 'access-control-allow-origin': '*', ...shared } : { ...shared, vary: 'Origin' }
}
