/**
 * `vercel.json` for Vercel: `headers` and, with the SPA, `rewrites`
 * (https://vercel.com/docs/project-configuration#headers, https://vercel.com/docs/rewrites).
 *
 * - Sources are path-to-regexp patterns (Vercel's routing-utils compiles them); a file's URL is
 *   written as an unnamed group of regex alternatives, escaped, so one entry covers every file with
 *   the same headers: `/(app\.wasm|Build/game\.wasm)`. Both the percent-encoded and the decoded form
 *   of a name are listed where they differ, whichever of the two the router compares.
 * - When several entries match a path and set one header, the last one wins (Next.js documents it
 *   for the same `headers` format: https://nextjs.org/docs/app/api-reference/config/next-config-js/headers).
 *   No entry removes a header, so a header goes into a broader entry only when every path it
 *   matches sends it with that value, or a later entry sets it again.
 * - Rewrites apply only when no file answers the path (the filesystem is checked first), so the SPA
 *   rewrite covers exactly the paths that name no file: extension-less ones that accept HTML (D15),
 *   as wasm-serve's fallback does; a missing `.wasm` stays 404.
 * - Limits (routing-utils schemas.ts): 2,048 entries per list, 4,096 characters per source.
 * - JSON has no comments: the warnings are printed on stderr only.
 */
import { commonWarnings } from '../notes.js'
import type { Site, SiteFile } from '../site.js'
import type { Target } from '../target.js'
import { directWarning, headerName, named, ruleHeaders } from './cdn.js'

type Headers = Record<string, string>

interface HeaderEntry { source: string, headers: Array<{ key: string, value: string }> }

const MAX_SOURCE = 4096
const MAX_ENTRIES = 2048
const ENGINE = 'Vercel'

/** Paths whose last segment has no dot (the directory URLs `/` and `/dir/` included): what an SPA fallback may answer. */
export const EXTENSIONLESS = '/((?:[^/]*/)*[^./]*)'

/** An Accept that names HTML (D15), as a regex over the header's value. */
const ACCEPTS_HTML = '.*(?:text/html|application/xhtml\\+xml).*'

export const vercel: Target = site => {
  const warnings = commonWarnings(site, { engine: ENGINE, siblings: 'ignored', decodedLength: false, earlyHints: false, corsOriginList: false, encodedLength: true })
  const direct = directWarning(ENGINE, site.files, 'Vercel compresses responses itself and does not document honouring a Content-Encoding set in vercel.json')
  if (direct !== undefined) warnings.push(direct)
  const spa = site.opts.spa
  const page = spa === false ? undefined : site.files.find(f => f.path === spa)
  const all = site.files.map(ruleHeaders)
  const common = shared(page === undefined ? all : [...all, ruleHeaders(page)])
  const headers: HeaderEntry[] = []
  if (Object.keys(common).length > 0) headers.push(entry('/(.*)', common))
  if (page !== undefined) {
    const own = without(ruleHeaders(page), common)
    if (Object.keys(own).length > 0) headers.push(entry(EXTENSIONLESS, own))
    warnings.push(...extraOnExtensionless(site, own))
  }
  headers.push(...fileEntries(site.files, common))
  if (headers.length > MAX_ENTRIES) warnings.push(`${ENGINE} takes at most ${MAX_ENTRIES} header entries; this site needs ${headers.length}: the ones past it are ignored (routes with fewer distinct policies help)`)
  if (spa !== false && page === undefined) warnings.push(`the SPA page ${spa} is not in the directory: no fallback was written (D15)`)
  if (site.opts.dotfiles === 'deny') warnings.push(`${ENGINE} serves every file deployed and vercel.json cannot answer 404 for dotfiles: keep them out of the deployment (.vercelignore) (D14)`)
  const config: Record<string, unknown> = { $schema: 'https://openapi.vercel.sh/vercel.json', headers }
  if (page !== undefined) {
    config.rewrites = [{ source: EXTENSIONLESS, has: [{ type: 'header', key: 'accept', value: ACCEPTS_HTML }], destination: '/' + page.path }]
  }
  return { files: [{ name: 'vercel.json', text: JSON.stringify(config, null, 2) + '\n' }], warnings }
}

/** Files with the same headers (beyond the shared ones) in one entry, or several when the source would be too long. */
function fileEntries (files: SiteFile[], common: Headers): HeaderEntry[] {
  const groups = new Map<string, { headers: Headers, alternatives: string[] }>()
  for (const file of files) {
    const own = without(ruleHeaders(file), common)
    if (Object.keys(own).length === 0) continue
    const key = JSON.stringify(own)
    const group = groups.get(key) ?? { headers: own, alternatives: [] }
    group.alternatives.push(...urlsOf(file).map(escapeForPattern))
    groups.set(key, group)
  }
  const out: HeaderEntry[] = []
  for (const key of [...groups.keys()].sort()) {
    const { headers, alternatives } = groups.get(key)!
    for (const chunk of chunks(alternatives)) out.push(entry(`/(${chunk.join('|')})`, headers))
  }
  return out
}

/** The URL paths, without the leading slash, a file answers at: its name, and a directory's URL for its index.html. */
function urlsOf (file: SiteFile): string[] {
  const forms = new Set([file.url.slice(1), file.path])
  if (/(^|\/)index\.html$/.test(file.path)) for (const form of [...forms]) forms.add(form.slice(0, -'index.html'.length))
  return [...forms]
}

/** A literal for a path-to-regexp custom pattern: regex characters escaped (the lexer skips what follows a backslash). */
function escapeForPattern (literal: string): string {
  return literal.replace(/[.*+?^${}()|[\]\\/:]/g, c => '\\' + c)
}

function chunks (alternatives: string[]): string[][] {
  const out: string[][] = [[]]
  let length = 3
  for (const alt of alternatives) {
    if (length + alt.length + 1 > MAX_SOURCE && out.at(-1)!.length > 0) { out.push([]); length = 3 }
    out.at(-1)!.push(alt)
    length += alt.length + 1
  }
  return out.filter(c => c.length > 0)
}

/**
 * The SPA page's own headers also reach files that exist at extension-less paths (`LICENSE`, a
 * directory's index page); a later entry can replace a value but never remove a header.
 */
function extraOnExtensionless (site: Site, own: Headers): string[] {
  const pattern = new RegExp(`^${EXTENSIONLESS}$`)
  const hit = site.files.filter(file => urlsOf(file).some(u => pattern.test('/' + u)) && Object.keys(own).some(name => ruleHeaders(file)[name] === undefined))
  return hit.length === 0 ? [] : [`${ENGINE} cannot remove a header: ${named(hit.map(f => f.path))} also get(s) the SPA page's ${Object.keys(own).filter(n => hit.some(f => ruleHeaders(f)[n] === undefined)).map(headerName).join(', ')} (D15)`]
}

function entry (source: string, headers: Headers): HeaderEntry {
  return { source, headers: Object.keys(headers).sort().map(name => ({ key: headerName(name), value: headers[name]! })) }
}

function shared (list: Headers[]): Headers {
  if (list.length === 0) return {}
  const out: Headers = {}
  for (const [name, value] of Object.entries(list[0]!)) if (list.every(h => h[name] === value)) out[name] = value
  return out
}

function without (headers: Headers, common: Headers): Headers {
  const out: Headers = {}
  for (const name of Object.keys(headers).sort()) if (common[name] !== headers[name]) out[name] = headers[name]!
  return out
}
