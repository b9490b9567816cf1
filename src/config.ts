/**
 * The CLI's half of configuration: flags, environment and the config file turned into the
 * one options object the plugin takes. Precedence: defaults < file < `WASM_SERVE_*` / PORT / HOST <
 * flags. Every flag is declared once in FLAGS, next to the option it sets; `--help` is printed from it.
 */
import { readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { OptionsSchema, resolveOptions, type ResolvedOptions } from './options.js'
import { EXIT, flagNamedIn, OptionsError, UsageError, type OptionProblem } from './start-errors.js'

type Raw = Record<string, unknown>

export interface Flag {
  name: string
  short?: string
  /** The option it sets; absent for CLI-only flags. */
  key?: string
  arg?: string
  /** Value used when the flag is given without `=value`. */
  bare?: string
  multiple?: boolean
  doc: string
  toOption?: (value: string) => unknown
}

/** '' and '8080abc' stay strings, so the schema reports them instead of Number() turning them into 0 or NaN. */
const toNumber = (v: string): unknown => /^\d+$/.test(v.trim()) ? Number(v) : v
const origins = (v: string) => v === '*' ? { origin: '*' } : { origin: v.split(',').map(s => s.trim()).filter(Boolean) }

export const FLAGS: Flag[] = [
  { name: 'port', short: 'p', key: 'port', arg: 'N', doc: 'port to listen on (env PORT; default 8080, 0 = any free port)', toOption: toNumber },
  { name: 'host', key: 'host', arg: 'HOST', doc: 'address to bind (env HOST; default 127.0.0.1)' },
  { name: 'config', short: 'c', arg: 'FILE', doc: 'JSON config file (see config.example.json)' },
  { name: 'isolate', key: 'crossOriginIsolation', arg: 'MODE', bare: 'require-corp', doc: 'cross-origin isolation: COOP + COEP (require-corp, or --isolate=credentialless)' },
  { name: 'cors', key: 'cors', arg: 'ORIGIN', bare: '*', doc: 'CORS for every origin, or --cors=https://a.example,https://b.example', toOption: origins },
  { name: 'spa', key: 'spa', arg: 'PAGE', bare: 'index.html', doc: 'single-page app: unknown extension-less paths get index.html (or --spa=PAGE)' },
  { name: 'early-hints', key: 'earlyHints', doc: 'send preload links first as 103 Early Hints' },
  { name: 'preload', key: 'preload', arg: 'URL', multiple: true, doc: 'add Link: rel=preload for URL to HTML responses (repeatable)' },
  { name: 'https', doc: 'serve HTTPS + HTTP/2 with a self-signed certificate (development only)' },
  { name: 'tls-cert', arg: 'FILE', doc: 'PEM certificate: serve HTTPS + HTTP/2 (with --tls-key)' },
  { name: 'tls-key', arg: 'FILE', doc: 'PEM private key for --tls-cert' },
  { name: 'immutable', key: 'immutable', arg: 'GLOB', multiple: true, doc: 'serve matching files immutable for a year, whatever their names (repeatable)' },
  { name: 'no-cache', key: 'noCache', arg: 'GLOB', multiple: true, doc: 'serve matching files no-cache even when their names look hashed (repeatable)' },
  { name: 'dictionaries', key: 'dictionaries', arg: 'DIR', multiple: true, doc: 'an earlier release (read, not served): browsers holding its modules get deltas (repeatable)' },
  { name: 'memory-budget', key: 'memoryBudget', arg: 'SIZE', doc: 'bytes of files held in memory, e.g. 64MB or 1.5GiB (KB = KiB = 1024; default 256MB)' },
  { name: 'quiet', short: 'q', doc: 'no request log lines (log level warn)' },
  { name: 'log-level', key: 'logLevel', arg: 'LEVEL', doc: 'fatal, error, warn, info (default), debug, trace or silent' },
  { name: 'log-format', key: 'logFormat', arg: 'FORMAT', doc: 'pretty (one human line per request; the default on a terminal) or json (pino; the default otherwise)' },
  { name: 'no-listing', key: 'listing', doc: 'answer a directory without index.html with 404 instead of a listing of its files', toOption: () => false },
  { name: 'open', key: 'open', doc: 'open the local URL in the default browser once listening' },
  { name: 'help', short: 'h', doc: 'show this help' },
  { name: 'version', short: 'v', doc: 'show the version' },
]

export interface CliRequest {
  options: ResolvedOptions & { root: string | null }
  help: boolean
  version: boolean
  /** Where the root came from, for messages: the argument as typed, or the config key. */
  rootLabel: string | null
}

/** Parses argv (without node and script) and env into validated options. Throws UsageError or OptionsError. */
export function parseCli (argv: string[], env: NodeJS.ProcessEnv, cwd: string, extra: Flag[] = []): CliRequest & { extra: Record<string, string | boolean | undefined> } {
  const parsed = parseFlags(argv, extra)
  const values = parsed.values as Record<string, string | boolean | string[] | undefined>
  if (values.help === true || values.version === true) {
    return { options: resolveOptions({}), help: values.help === true, version: values.version === true, rootLabel: null, extra: {} }
  }
  if (parsed.positionals.length > 1) throw new UsageError(`expected at most one directory, got: ${parsed.positionals.join(' ')}`, { value: parsed.positionals })
  // Every problem at once: the file's, and those of the environment and flags on top.
  const problems: OptionProblem[] = []
  let file: Raw = {}
  if (typeof values.config === 'string') {
    const path = resolve(cwd, values.config)
    try { file = readConfigFile(path) } catch (err) {
      if (!(err instanceof OptionsError)) throw err
      problems.push(...err.problems.map(p => ({ ...p, from: `config file ${path}` })))
      file = {}
    }
  }
  const flags = fromFlags(values)
  const layered: Raw = { ...file, ...fromEnv(env), ...flags, ...tlsFlags(values, cwd) }
  if (values.quiet === true && values['log-level'] === undefined) layered.logLevel = 'warn'
  if (Array.isArray(values.dictionaries)) layered.dictionaries = values.dictionaries.map(d => resolve(cwd, d))
  const dir = parsed.positionals[0]
  if (dir !== undefined) layered.root = resolve(cwd, dir)
  else if (typeof env.WASM_SERVE_ROOT === 'string') layered.root = resolve(cwd, env.WASM_SERVE_ROOT)
  let options: CliRequest['options'] | undefined
  try { options = resolveOptions(layered, 'options') as CliRequest['options'] } catch (err) {
    if (!(err instanceof OptionsError)) throw err
    problems.push(...err.problems.map(p => ({ ...p, from: originOf(p.path, flags, env) })))
  }
  if (problems.length > 0 || options === undefined) throw new OptionsError(problems, 'configuration')
  const extraValues = Object.fromEntries(extra.map(f => [f.name, values[f.name] as string | boolean | undefined]))
  return { options, help: false, version: false, rootLabel: dir ?? (typeof layered.root === 'string' ? layered.root : null), extra: extraValues }
}

/** Flags of a command built on the server's options (`export`): those plus its own. */
function parseFlags (argv: string[], extra: Flag[] = []) {
  const all = [...FLAGS, ...extra]
  // util.parseArgs has no optional values: `--isolate` alone becomes `--isolate=require-corp`.
  const args = argv.map(a => {
    const flag = all.find(f => a === `--${f.name}` && f.bare !== undefined)
    return flag === undefined ? a : `--${flag.name}=${flag.bare!}`
  })
  const options = Object.fromEntries(all.map(f => [f.name, { type: f.arg === undefined ? 'boolean' : 'string', ...(f.short !== undefined ? { short: f.short } : {}), ...(f.multiple === true ? { multiple: true } : {}) }])) as NonNullable<Parameters<typeof parseArgs>[0]>['options']
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true })
  } catch (err) {
    const message = (err as Error).message.replace(/\. To specify a positional argument.*$/s, '')
    throw new UsageError(message, { option: flagNamedIn(message) })
  }
}

/** The flag or variable that set a top-level option, named next to a problem with its value. */
function originOf (path: string, flags: Raw, env: NodeJS.ProcessEnv): string | undefined {
  const key = path.split('/')[1] ?? ''
  const flag = FLAGS.find(f => f.key === key)
  if (flag !== undefined && key in flags) return `flag --${flag.name}`
  // PORT and HOST count too; WASM_SERVE_PORT and WASM_SERVE_HOST win over them.
  const names = key === 'port' || key === 'host' ? [envName(key), key.toUpperCase()] : [envName(key)]
  const name = names.find(n => env[n] !== undefined && env[n] !== '')
  return name === undefined ? undefined : `environment ${name}`
}

function fromFlags (values: Record<string, unknown>): Raw {
  const out: Raw = {}
  for (const flag of FLAGS) {
    const value = values[flag.name]
    if (flag.key === undefined || value === undefined) continue
    out[flag.key] = flag.toOption !== undefined ? flag.toOption(String(value)) : value
  }
  return out
}

function tlsFlags (values: Record<string, unknown>, cwd: string): Raw {
  const cert = values['tls-cert']
  const key = values['tls-key']
  if (typeof cert === 'string' && typeof key === 'string') return { https: { cert: resolve(cwd, cert), key: resolve(cwd, key) } }
  if (typeof cert === 'string') throw new UsageError('--tls-cert and --tls-key go together', { option: '--tls-cert', value: cert })
  if (typeof key === 'string') throw new UsageError('--tls-cert and --tls-key go together', { option: '--tls-key', value: key })
  return values.https === true ? { https: true } : {}
}

/** `WASM_SERVE_MEMORY_BUDGET=64MB`, `WASM_SERVE_CORS=*`, `WASM_SERVE_ROUTES=[…]` (JSON), plus PORT and HOST. */
export function fromEnv (env: NodeJS.ProcessEnv): Raw {
  const out: Raw = {}
  if (env.PORT !== undefined && env.PORT !== '') out.port = toNumber(env.PORT)
  if (env.HOST !== undefined && env.HOST !== '') out.host = env.HOST
  for (const key of Object.keys(OptionsSchema.properties)) {
    const value = env[envName(key)]
    if (value === undefined || value === '' || key === 'root') continue
    // A size goes to the size grammar as typed, as the flag's value does: "1e3" is not JSON's 1000 there.
    const parsed = key === 'memoryBudget' ? value : key === 'cors' && value !== 'false' ? (value.startsWith('{') ? parseEnvValue(value) : origins(value)) : parseEnvValue(value)
    const isList = (OptionsSchema.properties as Record<string, { type?: string }>)[key]?.type === 'array'
    out[key] = isList && typeof parsed === 'string' ? [parsed] : parsed
  }
  return out
}

export const envName = (key: string) => 'WASM_SERVE_' + key.replace(/[A-Z]/g, c => '_' + c).toUpperCase()

function parseEnvValue (value: string): unknown {
  try { return JSON.parse(value) } catch { return value.includes(',') ? value.split(',').map(s => s.trim()) : value }
}

/** Reads and validates the config file on its own, so its problems are reported with its name. */
function readConfigFile (file: string): Raw {
  let text: string
  try { text = readFileSync(file, 'utf8') } catch { throw new UsageError(`cannot read config file ${file}`, { option: '--config', value: file }) }
  let data: unknown
  try { data = JSON.parse(text) } catch (err) { throw new UsageError(`config file ${file} is not valid JSON: ${(err as Error).message}`, { option: '--config', value: file }) }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new OptionsError([{ path: '', message: 'expected an object' }], `config file ${file}`)
  resolveOptions(data, `config file ${file}`)
  const raw = data as Raw
  const base = dirname(file)
  if (typeof raw.root === 'string') raw.root = resolve(base, raw.root)
  const compress = raw.compress as Raw | undefined
  if (typeof compress?.cacheDir === 'string') raw.compress = { ...compress, cacheDir: resolve(base, compress.cacheDir) }
  if (Array.isArray(raw.dictionaries)) raw.dictionaries = raw.dictionaries.map(d => typeof d === 'string' ? resolve(base, d) : d)
  const https = raw.https as { cert: string, key: string } | boolean | undefined
  if (typeof https === 'object') raw.https = { cert: resolve(base, https.cert), key: resolve(base, https.key) }
  return raw
}

export function helpText (): string {
  const lines = FLAGS.map(f => {
    const left = `${f.short !== undefined ? `-${f.short}, ` : '    '}--${f.name}${f.arg !== undefined ? (f.bare !== undefined ? `[=${f.arg}]` : ` ${f.arg}`) : ''}`
    return `  ${left.padEnd(28)} ${f.doc}`
  })
  return [
    'Usage: wasm-serve [dir] [options]',
    '       wasm-serve compress <dir> [--encodings br,zstd,gzip] [--min-size SIZE] [--dry-run] [--force]',
    '       wasm-serve export --target nginx|caddy|netlify|cloudflare-pages|vercel|s3 <dir> [--out PATH] [options]',
    '       wasm-serve check <url> [more urls] [--json] [--timeout 10s] [--insecure]',
    '       wasm-serve explain <path> [dir] [--json] [options]',
    '',
    'Serves dir (default: the bundled demo) with WebAssembly-tuned delivery: exact types, precompressed',
    'siblings, Content-Length and X-Decoded-Content-Length, content ETags, ranges, cache policy.',
    '',
    'Options:',
    ...lines,
    '',
    `Every config key can also be set as WASM_SERVE_<KEY> (e.g. ${envName('memoryBudget')}=64MB, ${envName('crossOriginIsolation')}=require-corp).`,
    'Precedence: defaults < config file < environment < flags.',
    '',
    `Exit codes: ${EXIT.ok} stopped cleanly (SIGTERM, SIGINT); ${EXIT.usage} a usage, option, config file, directory or`,
    `certificate error, nothing served; ${EXIT.failed} any other failure (no port could be bound, say); ${EXIT.interrupted} or`,
    `${EXIT.terminated} a second SIGINT or SIGTERM stopped it at once, cutting responses under way.`,
  ].join('\n') + '\n'
}
