/**
 * `wasm-serve explain <path> [dir] [serving options]`: every header wasm-serve would send for one
 * path of a root, and the rule of docs/delivery.md that gave it (D1 type, D3 siblings, D7 Vary, D10
 * cache, D11 preload, D12 isolation, D13 CORS, route headers), read from the same catalog and policy
 * the server builds, so it states what the server does instead of restating its rules. A path that
 * is not served says why (a hidden dotfile, not found, answered by the SPA page or a redirect).
 * Exit codes: 0 served, 1 not served (or another failure), 2 a usage, option or directory error.
 */
import type { Io } from './compress/report.js'
import { Catalog } from './catalog.js'
import { parseCli, type Flag } from './config.js'
import { originalName } from './content-type.js'
import { Deltas } from './deltas.js'
import { encodable } from './onthefly.js'
import type { ResolvedOptions } from './options.js'
import { explainPolicy } from './policy.js'
import { checkDirectory } from './args.js'
import { printable } from './printable.js'
import { resolvePath } from './resolve.js'
import { EXIT, failureExit, UsageError } from './start-errors.js'
import type { Asset, Logger } from './types.js'

const NAME = 'wasm-serve explain'

const EXPLAIN_FLAGS: Flag[] = [
  { name: 'json', doc: 'print JSON instead of text' },
]

export const HELP = `Usage: wasm-serve explain <path> [dir] [--json] [serving options]

Prints each header wasm-serve would send for <path> (a URL path like /assets/app.wasm, or a path
relative to dir) and the rule that gave it: D1 type, D3 siblings, D5 lengths, D6 validators, D7 Vary,
D10 cache policy (route, --no-cache, --immutable, hashed name, or the no-cache default), D11 preload,
D12 isolation, D13 CORS, D19 security headers, route headers. dir defaults to the current directory. Takes the same
--config, flags and WASM_SERVE_* environment as serving.

Exit codes: 0 the path is served; 1 it is not (the reason is printed); 2 a usage, option or directory error.
`

/** One header of the answer and the rule that set it. */
export interface ExplainedHeader { name: string, value: string, rule: string }

export interface Explanation {
  /** The path as asked. */
  asked: string
  /** 200 served, 301 redirect, 404 not served, 400/414 refused (D14). */
  status: number
  /** How the path was answered: the file, a directory's index.html, the SPA page, or why not. */
  answer: string
  /** The root-relative file that answers, when one does. */
  file?: string
  headers: ExplainedHeader[]
  /** Representations besides identity (D3 siblings, D4 on the fly), and Early Hints (D11). */
  notes: string[]
}

const QUIET: Logger = { info: () => {}, warn: () => {}, debug: () => {} }

export async function runExplain (argv: string[], io: Io = { stdout: process.stdout, stderr: process.stderr }, env = process.env, cwd = process.cwd()): Promise<number> {
  try {
    if (argv.includes('--help') || argv.includes('-h')) { io.stdout.write(HELP); return EXIT.ok }
    const asked = argv[0]
    if (asked === undefined || asked.startsWith('-')) throw new UsageError('missing <path>: the URL path or file to explain comes first, e.g. wasm-serve explain /assets/app.wasm dist', { option: '<path>' })
    const cli = parseCli(argv.slice(1), env, cwd, EXPLAIN_FLAGS)
    const root = cli.options.root ?? cwd
    checkDirectory(root, cli.rootLabel ?? root, folder => `explain with its folder: \`wasm-serve explain ${asked} ${folder}\``)
    const explanation = await explain({ ...cli.options, root }, asked)
    io.stdout.write(cli.extra.json === true ? JSON.stringify(explanation, null, 2) + '\n' : formatExplanation(explanation))
    return explanation.status === 200 ? EXIT.ok : EXIT.failed
  } catch (err) {
    return failureExit(err, NAME, io.stderr)
  }
}

/** Indexes the root as the server would (without watching) and explains one path. */
export async function explain (opts: ResolvedOptions & { root: string }, asked: string): Promise<Explanation> {
  const explained = explainPolicy(opts, { on: Deltas.supported, prefix: '' })
  const rulesByPath = new Map<string, Record<string, string>>()
  const { tokens, minSize } = { tokens: opts.precompressed, minSize: opts.compress.minSize }
  const mayEncode = opts.compress.onTheFly ? encodable({ tokens, minSize }) : () => false
  const catalog = await Catalog.open({
    root: opts.root,
    memoryBudget: 0,
    precompressed: opts.precompressed,
    dotfiles: opts.dotfiles,
    policy: (path, type, size, body) => {
      const { policy, rules } = explained(path, type, size, body)
      rulesByPath.set(path, rules)
      return policy
    },
    log: QUIET,
    watch: false,
    encodable: mayEncode,
    revalidateMs: 0,
  })
  try {
    await catalog.load()
    const answer = answerFor(catalog, opts, asked)
    if ('status' in answer) return { asked, ...answer, headers: [], notes: [] }
    const { asset, how } = answer
    return {
      asked,
      status: 200,
      answer: how,
      file: asset.path,
      headers: headersOf(asset, rulesByPath.get(asset.path) ?? {}, mayEncode),
      notes: notesOf(asset, opts, mayEncode),
    }
  } finally {
    catalog.close()
  }
}

type Answer = { asset: Asset, how: string } | { status: number, answer: string }

/** What the server answers the path with (plugin.ts handle → lookup → SPA fallback), without a request. */
function answerFor (catalog: Catalog, opts: ResolvedOptions, asked: string): Answer {
  const raw = asked.split(/[?#]/)[0]!
  const resolved = resolvePath(raw.startsWith('/') ? raw : `/${raw}`, opts.dotfiles)
  if (!resolved.ok) {
    const why = resolved.status === 404
      ? 'hidden: a dotfile or a path through a dot-directory (dotfiles "deny", D14)'
      : resolved.status === 414 ? 'refused: the path is too long (D14)' : 'refused: a dot segment, NUL, backslash or bad percent-encoding (D14)'
    return { status: resolved.status, answer: why }
  }
  const direct = catalog.get(resolved.lookup)
  if (direct !== undefined) return { asset: direct, how: resolved.directory ? `the directory's ${resolved.lookup} (D15)` : 'the file' }
  if (!resolved.directory && catalog.hasDir(resolved.path) && catalog.get(`${resolved.path}/index.html`) !== undefined) {
    return { status: 301, answer: `redirect to /${resolved.path}/ (a directory with an index.html, D15)` }
  }
  const last = resolved.path.slice(resolved.path.lastIndexOf('/') + 1)
  const page = opts.spa === false ? undefined : catalog.get(opts.spa.replace(/^\/+/, ''))
  if (page !== undefined && !last.includes('.')) return { asset: page, how: `the SPA page ${page.path}, to requests that accept HTML (D15); 404 to others` }
  const spa = opts.spa === false ? '' : last.includes('.') ? ' (the SPA page answers only extension-less paths, D15)' : ''
  return { status: 404, answer: `not found: no file ${resolved.lookup} in the root${spa}` }
}

/** Headers the representation layer sets (headers.ts), by the rule that explains each. */
const REPRESENTATION_RULES: Record<string, string> = {
  'content-length': 'D5 bytes of this representation',
  etag: 'D6 content hash of the bytes',
  'last-modified': 'D6 the file\'s modification time',
  'accept-ranges': 'D8 ranges served from the identity bytes',
  'content-encoding': 'D3 a sibling requested by its own name',
  'x-decoded-content-length': 'D5 the decoded size, for progress bars',
}

/** The 200 a browser asking for no encoding gets (a direct sibling's: its encoded one), each header with its rule. */
function headersOf (asset: Asset, rules: Record<string, string>, mayEncode: (path: string, size: number) => boolean): ExplainedHeader[] {
  const direct = asset.identity.headers['content-type'] !== asset.type
  const headers = direct ? asset.reps[0]!.headers : asset.identity.headers
  const extension = /\.[^./]*$/.exec(originalName(asset.path))?.[0] ?? '(none)'
  const explained: ExplainedHeader[] = []
  for (const name of Object.keys(headers).sort()) {
    const value = headers[name]!
    let rule = rules[name] ?? REPRESENTATION_RULES[name] ?? 'set by the server'
    if (name === 'content-type') rule = `D1 type from the extension ${extension}`
    if (name === 'vary') rule = varyRule(asset, rules.vary, mayEncode)
    explained.push({ name, value, rule })
  }
  return explained
}

function varyRule (asset: Asset, policyRule: string | undefined, mayEncode: (path: string, size: number) => boolean): string {
  const encoded = asset.reps.length > 1
  const why = encoded ? 'D7 Accept-Encoding: precompressed siblings (D3)' : mayEncode(asset.path, asset.identity.size) ? 'D7 Accept-Encoding: encoded on the fly when asked (D4)' : ''
  return [why, policyRule].filter(Boolean).join('; ') || 'D7'
}

function notesOf (asset: Asset, opts: ResolvedOptions, mayEncode: (path: string, size: number) => boolean): string[] {
  const notes: string[] = []
  const siblings = asset.reps.filter(r => r !== asset.identity)
  if (siblings.length > 0) notes.push(`D3 siblings: ${siblings.map(r => `${r.coding} (${r.size} bytes)`).join(', ')}, best first; chosen by Accept-Encoding (D2)`)
  else if (mayEncode(asset.path, asset.identity.size)) notes.push(`D4 no siblings: encoded on the fly (${opts.precompressed.join(', ')}) and cached after the first request`)
  else notes.push('D3 no siblings: sent as stored')
  for (const [name, value] of Object.entries(asset.policy.https ?? {})) notes.push(`D19 over HTTPS only (not to localhost or an IP address): ${name}: ${value}`)
  if (asset.isHtml && opts.earlyHints && asset.policy.links.length > 0) notes.push('D11 the Link header is sent first as 103 Early Hints (GET, HTTP/1.1 and later)')
  return notes
}

/** Aligned columns, as `wasm-serve check` prints its findings: header, value, rule. */
export function formatExplanation (e: Explanation): string {
  const head = `${e.status}  ${printable(e.asked)}  ${printable(e.answer)}${e.file !== undefined && e.answer === 'the file' ? '' : e.file !== undefined ? ` (${printable(e.file)})` : ''}`
  const nameWidth = Math.max(0, ...e.headers.map(h => h.name.length))
  const valueWidth = Math.min(48, Math.max(0, ...e.headers.map(h => printable(h.value).length)))
  const lines = e.headers.map(h => `  ${h.name.padEnd(nameWidth)}  ${printable(h.value).padEnd(valueWidth)}  ${h.rule}`)
  return [head, ...lines, ...e.notes.map(n => `  ${n}`)].join('\n') + '\n'
}
