/**
 * `_headers` and `_redirects` for Netlify and Cloudflare Pages: the same two files, read by two
 * engines that combine matching rules differently, so the rules are laid out so that no path is
 * told one header twice.
 *
 * - Netlify: https://docs.netlify.com/manage/routing/headers/ (rule syntax; Content-Encoding among
 *   the headers it ignores), https://docs.netlify.com/manage/routing/redirects/rewrites-proxies/
 *   (a `200` rewrite with a splat is "shadowed" by a file that exists: the SPA rule serves only
 *   paths that name no file). How Netlify combines two rules that set the same header is not
 *   documented, so here no header is set by two rules that match one path: `/*` carries only the
 *   headers every file has, with the same value; each file's rule carries the rest.
 * - Cloudflare Pages: https://developers.cloudflare.com/pages/configuration/headers/ (every matching
 *   rule applies, in order; a header set twice is joined with a comma; `! Name` detaches a header
 *   a more pervasive rule set; 100 rules; 2,000 characters a line), /serving-pages/ (`x.html` is
 *   redirected to `/x`; without a `404.html` at the root every unknown path gets index.html).
 *   Rules are matched against the percent-encoded path (workers-sdk asset-worker rules-engine.ts).
 *   With the SPA, or beyond 100 rules, `/*` carries the page's headers (what a deep link gets) and
 *   each file's rule detaches and sets what differs; directories whose files all need the same rule
 *   share one `/dir/*` rule.
 */
import { commonWarnings, type Capabilities } from '../notes.js'
import type { Site, SiteFile } from '../site.js'
import type { Exported, Target } from '../target.js'
import { commentLines, directWarning, headerName, isUnder, named, ruleHeaders } from './cdn.js'

type Headers = Record<string, string>

interface Rule {
  path: string
  /** Header names detached first (Cloudflare only), lower case. */
  unset: string[]
  set: Headers
}

interface Entry {
  file: SiteFile
  /** The request paths that get this file, as the rules must name them. */
  paths: string[]
  headers: Headers
}

interface Platform {
  engine: string
  can: Capabilities
  paths: (file: SiteFile) => string[]
  /** Cloudflare's `! Name`: a rule can remove what an earlier one set. */
  detach: boolean
  maxRules: number
  maxLine: number
}

const NETLIFY: Platform = {
  engine: 'Netlify',
  can: { engine: 'Netlify', siblings: 'ignored', decodedLength: false, earlyHints: false, corsOriginList: false, encodedLength: true },
  // The file's own URL, and a directory's URL for its index.html (D14).
  paths: file => /(^|\/)index\.html$/.test(file.path) ? [file.url, file.url.slice(0, -'index.html'.length)] : [file.url],
  detach: false,
  maxRules: Infinity,
  maxLine: Infinity,
}

const CLOUDFLARE: Platform = {
  engine: 'Cloudflare Pages',
  // Pages sends 103 Early Hints from the Link headers of `_headers` itself:
  // https://developers.cloudflare.com/pages/configuration/early-hints/
  can: { engine: 'Cloudflare Pages', siblings: 'ignored', decodedLength: false, earlyHints: true, corsOriginList: false, encodedLength: true },
  // Pages answers a page at its extension-less URL and redirects `x.html` there (serving-pages).
  paths: file => [/(^|\/)index\.html$/.test(file.path) ? file.url.slice(0, -'index.html'.length) : file.path.endsWith('.html') ? file.url.slice(0, -'.html'.length) : file.url],
  detach: true,
  maxRules: 100,
  maxLine: 2000,
}

export const netlify: Target = site => build(site, NETLIFY)
export const cloudflarePages: Target = site => build(site, CLOUDFLARE)

function build (site: Site, platform: Platform): Exported {
  const warnings = [...commonWarnings(site, platform.can)]
  const unsafe = site.files.filter(f => f.url.includes('*'))
  if (unsafe.length > 0) warnings.push(`${unsafe.length} file(s) have a "*" in their name, which ${platform.engine}'s rules read as a splat (${named(unsafe.map(f => f.path))}): they get only the headers every file shares; rename them`)
  const entries = site.files.filter(f => !f.url.includes('*')).map(file => ({ file, paths: platform.paths(file), headers: ruleHeaders(file) }))
  const page = spaPage(site, entries)
  const rules = platform.detach && (page !== undefined || exactRules(entries).length > platform.maxRules)
    ? detachRules(site, entries, page?.headers ?? mostCommon(entries), platform, warnings)
    : exactRules(entries)
  warnings.push(...platformWarnings(site, platform, entries, rules))
  const redirects = redirectsFile(site, platform, page, warnings)
  const blocks = renderRules(rules, platform, warnings)
  const files = [{ name: '_headers', text: [...commentLines(headerTitle(platform), warnings), '', blocks, ''].join('\n') }]
  if (redirects !== undefined) files.push({ name: '_redirects', text: redirects })
  return { files, warnings }
}

function spaPage (site: Site, entries: Entry[]): Entry | undefined {
  const spa = site.opts.spa
  return spa === false ? undefined : entries.find(e => e.file.path === spa)
}

/** `/*` with the headers every file sends alike, then each path with the rest: no header set twice. */
function exactRules (entries: Entry[]): Rule[] {
  const common = commonHeaders(entries)
  const rules: Rule[] = Object.keys(common).length > 0 ? [{ path: '/*', unset: [], set: common }] : []
  for (const entry of entries) {
    const rest = without(entry.headers, common)
    if (Object.keys(rest).length > 0) for (const path of entry.paths) rules.push({ path, unset: [], set: rest })
  }
  return rules
}

/**
 * Cloudflare: `/*` sets `defaults`; a file's rule detaches what it must not have or has otherwise,
 * then sets its own value. Directories whose files all need one rule share `/dir/*` when the rules
 * would be too many; beyond that the files left over keep the defaults, and a warning names them.
 */
function detachRules (site: Site, entries: Entry[], defaults: Headers, platform: Platform, warnings: string[]): Rule[] {
  const bodies = new Map(entries.map(e => [e, diff(defaults, e.headers)]))
  const perPath = (list: Entry[]) => list.flatMap(e => isEmpty(bodies.get(e)!) ? [] : e.paths.map(path => ({ path, ...bodies.get(e)! })))
  let rules: Rule[] = perPath(entries)
  if (rules.length + 1 > platform.maxRules) rules = groupByDirectory(site, entries, bodies, perPath)
  const head: Rule = { path: '/*', unset: [], set: defaults }
  const kept = rules.slice(0, platform.maxRules - 1)
  const lost = rules.slice(platform.maxRules - 1)
  if (lost.length > 0) warnings.push(`${platform.engine} allows ${platform.maxRules} header rules: ${lost.length} path(s) keep only the headers of "/*" (${named(lost.map(r => r.path))}); give them fewer distinct policies (routes) or serve them elsewhere`)
  return [head, ...kept]
}

function groupByDirectory (site: Site, entries: Entry[], bodies: Map<Entry, Omit<Rule, 'path'>>, perPath: (list: Entry[]) => Rule[]): Rule[] {
  const covered = new Set<Entry>()
  const rules: Rule[] = []
  // Top-most directories first, so one rule covers as much as it can.
  const dirs = site.dirs.filter(d => d !== '' && !d.includes('*')).sort((a, b) => a.split('/').length - b.split('/').length || (a < b ? -1 : 1))
  for (const dir of dirs) {
    const members = entries.filter(e => isUnder(e.file.path, dir))
    if (members.length < 2 || members.some(e => covered.has(e))) continue
    const key = JSON.stringify(bodies.get(members[0]!))
    if (isEmpty(bodies.get(members[0]!)!) || members.some(e => JSON.stringify(bodies.get(e)) !== key)) continue
    rules.push({ path: '/' + dir.split('/').map(encodeURIComponent).join('/') + '/*', ...bodies.get(members[0]!)! })
    for (const e of members) covered.add(e)
  }
  return [...rules, ...perPath(entries.filter(e => !covered.has(e)))]
}

function diff (defaults: Headers, wanted: Headers): Omit<Rule, 'path'> {
  const unset = Object.keys(defaults).filter(name => wanted[name] !== defaults[name]).sort()
  const set: Headers = {}
  for (const name of Object.keys(wanted).sort()) if (wanted[name] !== defaults[name]) set[name] = wanted[name]!
  return { unset, set }
}

const isEmpty = (body: Omit<Rule, 'path'>) => body.unset.length === 0 && Object.keys(body.set).length === 0

function commonHeaders (entries: Entry[]): Headers {
  if (entries.length === 0) return {}
  const [first, ...rest] = entries
  const common: Headers = {}
  for (const [name, value] of Object.entries(first!.headers)) if (rest.every(e => e.headers[name] === value)) common[name] = value
  return common
}

/** Each header's most frequent value among the files (ties: the first in sorted order), for a site too big for per-file rules. */
function mostCommon (entries: Entry[]): Headers {
  const counts = new Map<string, Map<string, number>>()
  for (const e of entries) {
    for (const [name, value] of Object.entries(e.headers)) {
      const byValue = counts.get(name) ?? new Map<string, number>()
      byValue.set(value, (byValue.get(value) ?? 0) + 1)
      counts.set(name, byValue)
    }
  }
  const out: Headers = {}
  for (const name of [...counts.keys()].sort()) {
    const [value, count] = [...counts.get(name)!].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0]!
    // A header most files lack is better set per file than detached from most.
    if (count * 2 > entries.length) out[name] = value
  }
  return out
}

function without (headers: Headers, common: Headers): Headers {
  const out: Headers = {}
  for (const [name, value] of Object.entries(headers)) if (common[name] !== value) out[name] = value
  return out
}

function platformWarnings (site: Site, platform: Platform, entries: Entry[], rules: Rule[]): string[] {
  const out: string[] = []
  const direct = directWarning(platform.engine, site.files, platform === NETLIFY
    ? 'Netlify ignores Content-Encoding in _headers'
    : 'Cloudflare Pages compresses responses itself and does not document honouring a Content-Encoding set in _headers')
  if (direct !== undefined) out.push(direct)
  const page = spaPage(site, entries)
  const hasNotFound = site.files.some(f => f.path === '404.html')
  if (platform === NETLIFY) {
    if (page !== undefined) {
      out.push(`Netlify cannot limit the SPA fallback to extension-less paths that accept HTML: a missing module (/missing.wasm) gets ${page.file.path} with status 200 where wasm-serve answers 404; loaders must check the type (D15)`)
      const shared = rules.find(r => r.path === '/*')?.set ?? {}
      const own = Object.keys(page.headers).filter(name => shared[name] !== page.headers[name]).map(headerName)
      if (own.length > 0) out.push(`Netlify matches header rules on the requested path: a deep link answered with ${page.file.path} gets the headers every file shares but not the page's own (${own.join(', ')}) (D15)`)
    }
    if (site.opts.dotfiles === 'allow') out.push('Netlify does not deploy dotfiles other than .well-known (netlify/cli#11): with dotfiles "allow" wasm-serve serves them, Netlify answers 404 (D14)')
  } else {
    if (page !== undefined && hasNotFound) out.push(`the root has a 404.html, which turns Cloudflare Pages' single-page mode off: deep links get 404, not ${page.file.path} (D15)`)
    if (page !== undefined && page.file.path !== 'index.html') out.push(`Cloudflare Pages' single-page mode serves index.html, not ${page.file.path}: deep links get index.html (D15)`)
    if (page !== undefined && !hasNotFound) out.push('Cloudflare Pages\' single-page mode answers every unknown path with the page, a missing module (/missing.wasm) too, with status 200, where wasm-serve answers 404; loaders must check the type (D15)')
    if (page === undefined && !hasNotFound) out.push('the root has no 404.html: Cloudflare Pages then answers every unknown path with index.html and status 200 (its single-page mode), where wasm-serve answers 404; add a 404.html at the root (D15)')
    if (site.opts.dotfiles === 'deny') out.push('Cloudflare Pages serves every file uploaded, dotfiles included, and a _headers rule cannot answer 404: keep dotfiles (.env, .git) out of the uploaded directory (D14)')
  }
  return out
}

function headerTitle (platform: Platform): string[] {
  return [
    `_headers for ${platform.engine}, written by \`wasm-serve export\`: the headers wasm-serve sends, per path.`,
    platform.detach
      ? 'Rules apply in order; "! Name" removes a header an earlier rule set (https://developers.cloudflare.com/pages/configuration/headers/).'
      : 'No header is set by two rules that match one path (https://docs.netlify.com/manage/routing/headers/).',
  ]
}

/** The rules as text; a line beyond the platform's limit is left out, with a warning. */
function renderRules (rules: Rule[], platform: Platform, out: string[]): string {
  const blocks: string[] = []
  const tooLong: string[] = []
  for (const rule of rules) {
    const lines = [...rule.unset.map(name => `  ! ${headerName(name)}`), ...Object.keys(rule.set).sort().map(name => `  ${headerName(name)}: ${rule.set[name]}`)]
    const fits = lines.filter(line => line.length <= platform.maxLine)
    if (fits.length < lines.length || rule.path.length > platform.maxLine) tooLong.push(rule.path)
    if (rule.path.length <= platform.maxLine && fits.length > 0) blocks.push([rule.path, ...fits].join('\n'))
  }
  if (tooLong.length > 0) out.push(`${platform.engine} reads at most ${platform.maxLine} characters a line: headers left out for ${named(tooLong)} (a long Link header: fewer preloads)`)
  return blocks.join('\n\n')
}

function redirectsFile (site: Site, platform: Platform, page: Entry | undefined, warnings: string[]): string | undefined {
  if (site.opts.spa === false) return undefined
  const title = [`_redirects for ${platform.engine}, written by \`wasm-serve export\`: the SPA fallback (D15).`]
  if (page === undefined) {
    warnings.push(`the SPA page ${site.opts.spa} is not in the directory: no fallback was written (D15)`)
    return [...commentLines(title, []), ''].join('\n')
  }
  if (platform === NETLIFY) {
    // A splat rewrite without "!" is shadowed by any file that exists (rewrites-proxies#shadowing).
    return [...commentLines([...title, 'Shadowed by every file that exists: only paths that name no file get the page.'], []), `/*  ${page.file.url}  200`, ''].join('\n')
  }
  // Pages' own single-page mode does it (no 404.html at the root); a `/* /index.html 200` rule would
  // be followed even for files that exist ("Redirects are always followed", /pages/configuration/redirects/).
  return [...commentLines([...title, 'Nothing to write: Cloudflare Pages serves the page for unknown paths itself when the root has no 404.html', '(https://developers.cloudflare.com/pages/configuration/serving-pages/#single-page-application-spa-rendering).'], []), ''].join('\n')
}
