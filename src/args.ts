/**
 * The one argument layer of every command (`wasm-serve`, `compress`, `check`, `export`), so flags
 * work as users type them for other tools, the same way everywhere: `--flag value` and
 * `--flag=value`, short flags, `--` ending the flags. A mistake is a UsageError naming the flag as
 * typed and the value refused, listing the allowed values, and suggesting the nearest flag ("did you
 * mean --isolate?"); every command prints it with `(see wasm-serve <cmd> --help)` and exits 2.
 *
 * A flag with an optional value (`--isolate`, `--cors`, `--spa`) cannot tell its value from the
 * directory that may follow it, so it takes the next word only when `takes` says the word is one of
 * its values (a mode, an origin, a page); otherwise the flag is bare and the word is left as a
 * positional. `--flag=value` is always the value. util.parseArgs does the splitting (it has no
 * optional values); it runs non-strict so the mistakes are found here, from its tokens, and reported
 * in these words rather than its own.
 */
import { statSync } from 'node:fs'
import { dirname } from 'node:path'
import { parseArgs } from 'node:util'
import { nearest, oneOf } from './nearest.js'
import { NoRootError, UsageError } from './start-errors.js'

export interface Flag {
  name: string
  short?: string
  /** The option it sets; absent for CLI-only flags. */
  key?: string
  /** Names the value in --help; absent for a flag that takes none. */
  arg?: string
  /** An optional value: the one used when the flag comes alone. */
  bare?: string
  /** For a flag with an optional value: whether the word after it is its value (else the flag is bare). */
  takes?: (word: string) => boolean
  /** What `takes` accepts, in words, for --help and for messages. */
  takesDoc?: string
  multiple?: boolean
  /** The only values the flag accepts, listed when another is given. */
  choices?: readonly string[]
  doc: string
  toOption?: (value: string) => unknown
}

export type FlagValues = Record<string, string | boolean | string[] | undefined>

export interface ParsedFlags {
  values: FlagValues
  positionals: string[]
  /** Words left as positionals right after a bare optional flag: the flag that did not take them. */
  leftBy: Map<string, Flag>
}

/** argv → flag values (by long name) and positionals; throws a UsageError for any mistake. */
export function parseFlags (argv: string[], flags: Flag[]): ParsedFlags {
  const { args, leftBy } = attachOptionalValues(argv, flags)
  const options = Object.fromEntries(flags.map(f => [f.name, {
    type: f.arg === undefined ? 'boolean' : 'string',
    ...(f.short !== undefined ? { short: f.short } : {}),
    ...(f.multiple === true ? { multiple: true } : {}),
  }])) as NonNullable<Parameters<typeof parseArgs>[0]>['options']
  const { values, positionals, tokens } = parseArgs({ args, options, allowPositionals: true, strict: false, tokens: true })
  for (const token of tokens) {
    if (token.kind === 'option') checkToken(token, flags)
  }
  for (const flag of flags) checkChoices(flag, values[flag.name])
  return { values: values as FlagValues, positionals, leftBy }
}

/**
 * `--isolate credentialless` → `--isolate=credentialless`; `--isolate ./dir` → `--isolate=require-corp
 * ./dir`. The value of a flag that always takes one is skipped, so `--preload --spa` stays as typed.
 */
function attachOptionalValues (argv: string[], flags: Flag[]): { args: string[], leftBy: Map<string, Flag> } {
  const args: string[] = []
  const leftBy = new Map<string, Flag>()
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i]!
    if (word === '--') { args.push(...argv.slice(i)); break }
    const single = /^-([a-z][a-z-]+)(?:=|$)/.exec(word)?.[1]
    // `-port 80` would be read as -p with the value "ort": a long name with one dash is a mistake.
    if (single !== undefined && flags.some(f => f.name === single)) throw new UsageError(`unknown flag ${word} (did you mean --${single}?)`, { option: word })
    const flag = flags.find(f => word === `--${f.name}` || (f.short !== undefined && word === `-${f.short}`))
    const next = argv[i + 1]
    if (flag?.bare !== undefined) {
      const takes = next !== undefined && flag.takes?.(next) === true
      args.push(`--${flag.name}=${takes ? next : flag.bare}`)
      if (takes) i++
      else if (next !== undefined && !next.startsWith('-')) leftBy.set(next, flag)
    } else if (flag?.arg !== undefined && next !== undefined) {
      args.push(word, next)
      i++
    } else {
      args.push(word)
    }
  }
  return { args, leftBy }
}

interface OptionToken { name: string, rawName: string, value?: string, inlineValue?: boolean }

function checkToken (token: OptionToken, flags: Flag[]): void {
  const flag = flags.find(f => f.name === token.name)
  const typed = token.rawName
  if (flag === undefined) {
    const near = typed.startsWith('--')
      ? nearest(typed.slice(2), flags.map(f => f.name))
      : nearest(typed.slice(1), flags.flatMap(f => f.short ?? []), 0)
    const nearName = near === undefined ? undefined : `${typed.startsWith('--') ? '--' : '-'}${near}`
    throw new UsageError(`unknown flag ${typed}${nearName === undefined ? '' : ` (did you mean ${nearName}?)`}`, { option: typed })
  }
  if (flag.arg === undefined) {
    if (token.value !== undefined) throw new UsageError(`${typed} takes no value, got ${JSON.stringify(token.value)}`, { option: typed, value: token.value })
    return
  }
  const missing = `${typed} needs a value (${flag.arg})`
  if (token.value === undefined) throw new UsageError(missing, { option: typed })
  // The next word was another flag: the value was forgotten (a value that starts with "-" is written --flag=-x).
  if (token.inlineValue === false && /^-[A-Za-z-]/.test(token.value) && token.value !== '-') {
    throw new UsageError(`${missing}, got the flag ${token.value}`, { option: typed, value: token.value })
  }
}

function checkChoices (flag: Flag, value: FlagValues[string]): void {
  if (flag.choices === undefined || value === undefined || typeof value === 'boolean') return
  for (const v of Array.isArray(value) ? value : [value]) {
    if (flag.choices.includes(v)) continue
    const near = nearest(v, flag.choices)
    throw new UsageError(`--${flag.name}: expected ${oneOf(flag.choices)}, got ${JSON.stringify(v)}${near === undefined ? '' : ` (did you mean ${near}?)`}`, { option: `--${flag.name}`, value: v })
  }
}

/**
 * More positionals than the command takes: named, with the optional flag that left one of them
 * (`--isolate credentialles dist`: the typo was not taken as --isolate's value).
 */
export function tooMany (what: string, parsed: ParsedFlags): UsageError {
  const words = parsed.positionals
  const left = words.map(w => [w, parsed.leftBy.get(w)] as const).find(([, flag]) => flag !== undefined)
  const hint = left === undefined ? '' : ` (--${left[1]!.name} takes the next word only when it is ${left[1]!.takesDoc ?? 'one of its values'}; to give it ${JSON.stringify(left[0])}, write --${left[1]!.name}=${left[0]})`
  return new UsageError(`expected at most one ${what}, got ${words.map(w => JSON.stringify(w)).join(', ')}${hint}`, { value: words })
}

/**
 * The directory argument of a command: a NoRootError when it does not exist, or when it is a file
 * (then `hint(folder)` says what to run on its folder instead).
 */
export function checkDirectory (path: string, label: string, hint: (folder: string) => string): void {
  let isFile = false
  try {
    const stats = statSync(path)
    if (stats.isDirectory()) return
    isFile = stats.isFile()
  } catch {}
  if (!isFile) throw new NoRootError(`directory not found: ${label}`, { option: '<dir>', value: label })
  throw new NoRootError(`${label} is a file, not a directory: ${hint(dirname(label))}`, { option: '<dir>', value: label })
}
