/** Flags of `wasm-serve check`, parsed by the commands' one argument layer (src/args.ts); the help text lists every rule. */
import { parseFlags, type Flag } from '../args.js'
import { UsageError } from '../start-errors.js'
import { RULES } from './rules.js'

export interface CheckArgs {
  urls: string[]
  json: boolean
  insecure: boolean
  timeoutMs: number
}

export const DEFAULT_TIMEOUT_MS = 10_000

const FLAGS: Flag[] = [
  { name: 'json', doc: 'print the report as JSON' },
  { name: 'insecure', doc: 'accept any TLS certificate' },
  { name: 'timeout', arg: 'TIME', doc: 'give up on a request after this long without a byte' },
  { name: 'help', short: 'h', doc: 'show this help' },
]

const ruleLines = RULES.map(r => `  ${r.id.padEnd(16)}${r.summary}`).join('\n')

export const HELP = `Usage: wasm-serve check <url> [more urls] [options]

Audits deployed pages and WebAssembly modules from outside against wasm-serve's delivery rules
(docs/delivery.md, D1–D18). A page URL is followed to the scripts it loads and the .wasm modules
those scripts name (same site only: at most 20 scripts and 20 modules). Prints one line per rule per
URL, PASS, WARN or FAIL with the evidence, and for WARN and FAIL the fix, in the terms of the server
recognised from its Server header.

Options:
  --json            print the report as JSON (findings, engine, urls audited)
  --timeout TIME    give up on a request after this long without a byte: 10s, 5000ms (default 10s)
  --insecure        accept any TLS certificate (a self-signed development server)
  -h, --help        show this help

Rules:
${ruleLines}

A module is never downloaded whole when HEAD and an 8-byte range answer the questions; when a rule
needs the whole body, it is read once, with a progress line on stderr for modules over 4 MB.

Exit codes: 0 no FAIL (WARNs allowed); 1 at least one FAIL; 2 a usage error (no URL, a URL that is
not http(s), an unknown flag or a bad --timeout).
`

/** `10s`, `1.5s`, `5000ms`, `5000` (milliseconds): the timeout in ms, or undefined. */
export function parseDuration (text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s)?\s*$/i.exec(text)
  if (m === null) return undefined
  const ms = Number(m[1]) * (m[2]?.toLowerCase() === 's' ? 1000 : 1)
  return ms >= 1 && ms <= 3_600_000 ? Math.round(ms) : undefined
}

/** argv (after `check`) → the URLs and flags, `'help'`, or a UsageError naming what is wrong. */
export function parseCheckArgs (argv: string[]): CheckArgs | 'help' {
  const parsed = parseFlags(argv, FLAGS)
  const { positionals } = parsed
  const values = parsed.values as { json?: boolean, insecure?: boolean, timeout?: string, help?: boolean }
  if (values.help === true) return 'help'
  // The timeout first: `check --timeout https://…` took the URL as the timeout, and that is what to say.
  let timeoutMs = DEFAULT_TIMEOUT_MS
  if (values.timeout !== undefined) {
    const ms = parseDuration(values.timeout)
    if (ms === undefined) throw new UsageError(`--timeout: expected a duration like 10s or 5000ms, got ${JSON.stringify(values.timeout)}`, { option: '--timeout', value: values.timeout })
    timeoutMs = ms
  }
  if (positionals.length === 0) throw new UsageError('missing <url>: the page or module to check', { option: '<url>' })
  for (const url of positionals) {
    let protocol: string | undefined
    try { protocol = new URL(url).protocol } catch {}
    if (protocol !== 'http:' && protocol !== 'https:') throw new UsageError(`not an http(s) URL: ${url}`, { option: '<url>', value: url })
  }
  return { urls: positionals.map(u => new URL(u).href), json: values.json === true, insecure: values.insecure === true, timeoutMs }
}
