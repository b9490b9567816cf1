/**
 * The security preset (D19 in docs/delivery.md), `security: true` or CLI `--secure`: the headers a
 * security scanner asks for, chosen so that a WebAssembly site keeps working under them. A strict
 * Content-Security-Policy blocks `WebAssembly.compile` and `instantiateStreaming` unless script-src
 * has `'wasm-unsafe-eval'` (CSP3, "EnsureCSPDoesNotBlockWasmEval"; Chromium 97+, Firefox 102+, Safari 16+), an error people
 * lose hours to; this one has it. Static headers join each file's policy (policy.ts); only
 * Strict-Transport-Security depends on the request, and is sent over HTTPS only (RFC 6797 §7.2).
 */
import { isIP } from 'node:net'
import type { FastifyRequest } from 'fastify'
import type { ResolvedOptions, SecurityOptions } from './options.js'
import { REPORTS_PATH } from './reporting.js'
import { scriptHashes } from './inline-scripts.js'
import type { FilePolicy } from './types.js'

/**
 * The default policy for HTML documents. script-src: the site's own scripts, wasm compilation, and
 * (added per document) the hashes of its inline scripts. worker-src: workers from the site (an
 * Emscripten pthread runs the module's own .js, `new Worker(new URL(…))`) and from blob: URLs (a
 * build whose main script is a Blob, as `mainScriptUrlOrBlob` allows, and loaders that wrap a worker
 * in a Blob). A blob: worker inherits this policy, so it may compile wasm too; a worker started from a
 * URL takes the policy of its own response, and the preset sends none on JavaScript, so there it is
 * unrestricted. Inline styles stay allowed: Emscripten's shell and the engines' templates use them.
 */
export const DEFAULT_CSP = [
  "default-src 'self'",
  "script-src 'self' 'wasm-unsafe-eval'",
  "worker-src 'self' blob:",
  "connect-src 'self'",
  "img-src 'self' data: blob:",
  "style-src 'self' 'unsafe-inline'",
  "object-src 'none'",
  "base-uri 'self'",
  "frame-ancestors 'self'",
  "form-action 'self'",
].join('; ')

/** A year, as helmet 8 (helmetjs/helmet#457) and OWASP's HSTS cheat sheet recommend; 2 years is what hstspreload.org asks for preload. */
export const HSTS_MAX_AGE = 31536000

/** The browsers' own default since 2020: full URLs to the site itself, only the origin elsewhere, nothing to http. */
export const REFERRER_POLICY = 'strict-origin-when-cross-origin'

/** The preset with its defaults filled: each header's value, or false where it is off. */
export interface SecuritySettings {
  csp: string | false
  reportOnly: boolean
  referrerPolicy: string | false
  hsts: string | false
  nosniff: boolean
  /** undefined: the default, same-origin (cross-origin with CORS) unless isolation already sends one. */
  resourcePolicy: string | false | undefined
}

export function securitySettings (security: false | SecurityOptions): SecuritySettings | undefined {
  if (security === false) return undefined
  const hsts = security.hsts ?? {}
  return {
    csp: security.contentSecurityPolicy ?? DEFAULT_CSP,
    reportOnly: security.reportOnly ?? false,
    referrerPolicy: security.referrerPolicy ?? REFERRER_POLICY,
    hsts: hsts === false ? false : [`max-age=${hsts.maxAge ?? HSTS_MAX_AGE}`, ...(hsts.includeSubDomains === true ? ['includeSubDomains'] : []), ...(hsts.preload === true ? ['preload'] : [])].join('; '),
    nosniff: security.nosniff ?? true,
    resourcePolicy: security.resourcePolicy,
  }
}

/** What a file is, for its security headers. */
export interface SecuredFile { type: string, body: Buffer | null | undefined, prefix: string }

/**
 * D19: the preset's headers for one file. nosniff, Referrer-Policy and CORP go on every file (a
 * module or a script served with a wrong type is refused rather than guessed at); the CSP on HTML
 * documents only, with their inline scripts' hashes; Strict-Transport-Security too, which the policy
 * keeps apart and the plugin sends over HTTPS only.
 */
export function securityHeaders (settings: SecuritySettings, opts: ResolvedOptions, file: SecuredFile): Record<string, string> {
  const headers: Record<string, string> = {}
  if (settings.nosniff) headers['x-content-type-options'] = 'nosniff'
  if (settings.referrerPolicy !== false) headers['referrer-policy'] = settings.referrerPolicy
  // Isolation (D12) sends CORP already, by the same rule: one value, never two.
  const corp = settings.resourcePolicy ?? (opts.crossOriginIsolation !== false ? false : opts.cors !== false ? 'cross-origin' : 'same-origin')
  if (corp !== false) headers['cross-origin-resource-policy'] = corp
  if (settings.hsts !== false) headers['strict-transport-security'] = settings.hsts
  if (settings.csp !== false && file.type.startsWith('text/html')) {
    const policy = withHashes(settings.csp, file.body == null ? [] : scriptHashes(file.body))
    // report-uri, not report-to: Chromium keeps report-to endpoints only from https:// pages and then
    // ignores report-uri, so a policy naming both reported nothing over http (tried in Chromium 156);
    // report-uri alone reaches the sink from http and https pages in Chromium, Firefox and Safari.
    if (settings.reportOnly) headers['content-security-policy-report-only'] = /(?:^|;)\s*report-(?:to|uri)\s/i.test(policy) ? policy : `${policy}; report-uri ${file.prefix}${REPORTS_PATH}`
    else headers['content-security-policy'] = policy
  }
  return headers
}

/**
 * The policy with the inline scripts' hashes added to its script-src. Not where script-src allows
 * `'unsafe-inline'` (a hash source turns that off, CSP3 "Does a source list allow all inline behavior", and would block the inline event
 * handlers it was there for) or is `'none'`, nor to a policy without script-src.
 */
export function withHashes (policy: string, hashes: string[]): string {
  if (hashes.length === 0) return policy
  return policy.split(';').map(directive => {
    const [name, ...sources] = directive.trim().split(/\s+/)
    if (name?.toLowerCase() !== 'script-src' || sources.some(s => /^'(unsafe-inline|none)'$/i.test(s))) return directive
    return `${directive.trimEnd()} ${hashes.join(' ')}`
  }).join(';')
}

/** The header a policy sends over HTTPS only, taken out of its headers (RFC 6797 §7.2: never over plain HTTP). */
export const HTTPS_ONLY = 'strict-transport-security'

/**
 * A request's extra headers with the file's HTTPS-only ones added when the connection is HTTPS
 * (`request.protocol` also reads X-Forwarded-Proto when the app trusts its proxy) and the host is a
 * name: browsers ignore HSTS from an IP address (RFC 6797 §8.1), and on localhost a year of it would
 * turn every other local development server's http:// URL into a failing https:// one.
 */
export function withHttpsOnly (request: FastifyRequest, policy: FilePolicy, extra: Record<string, string> | undefined): Record<string, string> | undefined {
  const https = policy.https
  if (https === undefined || request.protocol !== 'https' || isLocal(request.hostname)) return extra
  return extra === undefined ? https : { ...extra, ...https }
}

function isLocal (hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase()
  return host === 'localhost' || host.endsWith('.localhost') || isIP(host) !== 0
}
