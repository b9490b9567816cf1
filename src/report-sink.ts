/**
 * The built-in report sink (D12 in docs/delivery.md): `POST <prefix>/.well-known/wasm-serve/reports`,
 * the endpoint `Reporting-Endpoints` names (reporting.ts). Browsers post what a Report-Only policy
 * would have blocked; each distinct violation is logged once at warn, with the URL and the fix in
 * words, so `--isolate=report` says what `--isolate` would break before it breaks it.
 *
 * It reads the Reporting API's batches (`application/reports+json`, w3c.github.io/reporting/#try-delivery)
 * and legacy CSP reports (`application/csp-report`, CSP3 §5.4 report-uri). Report bodies as Chromium
 * sends them: COEP `{type: "corp" | "navigation" | "worker initialization", blockedURL, destination,
 * disposition}` (content/browser/network/cross_origin_embedder_policy_reporter.cc), COOP `{type:
 * "navigation-to-response" | "navigation-from-response" | "access-…", nextResponseURL, openeeURL, …}`
 * (cross_origin_opener_policy_reporter.cc), CSP `{blockedURL, effectiveDirective, documentURL, …}`.
 *
 * Anyone can post here, so it is bounded everywhere: the body size, a token bucket per client
 * address (the number of addresses tracked capped), the reports read from one post, the set of
 * violations already logged and each address's share of it, the length of every logged string. Nothing is stored but that set, and nothing on disk.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { sendError } from './http-errors.js'
import type { ResolvedOptions } from './options.js'
import { REPORTS_PATH } from './reporting.js'
import type { Logger } from './types.js'

/**
 * Chromium keeps at most 100 reports queued (net/reporting/reporting_policy.cc, max_report_count)
 * and posts them together; at a few hundred bytes each plus their URLs, a full batch fits.
 */
export const REPORT_BODY_LIMIT = 128 * 1024
/** The token bucket per client address: a burst this big, then one request a second. */
export const RATE_BURST = 30
const RATE_PER_S = 1
/** Client addresses tracked at once; the least recently seen is forgotten first. */
const MAX_CLIENTS = 1000
/** Distinct violations logged; later ones are counted in one line, not logged. */
export const MAX_LOGGED = 1000
/**
 * Of those, what one client address may add: a page has a few dozen distinct violations, and no
 * single client may use up the log for everyone (two forged batches of 700 reports did).
 */
export const MAX_LOGGED_PER_CLIENT = 100
/** Reports read from one post: Chromium sends at most 100 (max_report_count, above). */
export const MAX_REPORTS_PER_POST = 100
/** A logged string (a URL, a directive) is cut to this many characters. */
const MAX_TEXT = 1024

const REPORTS_JSON = 'application/reports+json'
const CSP_REPORT = 'application/csp-report'

/** Whether the sink is served: the isolation report mode, or the security preset's report-only CSP (D19). */
export function reportSinkNeeded (opts: ResolvedOptions): boolean {
  return opts.crossOriginIsolation === 'report' || (opts.security !== false && opts.security.reportOnly === true)
}

/** One report, reduced to what is logged about it. */
export interface Violation {
  /** The report's type: coep, coop, csp-violation (legacy csp-report bodies become csp-violation too). */
  type: string
  /** The body's own type (corp, navigation, navigation-from-response, …) or the CSP directive. */
  kind: string
  /** What was (or would be) blocked: a subresource, a framed page, a worker, the other window. */
  blockedURL: string
  /** The request's destination (image, script, …) when the browser says it. */
  destination: string
  /** The page the report is about. */
  documentURL: string
  /** `reporting` (report-only: nothing was blocked) or `enforce`. */
  disposition: string
  /** COOP access reports: the property accessed on the other window. */
  property?: string
}

type Json = Record<string, unknown>

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v)
const text = (v: unknown): string => typeof v === 'string' ? v.slice(0, MAX_TEXT) : ''

/** The violations in a parsed body, or undefined when it is not a report body of its type. */
export function violationsOf (contentType: string, body: unknown): Violation[] | undefined {
  if (contentType === CSP_REPORT) {
    const report = isObject(body) ? body['csp-report'] : undefined
    return isObject(report) ? [legacyCsp(report)] : undefined
  }
  if (!Array.isArray(body)) return undefined
  return body.filter(isObject).map(report => {
    const b = isObject(report.body) ? report.body : {}
    return report.type === 'csp-violation' ? reportedCsp(b, report) : reported(text(report.type), b, text(report.url))
  })
}

/** A COEP or COOP report (or a type this sink only counts); the blocked URL is the other party's. */
function reported (type: string, b: Json, url: string): Violation {
  const blockedURL = text(b.blockedURL ?? b.nextResponseURL ?? b.openeeURL ?? b.openerURL ?? b.otherDocumentURL ?? b.initialPopupURL ?? b.previousResponseURL ?? b.referrer)
  const v: Violation = { type, kind: text(b.type), blockedURL, destination: text(b.destination), documentURL: url, disposition: text(b.disposition) }
  if (typeof b.property === 'string') v.property = text(b.property)
  return v
}

/** A `csp-violation` report (CSP3 §5.3, the Reporting API's body). */
function reportedCsp (b: Json, report: Json): Violation {
  return { type: 'csp-violation', kind: text(b.effectiveDirective), blockedURL: text(b.blockedURL), destination: '', documentURL: text(b.documentURL ?? report.url), disposition: text(b.disposition) }
}

/** A legacy `report-uri` body: the same fields in kebab-case (CSP3 §5.4). */
function legacyCsp (r: Json): Violation {
  const directive = text(r['effective-directive'] ?? r['violated-directive']).split(' ')[0]!
  return { type: 'csp-violation', kind: directive, blockedURL: text(r['blocked-uri']), destination: '', documentURL: text(r['document-uri']), disposition: text(r.disposition) }
}

/** What a violation means and what to do, in words; undefined for reports not worth a warning. */
export function explain (v: Violation): { what: string, fix: string } | undefined {
  const would = v.disposition === 'enforce' ? 'blocked' : 'would block'
  const url = v.blockedURL === '' ? '(a URL the browser does not disclose)' : v.blockedURL
  if (v.type === 'coep') {
    switch (v.kind) {
      case 'corp': return {
        what: `cross-origin isolation ${would} the ${v.destination === '' ? 'subresource' : v.destination} ${url}: it has no Cross-Origin-Resource-Policy`,
        fix: `add Cross-Origin-Resource-Policy: cross-origin to ${url} on its server, or load it with crossorigin from a server that sends CORS, or use --isolate=credentialless (or document-credentialless)`,
      }
      case 'navigation': return {
        what: `cross-origin isolation ${would} the framed page ${url}: it sends no Cross-Origin-Embedder-Policy`,
        fix: `serve ${url} with Cross-Origin-Embedder-Policy: require-corp (or credentialless) and Cross-Origin-Resource-Policy: cross-origin, or give its iframe the credentialless attribute (Chromium)`,
      }
      case 'worker initialization': return workerFix(v, url, would)
    }
    return undefined
  }
  if (v.type === 'coop') {
    if (v.kind.startsWith('navigation-') || v.kind.startsWith('access-')) {
      const access = v.property === undefined ? '' : ` (the page used window.${v.property})`
      const enforced = v.disposition === 'enforce'
      return {
        what: `Cross-Origin-Opener-Policy same-origin ${enforced ? 'severed' : 'would sever'} the link between this page and the other window ${url}${access}: window.opener ${enforced ? 'is' : 'would be'} null and the popup's handle closed (OAuth and payment popups stop reporting back)`,
        fix: 'use --isolate=document (Document-Isolation-Policy isolates the page without COOP, so popups keep their opener; Chromium 137+), or let the popup and the page talk through a server or BroadcastChannel on one origin',
      }
    }
    return undefined
  }
  if (v.type === 'csp-violation') return cspFix(v, url)
  return undefined
}

/**
 * In report mode every dedicated worker is reported: the page's report-only COEP is compared with
 * the worker script's enforced one, and the report mode enforces none (HTML, "check a global object's
 * embedder policy", step 4). A worker script this server serves gets COEP under `--isolate`, and a
 * blob: worker inherits the page's, so a worker from the page's origin is expected (the page's origin is
 * this server's as the browser sees it); only a worker script from elsewhere would break.
 */
function workerFix (v: Violation, url: string, would: string): { what: string, fix: string } | undefined {
  if (url.startsWith('blob:') || url.startsWith('data:') || originOf(url) === originOf(v.documentURL)) return undefined
  return {
    what: `cross-origin isolation ${would} the worker ${url}: its script is served without Cross-Origin-Embedder-Policy`,
    fix: `serve ${url} with Cross-Origin-Embedder-Policy: require-corp (or credentialless), or serve the worker script from this server`,
  }
}

function cspFix (v: Violation, url: string): { what: string, fix: string } {
  const directive = v.kind === '' ? 'a directive' : v.kind
  const what = `Content-Security-Policy ${v.disposition === 'enforce' ? 'blocked' : 'would block'} ${url} (${directive})`
  switch (v.blockedURL) {
    case 'wasm-eval': return { what, fix: 'add \'wasm-unsafe-eval\' to script-src: WebAssembly compilation needs it' }
    case 'eval': return { what, fix: `remove eval() and new Function() from the page's scripts, or add 'unsafe-eval' to ${directive} (WebAssembly alone needs only 'wasm-unsafe-eval')` }
    case 'inline': return { what, fix: `move the inline code into a file, or allow it in ${directive} by its hash ('sha256-…') or a nonce` }
  }
  const scheme = /^(blob|data):/.exec(v.blockedURL)?.[1]
  if (scheme !== undefined) return { what, fix: `add ${scheme}: to ${directive} (Emscripten starts pthread workers from blob: URLs)` }
  const origin = originOf(v.blockedURL)
  return { what, fix: origin === undefined ? `allow it in ${directive}` : `add ${origin} to ${directive}` }
}

function originOf (url: string): string | undefined {
  try {
    const origin = new URL(url).origin
    return origin === 'null' ? undefined : origin
  } catch { return undefined }
}

/** Each distinct violation once: a bounded set, then one line saying more were not logged. */
export class ReportLog {
  private readonly seen = new Set<string>()
  private full = false
  /** Distinct violations each client address added, least recently seen first (at most MAX_CLIENTS). */
  private readonly byClient = new Map<string, number>()

  constructor (private readonly log: Logger, private readonly max = MAX_LOGGED, private readonly perClient = MAX_LOGGED_PER_CLIENT) {}

  add (v: Violation, client = ''): void {
    const key = [v.type, v.kind, v.blockedURL, v.destination].join('\n')
    if (this.seen.has(key)) return
    if (this.seen.size >= this.max) {
      if (!this.full) this.log.warn({ logged: this.max }, `${this.max} distinct reports were logged; later ones are not (restart the server to see more)`)
      this.full = true
      return
    }
    const added = this.byClient.get(client) ?? 0
    this.byClient.delete(client) // re-inserted last: the map's order is least recently seen first
    this.byClient.set(client, added + (added < this.perClient ? 1 : 0))
    if (this.byClient.size > MAX_CLIENTS) this.byClient.delete(this.byClient.keys().next().value!)
    if (added >= this.perClient) return
    if (added + 1 === this.perClient) this.log.warn({ client, logged: this.perClient }, `${this.perClient} distinct reports were logged from ${client || 'one client'}; its later ones are not`)
    this.seen.add(key)
    const explained = explain(v)
    const fields = { report: v.type, kind: v.kind, blockedURL: v.blockedURL, destination: v.destination || undefined, documentURL: v.documentURL, property: v.property }
    if (explained === undefined) this.log.debug(fields, `report received (${v.type} ${v.kind}): nothing to fix`)
    else this.log.warn({ ...fields, fix: explained.fix }, explained.what)
  }
}

/** A token bucket per client address; the map holds at most `maxClients`, least recently seen dropped. */
export class RateLimit {
  private readonly buckets = new Map<string, { tokens: number, at: number }>()

  constructor (private readonly burst = RATE_BURST, private readonly perSecond = RATE_PER_S, private readonly maxClients = MAX_CLIENTS) {}

  take (client: string, now = Date.now()): boolean {
    const bucket = this.buckets.get(client) ?? { tokens: this.burst, at: now }
    this.buckets.delete(client) // re-inserted last: the map's order is least recently seen first
    bucket.tokens = Math.min(this.burst, bucket.tokens + (now - bucket.at) / 1000 * this.perSecond)
    bucket.at = now
    const allowed = bucket.tokens >= 1
    if (allowed) bucket.tokens -= 1
    this.buckets.set(client, bucket)
    if (this.buckets.size > this.maxClients) this.buckets.delete(this.buckets.keys().next().value!)
    return allowed
  }

  get clients (): number { return this.buckets.size }
}

export interface ReportSinkOptions {
  /** The URL prefix the files (and so the sink) are served under: Fastify's own register option, applied to the routes here. */
  prefix: string
  /** Other methods on the sink's URL get 405 with `Allow: POST` (D17); off, they fall through as any unserved path does. */
  methodNotAllowed: boolean
}

/**
 * Registers the sink in its own encapsulated context: its body parsers and error answers stay off the
 * app's routes. Rate limit first (onRequest), then Fastify checks the type (415) and the length (413)
 * before reading a byte of the body; a body that is not a report of its type is 400.
 */
export async function reportSink (fastify: FastifyInstance, options: ReportSinkOptions): Promise<void> {
  const url = REPORTS_PATH // under options.prefix, which Fastify adds to every route registered here
  const limit = new RateLimit()
  const logged = new ReportLog(fastify.log)
  fastify.removeAllContentTypeParsers()
  const json = fastify.getDefaultJsonParser('error', 'error') // secure-json-parse: __proto__ keys are a 400
  fastify.addContentTypeParser([REPORTS_JSON, CSP_REPORT], { parseAs: 'string', bodyLimit: REPORT_BODY_LIMIT }, json)
  fastify.setErrorHandler((err: { statusCode?: number }, request, reply) => {
    const status = statusOf(err)
    if (status === 500) request.log.error({ err }, 'report sink failed')
    return sendError(reply, status)
  })
  fastify.route({
    method: 'POST',
    url,
    onRequest: (request, reply, done) => { if (limit.take(request.ip)) done(); else sendError(reply, 429, { 'retry-after': String(Math.ceil(1 / RATE_PER_S)) }) },
    handler: (request, reply) => receive(request, reply, logged),
  })
  if (options.methodNotAllowed) {
    const others = fastify.supportedMethods.filter(m => m !== 'POST')
    fastify.route({ method: others, url, onRequest: (_request, reply) => { sendError(reply, 405, { allow: 'POST' }) }, handler: () => {} })
  }
}

/** The client errors Fastify's parsers raise (400 malformed, 413, 415) as they are; anything else is ours. */
function statusOf (err: { statusCode?: number }): number {
  return typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500
}

function receive (request: FastifyRequest, reply: FastifyReply, logged: ReportLog): FastifyReply {
  const type = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase()
  if (type !== REPORTS_JSON && type !== CSP_REPORT) return sendError(reply, 415)
  const violations = violationsOf(type, request.body)
  if (violations === undefined) return sendError(reply, 400)
  for (const v of violations.slice(0, MAX_REPORTS_PER_POST)) logged.add(v, request.ip)
  return reply.code(204).header('cache-control', 'no-store').send()
}
