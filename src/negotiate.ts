/**
 * Accept-Encoding negotiation (D2 in docs/delivery.md, RFC 9110 §12.5.3).
 *
 * Hand-written on purpose: the kept parsers get the RFC's specificity rule wrong for this use.
 * `negotiator` and `@fastify/accept-negotiator` both let `*` override an explicit `br;q=0`
 * ("br;q=0, *" selects br), compare tokens case-sensitively and do not know `x-gzip`.
 */
import type { Coding } from './encodings.js'

const QVALUE = /^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/
const TOKEN = /^[!#$%&'*+.^_`|~0-9a-z-]+$/

/** The q-value the header gives each token (lower-cased, `x-gzip` folded into gzip); invalid members are ignored. */
export function parseAcceptEncoding (header: string): Map<string, number> {
  const q = new Map<string, number>()
  for (const member of header.split(',')) {
    const [rawToken = '', ...params] = member.split(';')
    let token = rawToken.trim().toLowerCase()
    if (token === '') continue
    if (!TOKEN.test(token)) continue
    if (token === 'x-gzip') token = 'gzip'
    let value = 1
    for (const param of params) {
      const [name = '', v = ''] = param.split('=').map(s => s.trim())
      if (name.toLowerCase() !== 'q') continue
      value = QVALUE.test(v) ? Number(v) : Number.NaN
    }
    if (Number.isNaN(value)) continue
    q.set(token, Math.max(value, q.get(token) ?? 0))
  }
  return q
}

/**
 * How acceptable one coding is: its own entry, else `*`, else 0 — except identity, which is
 * acceptable unless excluded (RFC 9110 §12.5.3) but, not having been asked for, ranks below any
 * coding the client did list (`br;q=0.5` still gets br).
 */
function qualityOf (accepted: Map<string, number>, coding: Coding): number {
  const own = accepted.get(coding)
  if (own !== undefined) return own
  const star = accepted.get('*')
  if (star !== undefined) return star
  return coding === 'identity' ? IDENTITY_BY_DEFAULT : 0
}

const IDENTITY_BY_DEFAULT = 1e-9

const cache = new Map<string, Map<string, number>>()
const CACHE_LIMIT = 512

/** The codings among `available` the client accepts at all (q > 0). */
export function acceptedCodings (header: string | undefined, available: readonly Coding[]): Coding[] {
  if (header === undefined) return available.filter(c => c === 'identity')
  const accepted = parsed(header)
  return available.filter(c => qualityOf(accepted, c) > 0)
}

function parsed (header: string): Map<string, number> {
  let accepted = cache.get(header)
  if (accepted === undefined) {
    accepted = parseAcceptEncoding(header)
    if (cache.size >= CACHE_LIMIT) cache.clear()
    cache.set(header, accepted)
  }
  return accepted
}

/**
 * Picks the coding to send among `available` (in server preference order), or null when the client
 * accepts none of them (then 406). A request without Accept-Encoding gets identity: RFC 9110 allows
 * any coding then, but curl and wget without --compressed would save undecodable bytes (nginx agrees).
 */
export function negotiate (header: string | undefined, available: readonly Coding[]): Coding | null {
  if (header === undefined) return available.includes('identity') ? 'identity' : null
  const accepted = parsed(header)
  let best: Coding | null = null
  let bestQ = 0
  for (const coding of available) {
    const q = qualityOf(accepted, coding)
    if (q > bestQ) { best = coding; bestQ = q }
  }
  return best
}
