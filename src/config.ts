/**
 * The CLI's half of configuration: flags, environment and the config file turned into the
 * one options object the plugin takes. Precedence: defaults < file < `WASM_SERVE_*` / PORT / HOST <
 * flags. Every flag is declared once in FLAGS, next to the option it sets; `--help` is printed from it.
 */
import { readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { parseFlags, tooMany, type Flag } from './args.js'
import { oneOf } from './nearest.js'
import { OptionsSchema, resolveOptions, type ResolvedOptions } from './options.js'
import { EXIT, OptionsError, UsageError, type OptionProblem } from './start-errors.js'

export type { Flag } from './args.js'

type Raw = Record<string, unknown>

/** '' and '8080abc' stay strings, so the schema reports them instead of Number() turning them into 0 or NaN. */
const toNumber = (v: string): unknown => /^\d+$/.test(v.trim()) ? Number(v) : v
/** `https://a.example/` as people copy it from the address bar is the origin `https://a.example`. */
const origins = (v: string) => v === '*' ? { origin: '*' } : { origin: v.split(',').map(s => s.trim().replace(/\/$/, '')).filter(Boolean) }
/** The string values a schema union of constants allows (`false` aside): what a flag setting it accepts. */
const constants = (key: string): string[] => ((OptionsSchema.properties as Record<string, { anyOf?: Array<{ const?: unknown }> }>)[key]?.anyOf ?? [])
  .flatMap(s => typeof s.const === 'string' ? [s.const] : [])
const ISOLATION = constants('crossOriginIsolation')
/** --secure's values: the preset, or its CSP in report-only mode. */
const SECURE_MODES = ['on', 'report-only']

export const FLAGS: Flag[] = [
  { name: 'port', short: 'p', key: 'port', arg: 'N', doc: 'port to listen on (env PORT; default 8080, or the next free one; 0 = any free port)', toOption: toNumber },
  { name: 'host', key: 'host', arg: 'HOST', doc: 'address to bind (env HOST; default 127.0.0.1)' },
  { name: 'config', short: 'c', arg: 'FILE', doc: 'JSON config file (see config.example.json)' },
  { name: 'isolate', key: 'crossOriginIsolation', arg: 'MODE', bare: 'require-corp', choices: ISOLATION, takes: w => ISOLATION.includes(w), takesDoc: oneOf(ISOLATION), doc: 'cross-origin isolation for wasm threads; MODE require-corp (alone) or credentialless (COOP + COEP), document or document-credentialless (Document-Isolation-Policy, Chromium 137+), report (report-only: log what would break)' },
  // An origin starts with its scheme; a directory named like one would be an odd choice.
  { name: 'cors', key: 'cors', arg: 'ORIGIN', bare: '*', takes: w => w === '*' || /^https?:\/\//i.test(w), takesDoc: '* or an http(s):// origin', doc: 'CORS for every origin (alone), or for ORIGIN: https://a.example,https://b.example', toOption: origins },
  { name: 'secure', key: 'security', arg: 'MODE', bare: 'on', choices: SECURE_MODES, takes: w => SECURE_MODES.includes(w), takesDoc: oneOf(SECURE_MODES), doc: 'security headers: nosniff, Referrer-Policy, CORP, HSTS over HTTPS, and a CSP that lets wasm compile on HTML; MODE on (alone) or report-only (CSP reported, not enforced)', toOption: v => v === 'report-only' ? { reportOnly: true } : true },
  { name: 'spa', key: 'spa', arg: 'PAGE', bare: 'index.html', takes: w => /\.html?$/i.test(w), takesDoc: 'a page ending in .html or .htm', doc: 'single-page app: unknown extension-less paths get PAGE (alone: index.html)' },
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
  { name: 'log-level', key: 'logLevel', arg: 'LEVEL', choices: constants('logLevel'), doc: 'fatal, error, warn, info (default), debug, trace or silent' },
  { name: 'log-format', key: 'logFormat', arg: 'FORMAT', choices: constants('logFormat'), doc: 'pretty (one human line per request; the default on a terminal) or json (pino; the default otherwise)' },
  { name: 'no-listing', key: 'listing', doc: 'answer a directory without index.html with 404 instead of a listing of its files', toOption: () => false },
  { name: 'workers', key: 'workers', arg: 'N', doc: 'processes serving the port: N, or auto for one per core (default 1; see README "Workers")', toOption: toNumber },
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
  /**
   * What asked for the port (`--port`, `PORT`, the config file), if anything did: a port asked for
   * that is taken is an error, where the default moves on to the next free port.
   */
  portFrom: string | undefined
}

/** Parses argv (without node and script) and env into validated options. Throws UsageError or OptionsError. */
export function parseCli (argv: string[], env: NodeJS.ProcessEnv, cwd: string, extra: Flag[] = []): CliRequest & { extra: Record<string, string | boolean | undefined> } {
  // A command built on the server's options (`export`) has those flags plus its own.
  const parsed = parseFlags(argv, [...FLAGS, ...extra])
  const values = parsed.values
  if (values.help === true || values.version === true) {
    return { options: resolveOptions({}), help: values.help === true, version: values.version === true, rootLabel: null, portFrom: undefined, extra: {} }
  }
  if (parsed.positionals.length > 1) throw tooMany('directory', parsed)
  // Every problem at once: the file's, and those of the environment and flags on top.
  const problems: OptionProblem[] = []
  let file: Raw = {}
  const configPath = typeof values.config === 'string' ? resolve(cwd, values.config) : undefined
  if (configPath !== undefined) {
    const path = configPath
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
    problems.push(...err.problems.map(p => ({ ...p, ...originOf(p.path, flags, env) })))
  }
  if (problems.length > 0 || options === undefined) throw new OptionsError(problems, 'configuration')
  const extraValues = Object.fromEntries(extra.map(f => [f.name, values[f.name] as string | boolean | undefined]))
  const portFrom = 'port' in flags ? '--port' : envNameOf('port', env) ?? ('port' in file ? `the config file ${configPath!}` : undefined)
  return { options, help: false, version: false, rootLabel: dir ?? (typeof layered.root === 'string' ? layered.root : null), portFrom, extra: extraValues }
}

/**
 * The flag or variable that set a top-level option: the problem is shown under its name (`--port:
 * expected an integer 0–65535, got "abc"`), as typed, rather than the option's JSON path; a problem
 * inside a variable's JSON keeps its path and names the variable after it.
 */
function originOf (path: string, flags: Raw, env: NodeJS.ProcessEnv): Pick<OptionProblem, 'name' | 'from'> {
  const key = path.split('/')[1] ?? ''
  const flag = FLAGS.find(f => f.key === key)
  // A flag sets the option whole, or one item of a list (`--preload a.wasm` is /preload/0).
  if (flag !== undefined && key in flags) return { name: `--${flag.name}` }
  const name = envNameOf(key, env)
  if (name === undefined) return {}
  return path === `/${key}` ? { name } : { from: `environment ${name}` }
}

/** The variable that set a top-level option: PORT and HOST count too; WASM_SERVE_PORT and WASM_SERVE_HOST win over them. */
function envNameOf (key: string, env: NodeJS.ProcessEnv): string | undefined {
  const names = key === 'port' || key === 'host' ? [envName(key), key.toUpperCase()] : [envName(key)]
  return names.find(n => env[n] !== undefined && env[n] !== '')
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
    const parsed = key === 'memoryBudget' ? value : key === 'cors' && value !== 'false' && value !== 'true' ? (value.startsWith('{') ? parseEnvValue(value) : origins(value)) : parseEnvValue(value)
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

/** How a flag with an optional value tells its value from the directory (src/args.ts), for --help. */
function optionalValues (): string[] {
  const optional = FLAGS.filter(f => f.bare !== undefined)
  const names = optional.map(f => `--${f.name}`)
  return [
    `A flag takes its value as --flag VALUE or --flag=VALUE. ${names.slice(0, -1).join(', ')} and ${names.at(-1)!} also work`,
    'alone: the word after one is taken as its value only when it is',
    ...optional.map(f => `  --${f.name.padEnd(10)} ${f.takesDoc!}`),
    `and is otherwise the directory (\`wasm-serve ${names[0]!} dist\` serves dist with ${optional[0]!.bare!}).`,
  ]
}

export function helpText (): string {
  const lines = FLAGS.map(f => {
    const left = `${f.short !== undefined ? `-${f.short}, ` : '    '}--${f.name}${f.arg !== undefined ? (f.bare !== undefined ? ` [${f.arg}]` : ` ${f.arg}`) : ''}`
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
    ...optionalValues(),
    '',
    `Every config key can also be set as WASM_SERVE_<KEY> (e.g. ${envName('memoryBudget')}=64MB, ${envName('crossOriginIsolation')}=require-corp).`,
    'Precedence: defaults < config file < environment < flags.',
    '',
    `Exit codes: ${EXIT.ok} stopped cleanly (SIGTERM, SIGINT); ${EXIT.usage} a usage, option, config file, directory or`,
    `certificate error, nothing served; ${EXIT.failed} any other failure (the port asked for is taken, say); ${EXIT.interrupted} or`,
    `${EXIT.terminated} a second SIGINT or SIGTERM stopped it at once, cutting responses under way.`,
  ].join('\n') + '\n'
}
