/**
 * Options: validation against the one schema (src/schema.ts, loaded here as the JSON it generates),
 * defaults, sizes read into bytes, and every problem reported at once with its JSON path.
 */
import { createRequire } from 'node:module'
import type { Static } from '@sinclair/typebox'
import type { ErrorObject, ValidateFunction } from 'ajv'
import type { OptionsSchema as DefinedSchema, Route } from './schema.js'
import { nearest, oneOf } from './nearest.js'
import { parseLimit, parseSize } from './size.js'
import { OptionsError, type OptionProblem } from './start-errors.js'

export { OptionsError, type OptionProblem } from './start-errors.js'

const require = createRequire(import.meta.url)

/** The schema src/schema.ts defines, as plain JSON (`npm run schema` writes it). */
export const OptionsSchema = require('./options.schema.json') as typeof DefinedSchema

/** Options as a user writes them (plugin options, config file). */
export type WasmServeOptions = Static<typeof OptionsSchema>
type DeepRequired<T> = T extends unknown[] ? T : T extends object ? { [K in keyof T]-?: DeepRequired<T[K]> } : T
type Full = DeepRequired<WasmServeOptions>
/** The options that take a size ("64MB"), in bytes once resolved. */
interface Sizes { memoryBudget: number, compress: Omit<Full['compress'], 'minSize' | 'cacheMaxSize'> & { minSize: number, cacheMaxSize: number } }
/** `true` where a bare CLI flag would do, resolved to what that flag means (SHORTHANDS). */
interface Shorthands {
  crossOriginIsolation: Exclude<Full['crossOriginIsolation'], true>
  cors: Exclude<Full['cors'], true>
  spa: Exclude<Full['spa'], true>
  /** The security preset as written (its defaults are filled where it is used: src/security.ts), or false. */
  security: false | SecurityOptions
}
/** The security preset's settings as a user writes them (`security: { … }`). */
export type SecurityOptions = Exclude<NonNullable<WasmServeOptions['security']>, boolean>
/**
 * Options after defaults are applied, with `memoryBudget`, `compress.minSize` and
 * `compress.cacheMaxSize` in bytes and `true` shorthands expanded.
 */
export type ResolvedOptions = Omit<Full, keyof Sizes | keyof Shorthands> & Sizes & Shorthands

/** What `true` means for an option, as the bare flag (`--isolate`, `--cors`, `--spa`, `--secure`) means it. */
const SHORTHANDS: Shorthands = { crossOriginIsolation: 'require-corp', cors: { origin: '*' }, spa: 'index.html', security: {} }
export type RouteOptions = Static<typeof Route>

/**
 * Ajv's validator for that schema (allErrors, useDefaults, verbose), compiled at build time by
 * scripts/options-validator.mjs: compiled at start-up it cost ~6 MB of RSS for good.
 */
const check = require('./options.validate.cjs') as ValidateFunction

/**
 * Validates user options, fills defaults, and returns resolved options, or throws every problem at
 * once. `alsoKnown`: top-level keys a caller takes itself (the plugin's `prefix`), offered when an
 * unknown key is near one.
 */
export function resolveOptions (input: unknown, source = 'options', alsoKnown: readonly string[] = []): ResolvedOptions {
  const copy = structuredClone(input ?? {}) as Record<string, unknown>
  const problems = check(copy) ? [] : describe(check.errors ?? [], alsoKnown)
  problems.push(...checkHeaders(copy))
  if (problems.length === 0) problems.push(...readSizes(copy))
  if (problems.length > 0) throw new OptionsError(problems, source)
  for (const key of Object.keys(SHORTHANDS) as Array<keyof Shorthands>) if (copy[key] === true) copy[key] = structuredClone(SHORTHANDS[key])
  return copy as unknown as ResolvedOptions
}

/**
 * Sizes in bytes, in place: the schema has checked their grammar, this that they are exact integers
 * (< 2^53). A bound beyond that means "no bound" (parseLimit); the plugin caps a memory budget to
 * what the machine has.
 */
function readSizes (opts: Record<string, unknown>): OptionProblem[] {
  const compress = opts.compress as Record<string, unknown>
  const problems: OptionProblem[] = []
  const sizes = [[opts, 'memoryBudget', '/memoryBudget', parseLimit], [compress, 'minSize', '/compress/minSize', parseSize], [compress, 'cacheMaxSize', '/compress/cacheMaxSize', parseLimit]] as const
  for (const [holder, key, path, parse] of sizes) {
    const size = parse(holder[key] as string | number)
    if (size === undefined) problems.push({ path, message: 'is more than 8 PiB (2^53 bytes)', value: holder[key] })
    else holder[key] = size
  }
  return problems
}

/** Turns Ajv's errors into one line per problem; a failed union becomes one "expected …" line. */
function describe (errors: ErrorObject[], alsoKnown: readonly string[]): OptionProblem[] {
  const unionPaths = new Set(errors.filter(e => e.keyword === 'anyOf').map(e => e.instancePath))
  // A union that failed because of a problem found deeper inside it (a bad origin in `cors`) says
  // nothing more than that problem: only the deepest line is kept.
  const deeper = (path: string) => errors.some(e => e.keyword !== 'anyOf' && e.instancePath.startsWith(path + '/'))
  const out: OptionProblem[] = []
  for (const e of errors) {
    if (e.keyword !== 'anyOf' && [...unionPaths].some(p => e.instancePath === p && e.schemaPath.includes('/anyOf/'))) continue
    if (e.keyword === 'anyOf' && deeper(e.instancePath)) continue
    // An unknown key's "value" is the whole object around it: the message names the key instead.
    out.push({ path: e.instancePath, message: messageOf(e, e.instancePath === '' ? alsoKnown : []), ...(e.keyword === 'additionalProperties' ? {} : { value: e.data }) })
  }
  return out.filter((p, i) => out.findIndex(q => q.path === p.path && q.message === p.message) === i)
}

interface SchemaNode { expected?: string, anyOf?: Array<{ const?: unknown }>, properties?: Record<string, unknown>, type?: string, minimum?: number, maximum?: number }

function messageOf (e: ErrorObject, alsoKnown: readonly string[]): string {
  const schema = (e.parentSchema ?? {}) as SchemaNode
  if (e.keyword === 'additionalProperties') {
    const key = String(e.params.additionalProperty)
    const near = nearest(key, [...Object.keys(schema.properties ?? {}), ...alsoKnown])
    return `unknown key "${key}"${near === undefined ? '' : ` (did you mean "${near}"?)`}`
  }
  if (e.keyword === 'anyOf') return `expected ${schema.expected ?? constantsOf(schema) ?? 'one of the allowed values'}`
  if (e.keyword === 'pattern' && e.instancePath.includes('/headers')) return 'header names must be HTTP tokens'
  if (e.keyword === 'pattern' && e.params.pattern === '^/') return 'must start with "/"'
  if (e.keyword === 'pattern' && /^\/cors\/origin\/\d+$/.test(e.instancePath)) return 'expected an origin: a scheme and a host, maybe a port, no path, e.g. "https://app.example" or "http://localhost:5173"'
  // Ajv's "must be integer" / "must be <= 65535": the whole expectation at once.
  if ((schema.type === 'integer' || schema.type === 'number') && ['type', 'minimum', 'maximum'].includes(e.keyword)) return `expected ${schema.type === 'integer' ? 'an integer' : 'a number'}${rangeOf(schema)}`
  return e.message ?? 'is invalid'
}

/** A union of constants (a log level): its values listed, `fatal, error, … or silent`. */
function constantsOf (schema: SchemaNode): string | undefined {
  const values = schema.anyOf?.map(s => s.const)
  if (values === undefined || values.some(v => v === undefined)) return undefined
  return oneOf(values.map(v => typeof v === 'string' ? v : JSON.stringify(v)))
}

function rangeOf (schema: SchemaNode): string {
  if (schema.minimum !== undefined && schema.maximum !== undefined) return ` ${schema.minimum}–${schema.maximum}`
  return schema.minimum !== undefined ? ` of at least ${schema.minimum}` : schema.maximum !== undefined ? ` of at most ${schema.maximum}` : ''
}

/** RFC 9110 §5.5 field values, as Node enforces them: tab, visible ASCII and obs-text; never CR, LF or NUL. */
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/
const BAD_VALUE_MESSAGE = 'header values may only contain tabs, visible ASCII and Latin-1 (no CR, LF, NUL or other control characters)'
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
/**
 * Hop-by-hop headers belong to the connection; the others are the server's own, per representation
 * (D5–D8), Content-Type included: it comes from the file (D1: never a charset on application/wasm).
 */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'content-length', 'content-encoding', 'content-range', 'content-type', 'etag', 'last-modified', 'vary', 'accept-ranges', 'x-decoded-content-length'])
function checkHeaders (opts: Record<string, unknown>): OptionProblem[] {
  const routes = Array.isArray(opts.routes) ? opts.routes as Array<{ headers?: unknown, preload?: unknown }> : []
  const problems: OptionProblem[] = []
  const preloads: Array<[string, unknown]> = [['/preload', opts.preload], ...routes.map((r, i): [string, unknown] => [`/routes/${i}/preload`, r?.preload])]
  for (const [path, list] of preloads) {
    if (!Array.isArray(list)) continue
    list.forEach((url, j) => {
      if (typeof url !== 'string') return
      try { encodeURI(url) } catch { problems.push({ path: `${path}/${j}`, message: 'is not a valid URL path (unpaired surrogate)' }) }
    })
  }
  routes.forEach((route, i) => {
    if (route === null || typeof route !== 'object') return
    const cacheControl = (route as { cacheControl?: unknown }).cacheControl
    if (typeof cacheControl === 'string' && BAD_VALUE.test(cacheControl)) problems.push({ path: `/routes/${i}/cacheControl`, message: BAD_VALUE_MESSAGE, value: cacheControl })
    if (typeof route.headers !== 'object' || route.headers === null) return
    for (const [name, value] of Object.entries(route.headers)) {
      const path = `/routes/${i}/headers/${name.replace(/~/g, '~0').replace(/\//g, '~1')}`
      if (!HEADER_NAME.test(name)) problems.push({ path, message: 'header names must be HTTP tokens (RFC 9110 §5.1)' })
      if (HOP_BY_HOP.has(name.toLowerCase())) problems.push({ path, message: `"${name}" is set by the server and may not be configured` })
      if (typeof value === 'string' && BAD_VALUE.test(value)) problems.push({ path, message: BAD_VALUE_MESSAGE, value })
    }
  })
  return problems
}
