/**
 * The rules `wasm-serve check` audits, with stable ids (scripts and CI match on them) and the one-line
 * summary `--help` prints; docs/delivery.md ("wasm-serve check") has the full table. A finding is one
 * rule's verdict on one URL, with the evidence seen and, for WARN and FAIL, the fix.
 */
export type Status = 'pass' | 'warn' | 'fail'

export const RULE_IDS = [
  'reachable', 'content-type', 'encoding', 'q-values', 'content-length', 'vary', 'etag', 'not-modified',
  'range', 'head', 'cache-policy', 'preload', 'isolation', 'secure-context', 'cors', 'early-hints',
  'decoded-length', 'dotfiles', 'spa-fallback',
] as const

export type RuleId = typeof RULE_IDS[number]

export interface Finding {
  rule: RuleId
  status: Status
  /** The URL the finding is about: a page, a script, a module, or an origin's root for dotfiles. */
  url: string
  evidence: string
  fix?: string
}

export interface Rule { id: RuleId, summary: string }

/** One line per rule for --help, in report order. */
export const RULES: Rule[] = [
  { id: 'reachable', summary: '200, after at most 5 redirects, within the timeout (every URL)' },
  { id: 'content-type', summary: 'module: exactly application/wasm (D1); script: a JavaScript type; page: text/html' },
  { id: 'encoding', summary: "Chrome's Accept-Encoding gets br/zstd/gzip on a module of 1 KiB+; none gets identity (D2)" },
  { id: 'q-values', summary: 'br;q=0, zstd;q=0 is honoured: neither comes back (RFC 9110 §12.5.3, D2)' },
  { id: 'content-length', summary: 'every 200 of a module has Content-Length, not chunked (D5)' },
  { id: 'vary', summary: 'Vary: Accept-Encoding when answers differ by encoding (D7)' },
  { id: 'etag', summary: 'a validator, and no strong ETag shared by two encodings (D6)' },
  { id: 'not-modified', summary: 'If-None-Match with the ETag gets 304 (D6)' },
  { id: 'range', summary: 'bytes=0-7 gets 206 with Content-Range, and the bytes start with the wasm magic (D8)' },
  { id: 'head', summary: 'HEAD has the status, type, length and encoding of GET (D9)' },
  { id: 'cache-policy', summary: 'hashed names cached long, plain names revalidated, pages never pinned (D10)' },
  { id: 'preload', summary: "the page's modules are preloaded, with crossorigin (D11)" },
  { id: 'isolation', summary: 'COOP + COEP (or Document-Isolation-Policy) make crossOriginIsolated possible; cross-origin modules allowed (D12)' },
  { id: 'secure-context', summary: 'the page is https or loopback (br, crossOriginIsolated need it)' },
  { id: 'cors', summary: 'modules used by pages of another origin allow it and expose the decoded length (D13)' },
  { id: 'early-hints', summary: 'a page with preload links sends them early in a 103 (D11)' },
  { id: 'decoded-length', summary: 'an encoded module says its X-Decoded-Content-Length, and it is right (D5)' },
  { id: 'dotfiles', summary: '/.env and /.git/config are not served (D14, once per origin)' },
  { id: 'spa-fallback', summary: 'a missing .wasm next to the module is 404, not an HTML page (D15)' },
]

export const WASM_MAGIC = Buffer.from([0x00, 0x61, 0x73, 0x6d])

/** The codings `wasm-serve check` sends as Chrome does (over HTTPS; it offers no br over plain http). */
export const CHROME_ACCEPT_ENCODING = 'gzip, deflate, br, zstd'

/** The first bytes of a body, as hex and as text where printable: `3c 21 64 6f ("<!do")`. */
export function bytesShown (body: Buffer): string {
  const head = body.subarray(0, 4)
  const text = head.toString('latin1')
  return `${[...head].map(b => b.toString(16).padStart(2, '0')).join(' ')}${/^[\x20-\x7e]+$/.test(text) ? ` ("${text}")` : ''}`
}

/** The worst of several statuses. */
export function worst (statuses: Status[]): Status {
  return statuses.includes('fail') ? 'fail' : statuses.includes('warn') ? 'warn' : 'pass'
}
