/** Flags of `wasm-serve compress`, parsed by the commands' one argument layer (src/args.ts). */
import { parseFlags, type Flag } from '../args.js'
import { ENCODINGS, type EncodingToken } from '../encodings.js'
import { nearest } from '../nearest.js'
import { parseSize, SIZE_EXPECTED } from '../size.js'
import { UsageError } from '../start-errors.js'

export interface CompressOptions {
  dir: string
  encodings: EncodingToken[]
  /** Whether --encodings was typed: an encoding asked for by name that this Node cannot make fails the run (exit 1). */
  encodingsGiven: boolean
  minSize: number
  dryRun: boolean
  force: boolean
  /** Directories of earlier releases whose modules are dictionaries for deltas (RFC 9842). */
  dictionaryFrom: string[]
}

type ParsedArgs =
  | { kind: 'help' }
  /** A usage mistake, with the flag concerned and the value refused when there is one. */
  | { kind: 'error', message: string, flag?: string, value?: string }
  | { kind: 'run', options: CompressOptions }

export const HELP = `Usage: wasm-serve compress <dir> [options]

Writes .br (quality 11), .zst (level 19, window <= 8 MB) and .gz (level 9) siblings next to every
compressible file in <dir>, in parallel on all cores. Up-to-date siblings are kept; a sibling that
would not be smaller than its file is not written.

Options:
  --encodings LIST        comma-separated, from br,zstd,gzip (default: br,zstd,gzip, less those this
                          Node cannot make; one named here that it cannot make exits 1)
  --min-size SIZE         skip smaller files: 512, 1KB, 1.5MiB (KB = KiB = 1024; default: 1KiB)
  --dictionary-from DIR   an earlier release (repeatable): write deltas of the modules against it
  --dry-run               list what would be written, write nothing
  --force                 rewrite siblings and deltas even when up to date
  -h, --help              show this help

Deltas (RFC 9842, Compression Dictionary Transport; Node 24): a browser that holds a module of an
earlier release downloads only what changed. For each .wasm/.js module of <dir>, a file of a
--dictionary-from DIR is a dictionary when wasm-serve would announce it for the module's URL
(Use-As-Dictionary: its name with the content hash as *, e.g. /assets/app.*.wasm, else its own
path). Against each, next to the module:
  <module>.<id>.dcz   zstd level 19 with the dictionary
  <module>.<id>.dcb   brotli quality 11 with the dictionary
where <id> is the first 16 hex digits of the dictionary's SHA-256, e.g.
assets/app.5e6f7a8b.wasm.1a2b3c4d5e6f7a8b.dcz. A delta is written only when smaller than the
module's best sibling (or the module) and within RFC 9842's window limits; up-to-date ones are kept.
wasm-serve answers a request naming that dictionary (Available-Dictionary) with the file, whether or
not it holds the dictionary itself, and never serves the file at its own URL.

Exit codes: 0 done; 2 a usage error, nothing written; 1 a file or directory could not be read or
written; 130 interrupted (siblings already written are complete). --dictionary-from on a Node that
cannot make deltas: 1, after one line saying so (the siblings are still written).
`

const KNOWN = ENCODINGS.map(e => e.token) as readonly string[]

const FLAGS: Flag[] = [
  { name: 'encodings', arg: 'LIST', doc: 'comma-separated, from br,zstd,gzip' },
  { name: 'min-size', arg: 'SIZE', doc: 'skip smaller files' },
  { name: 'dictionary-from', arg: 'DIR', multiple: true, doc: 'an earlier release (repeatable)' },
  { name: 'dry-run', doc: 'list what would be written, write nothing' },
  { name: 'force', doc: 'rewrite siblings and deltas even when up to date' },
  { name: 'help', short: 'h', doc: 'show this help' },
]

type UsageMistake = Extract<ParsedArgs, { kind: 'error' }>

function parseEncodings (list: string): EncodingToken[] | UsageMistake {
  const tokens = list.split(',').map(s => s.trim().toLowerCase()).filter(Boolean)
  const bad = tokens.find(tok => !KNOWN.includes(tok))
  const mistake = { kind: 'error', flag: '--encodings', value: list } as const
  const near = bad === undefined ? undefined : nearest(bad, KNOWN)
  if (bad !== undefined) return { ...mistake, message: `unknown encoding "${bad}" in --encodings (expected ${KNOWN.join(',')}${near === undefined ? '' : `; did you mean ${near}?`})` }
  if (tokens.length === 0) return { ...mistake, message: '--encodings needs at least one of br,zstd,gzip' }
  // Keep the table's order (server preference) and drop duplicates.
  return ENCODINGS.map(e => e.token).filter(tok => tokens.includes(tok))
}

function parseMinSize (text: string): number | UsageMistake {
  return parseSize(text) ?? { kind: 'error', flag: '--min-size', value: text, message: `--min-size: expected ${SIZE_EXPECTED}, got ${JSON.stringify(text)}` }
}

/** Turns argv (after `compress`) into options, a help request, or a one-line usage error. */
export function parseCompressArgs (argv: string[]): ParsedArgs {
  let parsed
  try { parsed = parseFlags(argv, FLAGS) } catch (err) {
    if (!(err instanceof UsageError)) throw err
    return { kind: 'error', message: err.message, flag: err.option, ...(typeof err.value === 'string' ? { value: err.value } : {}) }
  }
  const { positionals } = parsed
  const values = parsed.values as { encodings?: string, 'min-size'?: string, 'dictionary-from'?: string[], 'dry-run'?: boolean, force?: boolean, help?: boolean }
  if (values.help === true) return { kind: 'help' }
  if (positionals.length !== 1) {
    return { kind: 'error', message: positionals.length === 0 ? 'missing <dir>' : `expected one <dir>, got ${positionals.map(p => JSON.stringify(p)).join(', ')}` }
  }
  const encodings = parseEncodings(values.encodings ?? KNOWN.join(','))
  if (!Array.isArray(encodings)) return encodings
  const minSize = parseMinSize(values['min-size'] ?? '1KiB')
  if (typeof minSize !== 'number') return minSize
  return {
    kind: 'run',
    options: { dir: positionals[0]!, encodings, encodingsGiven: values.encodings !== undefined, minSize, dryRun: values['dry-run'] === true, force: values.force === true, dictionaryFrom: values['dictionary-from'] ?? [] },
  }
}
