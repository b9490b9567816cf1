/** Flags of `wasm-serve compress`, parsed with node's util.parseArgs. */
import { parseArgs } from 'node:util'
import bytes from 'bytes'
import { ENCODINGS, type EncodingToken } from '../encodings.js'

export interface CompressOptions {
  dir: string
  encodings: EncodingToken[]
  minSize: number
  dryRun: boolean
  force: boolean
}

type ParsedArgs =
  | { kind: 'help' }
  | { kind: 'error', message: string }
  | { kind: 'run', options: CompressOptions }

export const HELP = `Usage: wasm-serve compress <dir> [options]

Writes .br (quality 11), .zst (level 19, window <= 8 MB) and .gz (level 9) siblings next to every
compressible file in <dir>, in parallel on all cores. Up-to-date siblings are kept; a sibling that
would not be smaller than its file is not written.

Options:
  --encodings LIST   comma-separated, from br,zstd,gzip (default: br,zstd,gzip)
  --min-size SIZE    skip smaller files; bytes or 1KiB/1KB style (default: 1KiB)
  --dry-run          list what would be written, write nothing
  --force            rewrite siblings even when up to date
  -h, --help         show this help
`

const KNOWN = ENCODINGS.map(e => e.token) as readonly string[]

function parseEncodings (list: string): EncodingToken[] | string {
  const tokens = list.split(',').map(s => s.trim().toLowerCase()).filter(Boolean)
  const bad = tokens.find(tok => !KNOWN.includes(tok))
  if (bad !== undefined) return `unknown encoding "${bad}" in --encodings (expected ${KNOWN.join(',')})`
  if (tokens.length === 0) return '--encodings needs at least one of br,zstd,gzip'
  // Keep the table's order (server preference) and drop duplicates.
  return ENCODINGS.map(e => e.token).filter(tok => tokens.includes(tok))
}

const SIZE = /^\s*\d+(\.\d+)?\s*([kmgtp]i?b|b)?\s*$/i

function parseMinSize (text: string): number | string {
  // bytes() counts "1KB" as 1024 but reads "1KiB" as 1 (it falls back to parseInt), so the binary
  // prefix is folded to the form it knows, and anything else is refused rather than guessed.
  const n = SIZE.test(text) ? bytes.parse(text.replace(/([kmgtp])ib\s*$/i, '$1B')) : null
  if (n === null || !Number.isFinite(n) || n < 0) return `--min-size: cannot read "${text}" as a size (e.g. 1024, 1KiB, 2MB)`
  return Math.floor(n)
}

/** Turns argv (after `compress`) into options, a help request, or a one-line usage error. */
export function parseCompressArgs (argv: string[]): ParsedArgs {
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        encodings: { type: 'string', default: KNOWN.join(',') },
        'min-size': { type: 'string', default: '1KiB' },
        'dry-run': { type: 'boolean', default: false },
        force: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    })
  } catch (err) {
    return { kind: 'error', message: (err as Error).message }
  }
  const { values, positionals } = parsed
  if (values.help) return { kind: 'help' }
  if (positionals.length !== 1) {
    return { kind: 'error', message: positionals.length === 0 ? 'missing <dir>' : `expected one <dir>, got ${positionals.length}` }
  }
  const encodings = parseEncodings(values.encodings)
  if (typeof encodings === 'string') return { kind: 'error', message: encodings }
  const minSize = parseMinSize(values['min-size'])
  if (typeof minSize === 'string') return { kind: 'error', message: minSize }
  return {
    kind: 'run',
    options: { dir: positionals[0], encodings, minSize, dryRun: values['dry-run'], force: values.force },
  }
}
