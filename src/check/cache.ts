/**
 * The cache-policy rule (D10 in docs/delivery.md): how long a browser may use a response without
 * asking (RFC 9111 §4.2.1: max-age, else Expires − Date; no-cache and no-store mean no reuse
 * unasked), judged by what the URL is. A hashed name never changes content, so a short lifetime only
 * costs revalidations (WARN); a plain module name with a long one keeps a changed file stale (WARN);
 * a page pinned for long hides every new deploy from those who visited (FAIL).
 */
import type { IncomingHttpHeaders } from 'node:http'
import { isHashedName } from '../policy.js'
import { header } from './http.js'
import type { Status } from './rules.js'

const DAY = 86_400
const HOUR = 3600

interface Lifetime { seconds: number | undefined, immutable: boolean, text: string }

/** The freshness lifetime the headers give, in seconds; undefined when they give none (heuristic). */
export function lifetime (headers: IncomingHttpHeaders): Lifetime {
  const cc = header(headers, 'cache-control')
  const directives = new Map((cc ?? '').split(',').map(d => d.trim().toLowerCase()).filter(Boolean).map(d => {
    const [name, value] = d.split('=', 2) as [string, string | undefined]
    return [name.trim(), value?.trim().replace(/^"|"$/g, '')]
  }))
  const immutable = directives.has('immutable')
  const text = cc === undefined ? 'no Cache-Control' : `Cache-Control: ${cc}`
  if (directives.has('no-store') || directives.has('no-cache')) return { seconds: 0, immutable, text }
  const maxAge = directives.get('max-age')
  if (maxAge !== undefined && /^\d+$/.test(maxAge)) return { seconds: Number(maxAge), immutable, text }
  const expires = Date.parse(header(headers, 'expires') ?? '')
  if (!Number.isNaN(expires)) {
    const date = Date.parse(header(headers, 'date') ?? '')
    const seconds = Math.max(0, Math.round((expires - (Number.isNaN(date) ? Date.now() : date)) / 1000))
    return { seconds, immutable, text: `${text}, Expires in ${seconds} s` }
  }
  return { seconds: undefined, immutable, text }
}

export type Kind = 'page' | 'module' | 'script'

/** The cache-policy verdict for a URL of this kind. */
export function cachePolicy (url: string, kind: Kind, headers: IncomingHttpHeaders): { status: Status, evidence: string } {
  const life = lifetime(headers)
  const seconds = life.seconds ?? 0
  if (kind === 'page') {
    if (life.immutable || seconds > HOUR) return { status: 'fail', evidence: `page ${life.text}: a new deploy is not seen for ${life.immutable ? 'ever (immutable)' : `${seconds} s`}` }
    // RFC 9111 §4.2.2: with no lifetime and a Last-Modified, browsers reuse the page for a tenth of its age.
    if (life.seconds === undefined && header(headers, 'last-modified') !== undefined) return { status: 'warn', evidence: `page ${life.text}: browsers reuse it for a heuristic time (10 % of its age)` }
    return { status: 'pass', evidence: `page ${life.text}` }
  }
  const hashed = isHashedName(new URL(url).pathname)
  if (hashed) {
    return seconds >= DAY
      ? { status: 'pass', evidence: `hashed name, ${life.text}` }
      : { status: 'warn', evidence: `hashed name, ${life.text}: revalidated on every load although it never changes` }
  }
  if (life.immutable || seconds > DAY) return { status: 'warn', evidence: `plain name, ${life.text}: a changed file stays stale in browsers` }
  return { status: 'pass', evidence: `plain name, ${life.text}` }
}
