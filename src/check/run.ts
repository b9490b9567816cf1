/**
 * `checkUrls`: audits the URLs given, pages followed to their scripts and modules, against the
 * delivery rules (docs/delivery.md, "wasm-serve check"). Each URL is first asked for as a browser
 * would (headers only) to tell a page from a script from a module; pages are read and scanned, then
 * every module is audited once, whichever page or argument named it, knowing which page origins load
 * it; then the page rules that depend on modules, then dotfiles once per origin. Only the URLs given
 * and what their pages load from the same site are requested.
 */
import type { IncomingHttpHeaders } from 'node:http'
import { DEFAULT_TIMEOUT_MS } from './args.js'
import { fixFor, recogniseEngine, type Engine } from './engines.js'
import { follow, header, makeClient, type Answer, type Client } from './http.js'
import { auditModule } from './module.js'
import { auditScript, isPageType, isScriptType, MAX_MODULES, PAGE_BYTES, pageVerdicts, sameSite, scanPageAt, type PageScan } from './page.js'
import { CHROME_ACCEPT_ENCODING, RULE_IDS, worst, type Finding, type Status } from './rules.js'

export type { Finding, RuleId, Status } from './rules.js'
export { RULE_IDS } from './rules.js'

export interface Report {
  findings: Finding[]
  /** The engine recognised from the Server header (or wasm-serve's own headers): 'nginx', 'caddy', … */
  engine?: Engine
  /** Every URL audited, in order: given URLs, the scripts and modules their pages load. */
  urls: string[]
}

export interface CheckOptions {
  /** Idle timeout per request, in ms (default 10 s). */
  timeoutMs?: number
  /** Accept any TLS certificate. */
  insecure?: boolean
  /** Progress lines for a module read whole (over 4 MB). */
  progress?: (line: string) => void
}

const PAGE_ACCEPT = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8'

export async function checkUrls (urls: string[], options: CheckOptions = {}): Promise<Report> {
  const client = makeClient({ timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS, insecure: options.insecure ?? false })
  try {
    return await run(client, urls, options)
  } finally {
    client.close()
  }
}

interface Given { url: string, reached: { answer: Answer, chain: string[] } }

async function run (client: Client, urls: string[], options: CheckOptions): Promise<Report> {
  const findings: Finding[] = []
  const order: string[] = []
  const seen: IncomingHttpHeaders[] = []
  const pages: PageScan[] = []
  /** Module URL → the origins of the pages that load it; given modules first, in order. */
  const modules = new Map<string, { origins: Set<string>, given?: Given }>()
  const listed = (u: string) => { if (!order.includes(u)) order.push(u) }
  for (const url of urls) {
    listed(url)
    const given = await classify(client, url, findings)
    if (given === undefined) continue
    seen.push(given.reached.answer.headers)
    const kind = kindOf(given)
    if (kind === 'module') { modules.set(url, { origins: modules.get(url)?.origins ?? new Set(), given }); continue }
    if (kind === 'script') {
      const found = await auditScript(client, { url, module: false }, (v, at) => findings.push({ ...v, url: at }))
      for (const m of found?.modules ?? []) if (sameSite(m, url)) addModule(modules, m, undefined)
      continue
    }
    const reached = await follow(client, url, { headers: { accept: PAGE_ACCEPT, 'accept-encoding': CHROME_ACCEPT_ENCODING }, readBytes: PAGE_BYTES }).catch((err: Error) => err)
    if (reached instanceof Error) { findings.push({ rule: 'reachable', status: 'fail', url, evidence: reached.message }); continue }
    const page = await scanPageAt(client, url, reached)
    pages.push(page)
    findings.push(...page.findings)
    seen.push(...page.seen)
    for (const s of page.scripts.filter(s => sameSite(s.url, page.final))) listed(s.url)
    for (const m of page.modules.filter(m => sameSite(m, page.final))) addModule(modules, m, new URL(page.final).origin)
  }
  const moduleHeaders = new Map<string, IncomingHttpHeaders | undefined>()
  for (const [url, { origins, given }] of [...modules.entries()].slice(0, urls.length + MAX_MODULES)) {
    listed(url)
    const result = await auditModule(url, { client, pageOrigins: [...origins].sort(), progress: options.progress, reached: given?.reached })
    findings.push(...result.findings)
    moduleHeaders.set(url, result.headers)
    if (result.headers !== undefined) seen.push(result.headers)
  }
  for (const page of pages) {
    const mine = new Map(page.modules.map(m => [m, moduleHeaders.get(m)]))
    findings.push(...pageVerdicts(page, mine))
  }
  findings.push(...await dotfiles(client, order))
  const engine = seen.map(recogniseEngine).find(e => e !== undefined)
  return { findings: sorted(findings, order).map(f => f.status === 'pass' ? f : { ...f, fix: fixFor(f.rule, engine) }), ...(engine !== undefined ? { engine } : {}), urls: order }
}

function addModule (modules: Map<string, { origins: Set<string>, given?: Given }>, url: string, pageOrigin: string | undefined): void {
  const entry = modules.get(url) ?? { origins: new Set<string>() }
  if (pageOrigin !== undefined) entry.origins.add(pageOrigin)
  modules.set(url, entry)
}

/** The GET a browser's fetch() would make, headers only; a failure is the reachable FAIL. */
async function classify (client: Client, url: string, findings: Finding[]): Promise<Given | undefined> {
  try {
    const reached = await follow(client, url, { headers: { accept: '*/*', 'accept-encoding': CHROME_ACCEPT_ENCODING } })
    if (reached.answer.status === 200) return { url, reached }
    const via = reached.chain.length > 1 ? ` via ${reached.chain.join(' → ')}` : ''
    findings.push({ rule: 'reachable', status: 'fail', url, evidence: `${reached.answer.status}${via}` })
  } catch (err) {
    findings.push({ rule: 'reachable', status: 'fail', url, evidence: (err as Error).message })
  }
  return undefined
}

function kindOf (given: Given): 'page' | 'script' | 'module' {
  const type = header(given.reached.answer.headers, 'content-type')
  const path = new URL(given.reached.chain.at(-1)!).pathname
  if (/\.wasm$/i.test(path) || /^application\/wasm/i.test(type ?? '')) return 'module'
  if (isPageType(type)) return 'page'
  if (isScriptType(type) || /\.m?js$/i.test(path)) return 'script'
  return 'module'
}

/**
 * /.env and /.git/config, once per origin: a 200 with content is a secret exposed (D14); an HTML 200
 * is an SPA page answering every path, which exposes nothing but hides real 404s.
 */
async function dotfiles (client: Client, urls: string[]): Promise<Finding[]> {
  const origins = [...new Set(urls.map(u => new URL(u).origin))]
  const out: Finding[] = []
  for (const origin of origins) {
    const answers = await Promise.all(['/.env', '/.git/config'].map(async path => {
      const answer = await client.get(origin + path, { headers: { accept: '*/*' }, readBytes: 256 }).catch((err: Error) => err)
      if (answer instanceof Error) return { path, status: 'warn' as Status, text: `${path} ${answer.message}` }
      const html = isPageType(header(answer.headers, 'content-type')) || /^\s*<(!doctype|html)/i.test(answer.body.toString('latin1'))
      const status: Status = answer.status !== 200 ? 'pass' : html ? 'warn' : 'fail'
      return { path, status, text: `${path} ${answer.status}${answer.status === 200 ? (html ? ' (an HTML page)' : ` (${answer.body.length > 0 ? 'content' : 'empty'})`) : ''}` }
    }))
    const status = worst(answers.map(a => a.status))
    const why = status === 'fail' ? ': secrets in dotfiles are public' : status === 'warn' ? ': dotfiles answered with a page' : ''
    out.push({ rule: 'dotfiles', status, url: `${origin}/`, evidence: answers.map(a => a.text).join(', ') + why })
  }
  return out
}

/** Findings by URL in audit order, then by rule in the order of RULE_IDS: the same report every run. */
function sorted (findings: Finding[], order: string[]): Finding[] {
  const at = (u: string) => { const i = order.indexOf(u); return i === -1 ? order.length : i }
  return findings.map((f, i) => ({ f, i })).sort((a, b) => at(a.f.url) - at(b.f.url) || a.f.url.localeCompare(b.f.url) || RULE_IDS.indexOf(a.f.rule) - RULE_IDS.indexOf(b.f.rule) || a.i - b.i).map(x => x.f)
}
