/**
 * The audit of a page: its own headers (type, cache policy, isolation, secure context, preload links
 * and the 103 that should carry them), then the scripts it loads from the same site (type and cache
 * policy) and the `.wasm` URLs those scripts and its preload links name, which run.ts audits as
 * modules. The rules that need the modules' answers (preload, isolation) are judged in `pageVerdicts`.
 */
import type { IncomingHttpHeaders } from 'node:http'
import { cachePolicy } from './cache.js'
import { follow, header, type Answer, type Client } from './http.js'
import { CHROME_ACCEPT_ENCODING, type Finding, type RuleId, type Status } from './rules.js'
import { decodeBody, linkPreloads, scanPage, wasmUrlsIn, type Preload, type ScriptRef } from './scan.js'

export const MAX_SCRIPTS = 20
export const MAX_MODULES = 20
export const PAGE_BYTES = 5 * 1024 * 1024
const SCRIPT_BYTES = 10 * 1024 * 1024

export interface PageScan {
  url: string
  final: string
  answer: Answer
  preloads: Preload[]
  scripts: ScriptRef[]
  /** .wasm URLs the page makes the browser load: its preload links and what its scripts name. */
  modules: string[]
  findings: Finding[]
  /** Headers of every response, for recognising the engine. */
  seen: IncomingHttpHeaders[]
}

type Verdict = Omit<Finding, 'url'>

/**
 * Same site, approximately: the same scheme and the same last two host labels (or the same host for
 * an IP address or a one-label name). Without the Public Suffix List, `a.github.io` and `b.github.io`
 * count as one site; only requests are limited by this, never a verdict.
 */
export function sameSite (a: string, b: string): boolean {
  const [x, y] = [new URL(a), new URL(b)]
  const site = (h: string) => /^[\d.]+$|^\[/.test(h) ? h : h.split('.').slice(-2).join('.')
  return x.protocol === y.protocol && site(x.hostname) === site(y.hostname)
}

export const isPageType = (type: string | undefined): boolean => /^\s*(text\/html|application\/xhtml\+xml)\s*(;|$)/i.test(type ?? '')
export const isScriptType = (type: string | undefined): boolean => /^\s*(text|application)\/(x-)?(javascript|ecmascript)\s*(;|$)/i.test(type ?? '')

/** Reads a page the client already reached, and the same-site scripts it loads. */
export async function scanPageAt (client: Client, url: string, reached: { answer: Answer, chain: string[] }): Promise<PageScan> {
  const final = reached.chain.at(-1)!
  const answer = reached.answer
  const findings: Finding[] = []
  const add = (v: Verdict, at = url) => findings.push({ ...v, url: at })
  add({ rule: 'reachable', status: 'pass', evidence: `200${reached.chain.length > 1 ? ` via ${reached.chain.join(' → ')}` : ''}` })
  add({ rule: 'content-type', status: isPageType(header(answer.headers, 'content-type')) ? 'pass' : 'fail', evidence: `page ${header(answer.headers, 'content-type') ?? 'without Content-Type'}` })
  add({ rule: 'cache-policy', ...cachePolicy(final, 'page', answer.headers) })
  const html = decodeBody(answer.body, header(answer.headers, 'content-encoding'))
  const fromHtml = scanPage(html, final)
  const preloads = [...linkPreloads(header(answer.headers, 'link'), final), ...fromHtml.preloads]
  const scripts = uniqueBy([...fromHtml.scripts, ...preloads.filter(p => p.rel === 'modulepreload').map(p => ({ url: p.url, module: true }))], s => s.url)
  const modules = new Set(preloads.filter(p => isWasmUrl(p.url)).map(p => p.url))
  const seen = [answer.headers]
  for (const script of scripts.filter(s => sameSite(s.url, final)).slice(0, MAX_SCRIPTS)) {
    const found = await auditScript(client, script, add)
    if (found === undefined) continue
    seen.push(found.headers)
    for (const m of found.modules) modules.add(m)
  }
  return { url, final, answer, preloads, scripts, modules: [...modules].slice(0, MAX_MODULES), findings, seen }
}

function uniqueBy<T> (items: T[], key: (t: T) => string): T[] {
  return [...new Map(items.map(i => [key(i), i])).values()]
}

const isWasmUrl = (url: string): boolean => /\.wasm$/i.test(new URL(url).pathname)

/** A script: reachable, a JavaScript type, its cache policy; and the .wasm URLs it names. */
export async function auditScript (client: Client, script: ScriptRef, add: (v: Verdict, at: string) => void): Promise<{ headers: IncomingHttpHeaders, modules: string[] } | undefined> {
  let reached
  try {
    reached = await follow(client, script.url, { headers: { 'accept-encoding': CHROME_ACCEPT_ENCODING, accept: '*/*' }, readBytes: SCRIPT_BYTES })
  } catch (err) {
    add({ rule: 'reachable', status: 'fail', evidence: (err as Error).message }, script.url)
    return undefined
  }
  const { answer, chain } = reached
  if (answer.status !== 200) { add({ rule: 'reachable', status: 'fail', evidence: `script ${answer.status}` }, script.url); return undefined }
  add({ rule: 'reachable', status: 'pass', evidence: `script 200${chain.length > 1 ? ` via ${chain.join(' → ')}` : ''}` }, script.url)
  const type = header(answer.headers, 'content-type')
  const nosniff = /nosniff/i.test(header(answer.headers, 'x-content-type-options') ?? '')
  // HTML's "JavaScript MIME type essence match": module scripts (and any script under nosniff) of
  // another type are not run; a classic script of another type still runs, but not everywhere.
  const typeStatus: Status = isScriptType(type) ? 'pass' : script.module || nosniff ? 'fail' : 'warn'
  add({ rule: 'content-type', status: typeStatus, evidence: `${script.module ? 'module ' : ''}script ${type ?? 'without Content-Type'}${typeStatus === 'pass' ? '' : ': not a JavaScript MIME type'}` }, script.url)
  add({ rule: 'cache-policy', ...cachePolicy(chain.at(-1)!, 'script', answer.headers) }, script.url)
  const source = decodeBody(answer.body, header(answer.headers, 'content-encoding'))
  return { headers: answer.headers, modules: wasmUrlsIn(source, chain.at(-1)!) }
}

/**
 * The page rules that depend on its modules: preload (each module preloaded, and with crossorigin,
 * since fetch() is a CORS request and a preload without it is another request: w3c/preload#100),
 * isolation (COOP + COEP or Document-Isolation-Policy, and under require-corp, every cross-origin
 * module allowed by CORS or CORP), secure context, and early hints (a 103 carrying the page's preload
 * links).
 */
export function pageVerdicts (page: PageScan, modules: Map<string, IncomingHttpHeaders | undefined>): Finding[] {
  const verdicts: Verdict[] = [preload(page), isolation(page, modules), secureContext(page.final), earlyHints(page)]
  return verdicts.map(v => ({ ...v, url: page.url }))
}

function preload (page: PageScan): Verdict {
  const rule: RuleId = 'preload'
  const preloaded = new Map(page.preloads.map(p => [p.url, p]))
  const loose = page.preloads.filter(p => (isWasmUrl(p.url) || p.as === 'fetch') && !p.crossorigin)
  if (loose.length > 0) return { rule, status: 'fail', evidence: `preload without crossorigin (${loose.map(p => `${p.url} in ${p.from === 'header' ? 'Link' : 'the HTML'}`).join(', ')}): fetch() downloads the module a second time` }
  const missing = page.modules.filter(m => !preloaded.has(m))
  if (missing.length > 0) return { rule, status: 'warn', evidence: `not preloaded: ${missing.join(', ')} (found by the scripts; the download starts only when they run)` }
  if (page.modules.length === 0) return { rule, status: 'pass', evidence: 'no .wasm module found in the page or its scripts' }
  return { rule, status: 'pass', evidence: `preloaded with crossorigin: ${page.modules.join(', ')}` }
}

/**
 * Isolated by COOP same-origin + COEP, or by Document-Isolation-Policy (WICG document-isolation-policy),
 * which isolates the page alone and keeps popups' openers, but only in Chromium 137+ (desktop).
 */
function isolation (page: PageScan, modules: Map<string, IncomingHttpHeaders | undefined>): Verdict {
  const rule: RuleId = 'isolation'
  const coop = header(page.answer.headers, 'cross-origin-opener-policy')?.trim().toLowerCase()
  const coep = header(page.answer.headers, 'cross-origin-embedder-policy')?.trim().toLowerCase()
  // DIP is a structured-field token (RFC 8941), possibly with parameters (report-to).
  const dip = header(page.answer.headers, 'document-isolation-policy')?.split(';')[0]!.trim().toLowerCase()
  const shown = `COOP ${coop ?? '(none)'}, COEP ${coep ?? '(none)'}${dip === undefined ? '' : `, Document-Isolation-Policy ${dip}`}`
  const byCoop = coop === 'same-origin' && (coep === 'require-corp' || coep === 'credentialless')
  const byDip = dip === 'isolate-and-require-corp' || dip === 'isolate-and-credentialless'
  if (!byCoop && !byDip) {
    return { rule, status: 'warn', evidence: `${shown}: crossOriginIsolated is false, so no SharedArrayBuffer and no wasm threads` }
  }
  const origin = new URL(page.final).origin
  // Under require-corp a cross-origin response loads only with CORS (fetch() is CORS mode) or CORP
  // cross-origin; credentialless drops credentials instead and lets it through.
  const requireCorp = (byCoop && coep === 'require-corp') || dip === 'isolate-and-require-corp'
  const blocked = [...modules.entries()].filter(([m, h]) => {
    if (!requireCorp || new URL(m).origin === origin || h === undefined) return false
    return header(h, 'access-control-allow-origin') === undefined && header(h, 'cross-origin-resource-policy')?.trim().toLowerCase() !== 'cross-origin'
  })
  if (blocked.length > 0) return { rule, status: 'fail', evidence: `${shown}, but ${blocked.map(([m]) => m).join(', ')} has neither CORS nor Cross-Origin-Resource-Policy: cross-origin: the page cannot load it` }
  return { rule, status: 'pass', evidence: `${shown}: crossOriginIsolated possible${byCoop ? '' : ' in Chromium 137+ (other browsers ignore Document-Isolation-Policy)'}` }
}

function secureContext (url: string): Verdict {
  const { protocol, hostname } = new URL(url)
  // Secure contexts: https, and http to loopback (W3C Secure Contexts §3.2, "potentially trustworthy").
  const loopback = hostname === 'localhost' || hostname.endsWith('.localhost') || /^127\./.test(hostname) || hostname === '[::1]'
  if (protocol === 'https:') return { rule: 'secure-context', status: 'pass', evidence: 'https' }
  if (loopback) return { rule: 'secure-context', status: 'pass', evidence: `http to loopback (${hostname}) is a secure context` }
  return { rule: 'secure-context', status: 'warn', evidence: `http to ${hostname}: not a secure context, so no crossOriginIsolated, and Chrome offers br only over HTTPS` }
}

function earlyHints (page: PageScan): Verdict {
  const rule: RuleId = 'early-hints'
  const hint = page.answer.informational.find(i => i.status === 103 && header(i.headers, 'link') !== undefined)
  if (hint !== undefined) return { rule, status: 'pass', evidence: `103 with Link: ${header(hint.headers, 'link')}` }
  if (page.preloads.some(p => p.from === 'header')) return { rule, status: 'warn', evidence: 'the page has preload links but no 103 Early Hints carried them' }
  return { rule, status: 'pass', evidence: 'no 103 (no preload links in the Link header to send early)' }
}
