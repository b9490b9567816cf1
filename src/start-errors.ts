/**
 * Why wasm-serve refused to start, as coded errors. (The HTTP error *responses* are in
 * http-errors.ts.) Each carries a stable `code` a program can test instead of a message, the option
 * concerned as its JSON path (`/compress/cacheDir`) or the flag as typed (`--tls-cert`), and the value
 * refused. Both commands print them the same way (`startErrorText`) and exit with `EXIT.usage`.
 * Their messages carry user input (paths, header names, flags as typed), with control characters
 * escaped (printable.ts): a header name with CR LF in a config file must not write a line of its own.
 */
import { printable } from './printable.js'

export type StartErrorCode = 'WASM_SERVE_BAD_OPTIONS' | 'WASM_SERVE_USAGE' | 'WASM_SERVE_TLS' | 'WASM_SERVE_NO_ROOT'

/** What an error is about: an option's JSON path or a flag, and the value given for it. */
export interface Concerning { option?: string, value?: unknown }

export abstract class StartError extends Error {
  abstract readonly code: StartErrorCode
  readonly option: string | undefined
  readonly value: unknown
  constructor (message: string, about: Concerning = {}) {
    super(message)
    this.name = new.target.name
    this.option = about.option
    this.value = about.value
  }
}

/** The command line itself is wrong: an unknown flag, a missing value, flags that go together. */
export class UsageError extends StartError { readonly code = 'WASM_SERVE_USAGE' }

/** The certificate or key named by the options cannot be read or is not PEM. */
export class TlsError extends StartError { readonly code = 'WASM_SERVE_TLS' }

/** No directory to serve: a command's directory does not exist or is a file. (The plugin's `root` is an option: an OptionsError at `/root`.) */
export class NoRootError extends StartError { readonly code = 'WASM_SERVE_NO_ROOT' }

/**
 * One problem found in the options: its JSON path (RFC 6901, e.g. `/routes/0/match`), what is wrong,
 * the value refused, and, in the CLI, the flag or variable that gave the value (`name`, shown instead
 * of the path: that is what the user typed) or where a value inside one came from (`from`: a
 * variable's JSON, the config file).
 */
export interface OptionProblem { path: string, message: string, value?: unknown, name?: string, from?: string }

/**
 * Options that do not validate, with every problem found at once. `option`/`value` are the first
 * problem's: the flag when a flag gave it, else the JSON path. One problem of a flag or variable is
 * one line (`--port: expected …`); otherwise a heading and a line per problem.
 */
export class OptionsError extends StartError {
  readonly code = 'WASM_SERVE_BAD_OPTIONS'
  readonly problems: OptionProblem[]
  readonly source: string
  constructor (problems: OptionProblem[], source = 'options') {
    const first = problems[0]
    const message = problems.length === 1 && first?.name !== undefined ? problemLine(first) : `invalid ${source}:\n` + problems.map(p => '  ' + problemLine(p)).join('\n')
    super(message, { option: first?.name?.startsWith('-') === true ? first.name : first?.path, value: first?.value })
    this.problems = problems
    this.source = source
  }
}

function problemLine (p: OptionProblem): string {
  const scalar = ['string', 'number', 'boolean'].includes(typeof p.value)
  // JSON.stringify quotes the value and escapes control characters (a CR in a header value, say);
  // the path carries names as written (a header name), the origin a file name.
  const got = scalar ? `, got ${printable(JSON.stringify(p.value))}` : ''
  return `${printable(p.name ?? (p.path || '/'))}: ${printable(p.message)}${got.length > 100 ? got.slice(0, 99) + '…' : got}${p.from !== undefined ? ` (${printable(p.from)})` : ''}`
}

/**
 * Exit codes of both commands, listed in their --help: 2 for every start-up error above (nothing was
 * served or written; fix the command, the environment or the config), 1 for a failure while running.
 * 130 and 143 (128 + SIGINT's and SIGTERM's numbers, as a shell reports them): stopped by a signal
 * without finishing cleanly (`compress` interrupted; the server told twice to stop).
 */
export const EXIT = { ok: 0, failed: 1, usage: 2, interrupted: 130, terminated: 143 } as const

/**
 * How both commands print a start-up error: `wasm-serve: …`, and where to read the usage for a usage
 * mistake. An OptionsError's lines are escaped as they are made; other messages are one line.
 */
export function startErrorText (err: StartError, command = 'wasm-serve'): string {
  const message = err instanceof OptionsError ? err.message : printable(err.message)
  // A bad flag value is a usage mistake too, whoever checked it (the flag layer or the schema).
  const usage = err instanceof UsageError || (err instanceof OptionsError && err.problems.some(p => p.name?.startsWith('-') === true))
  return `${command}: ${message}${usage ? ` (see ${command} --help)` : ''}\n`
}

/**
 * What a subcommand does with an error it did not handle: one line on stderr, then its exit code, 2
 * for a start-up or usage error (nothing was done), 1 for anything else.
 */
export function failureExit (err: unknown, command: string, stderr: NodeJS.WritableStream): number {
  if (err instanceof StartError) { stderr.write(startErrorText(err, command)); return EXIT.usage }
  stderr.write(`${command}: ${printable((err as Error).message ?? String(err))}\n`)
  return EXIT.failed
}
