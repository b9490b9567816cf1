/**
 * Parsers and interpreters for the CDN formats `wasm-serve export` writes, written from each
 * platform's documentation (no platform code runs here): they reject what the grammar does not
 * allow, and answer "which headers does this file give this path" with the documented matching.
 *
 * - `_headers`: a path line, then indented `Name: value` lines, `#` comments; `! Name` detaches on
 *   Cloudflare. Splat `*` matches anything, `:name` one segment; matched against the percent-encoded
 *   path. Cloudflare applies every matching rule in order, unset then set, a header set twice being
 *   joined with ", " (https://developers.cloudflare.com/pages/configuration/headers/; workers-sdk
 *   asset-worker headers.ts). Netlify does not document how two rules setting one header combine,
 *   so that case is reported as a conflict (https://docs.netlify.com/manage/routing/headers/).
 * - `_redirects`: `from to [status][!]` per line; a splat rewrite is shadowed by a file that exists
 *   unless forced (https://docs.netlify.com/manage/routing/redirects/rewrites-proxies/#shadowing).
 * - `vercel.json`: the schema of vercel/vercel packages/routing-utils/src/schemas.ts (the parts the
 *   export uses), sources in path-to-regexp syntax (v6 lexer rules: a group may not start with "?",
 *   nested groups must be non-capturing), later entries winning a header
 *   (https://nextjs.org/docs/app/api-reference/config/next-config-js/headers), rewrites applied only
 *   to paths no file answers.
 */
import { Ajv } from 'ajv'

export type Headers = Record<string, string>

export interface HeaderRule { path: string, unset: string[], set: Array<[string, string]>, line: number }

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/

/** Parses a `_headers` file; throws naming the line that breaks the grammar or a limit. */
export function parseHeaders (text: string, { detach, maxRules = Infinity, maxLine = Infinity }: { detach: boolean, maxRules?: number, maxLine?: number }): HeaderRule[] {
  const rules: HeaderRule[] = []
  text.split('\n').forEach((line, i) => {
    const where = `line ${i + 1}: ${JSON.stringify(line)}`
    if (line.length > maxLine) throw new Error(`longer than ${maxLine} characters, ${where}`)
    if (line.trim() === '' || line.trimStart().startsWith('#')) return
    if (!/^\s/.test(line)) {
      if (!line.startsWith('/') && !line.startsWith('https://')) throw new Error(`a rule must start with / or https://, ${where}`)
      if (/\s/.test(line.trim())) throw new Error(`a path has no spaces, ${where}`)
      if ((line.match(/\*/g) ?? []).length > 1) throw new Error(`one splat at most, ${where}`)
      rules.push({ path: line.trim(), unset: [], set: [], line: i + 1 })
      return
    }
    const rule = rules.at(-1)
    if (rule === undefined) throw new Error(`a header before any path, ${where}`)
    const body = line.trim()
    if (body.startsWith('!')) {
      if (!detach) throw new Error(`"! Name" is Cloudflare's, ${where}`)
      const name = body.slice(1).trim()
      if (!TOKEN.test(name)) throw new Error(`not a header name, ${where}`)
      rule.unset.push(name.toLowerCase())
      return
    }
    const colon = body.indexOf(':')
    if (colon < 1 || !TOKEN.test(body.slice(0, colon))) throw new Error(`expected "Name: value", ${where}`)
    rule.set.push([body.slice(0, colon).toLowerCase(), body.slice(colon + 1).trim()])
  })
  if (rules.length > maxRules) throw new Error(`${rules.length} rules, more than ${maxRules}`)
  return rules
}

/** A rule path as Cloudflare compiles it (rules-engine.ts): escaped, `*` any characters, `:name` one segment. */
export function rulePattern (path: string): RegExp {
  const escaped = path.split('*').map(part => part.replace(/[-/\\^$*+?.()|[\]{}]/g, '\\$&')).join('.*')
  return new RegExp('^' + escaped.replace(/:([A-Za-z]\w*)/g, '[^/]+') + '$')
}

/** Cloudflare: every matching rule in order; unset, then set (set the first time, appended after). */
export function cloudflareHeaders (rules: HeaderRule[], path: string): Headers {
  const out: Headers = {}
  const setByRules = new Set<string>()
  for (const rule of rules.filter(r => rulePattern(r.path).test(path))) {
    for (const name of rule.unset) delete out[name]
    for (const [name, value] of rule.set) {
      out[name] = setByRules.has(name) && out[name] !== undefined ? `${out[name]}, ${value}` : value
      setByRules.add(name)
    }
  }
  return out
}

/** Netlify: every matching rule; a header two matching rules set is a conflict (undocumented result). */
export function netlifyHeaders (rules: HeaderRule[], path: string): { headers: Headers, conflicts: string[] } {
  const headers: Headers = {}
  const conflicts: string[] = []
  for (const rule of rules.filter(r => rulePattern(r.path).test(path))) {
    for (const [name, value] of rule.set) {
      if (headers[name] !== undefined) conflicts.push(`${name} on ${path} (rules ${rule.path})`)
      headers[name] = value
    }
  }
  return { headers, conflicts }
}

export interface Redirect { from: string, to: string, status: number, force: boolean }

/** Parses `_redirects`: `from to [status[!]]`, `#` comments. */
export function parseRedirects (text: string, maxRules = Infinity): Redirect[] {
  const out: Redirect[] = []
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '' || line.trimStart().startsWith('#')) return
    const fields = line.trim().split(/\s+/)
    const status = /^(\d{3})(!?)$/.exec(fields[2] ?? '302')
    if (fields.length < 2 || fields.length > 3 || !fields[0]!.startsWith('/') || status === null) throw new Error(`line ${i + 1}: expected "from to [status[!]]": ${JSON.stringify(line)}`)
    out.push({ from: fields[0]!, to: fields[1]!, status: Number(status[1]), force: status[2] === '!' })
  })
  if (out.length > maxRules) throw new Error(`${out.length} redirects, more than ${maxRules}`)
  return out
}

/** Netlify: the first rule that matches and is not shadowed by an existing file. */
export function netlifyRewrite (redirects: Redirect[], path: string, exists: (path: string) => boolean): Redirect | undefined {
  return redirects.find(r => rulePattern(r.from).test(path) && (r.force || !exists(path)))
}

/** The path-to-regexp subset Vercel sources use, as a RegExp; throws where path-to-regexp v6 would. */
export function vercelSource (source: string): RegExp {
  if (!source.startsWith('/')) throw new Error(`a source starts with /: ${source}`)
  let out = ''
  for (let i = 0; i < source.length;) {
    const c = source[i]!
    if (c === '(') {
      const [pattern, end] = groupAt(source, i)
      out += `(${pattern})`
      i = end
    } else if (c === ':') {
      // Named parameters, without modifiers: the export writes none, so this subset is enough.
      const name = /^[A-Za-z0-9_]+/.exec(source.slice(i + 1))?.[0]
      if (name === undefined) throw new Error(`a parameter needs a name at ${i}: ${source}`)
      i += 1 + name.length
      let pattern = '[^\\/#\\?]+?'
      if (source[i] === '(') [pattern, i] = groupAt(source, i)
      if (/^[*+?]/.test(source.slice(i))) throw new Error(`parameter modifiers are outside this checker's subset at ${i}: ${source}`)
      out += `(${pattern})`
    } else if (c === '\\') {
      out += source.slice(i, i + 2)
      i += 2
    } else {
      out += c.replace(/[.+*?^${}|[\]\\/]/g, '\\$&')
      i += 1
    }
  }
  return new RegExp(`^${out}$`)
}

/** A `( … )` group at `start`: its pattern and the index after it; the v6 lexer's rules. */
function groupAt (source: string, start: number): [string, number] {
  if (source[start + 1] === '?') throw new Error(`a pattern cannot start with "?" at ${start + 1}: ${source}`)
  let depth = 1
  let j = start + 1
  let pattern = ''
  while (j < source.length) {
    if (source[j] === '\\') { pattern += source.slice(j, j + 2); j += 2; continue }
    if (source[j] === ')') { depth--; if (depth === 0) { j++; break } }
    if (source[j] === '(') { depth++; if (source[j + 1] !== '?') throw new Error(`capturing groups are not allowed at ${j}: ${source}`) }
    pattern += source[j++]
  }
  if (depth !== 0) throw new Error(`unbalanced group at ${start}: ${source}`)
  if (pattern === '') throw new Error(`an empty group at ${start}: ${source}`)
  return [pattern, j]
}

export interface VercelConfig {
  headers: Array<{ source: string, headers: Array<{ key: string, value: string }> }>
  rewrites?: Array<{ source: string, destination: string, has?: Array<{ type: string, key: string, value: string }> }>
}

const has = { type: 'array', maxItems: 16, items: { type: 'object', additionalProperties: false, required: ['type', 'key'], properties: { type: { enum: ['header', 'cookie', 'query'] }, key: { type: 'string', maxLength: 4096 }, value: { type: 'string', maxLength: 4096 } } } }
/** The parts of vercel.json the export writes, with the limits of routing-utils schemas.ts. */
const VERCEL_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['headers'],
  properties: {
    $schema: { type: 'string' },
    headers: { type: 'array', maxItems: 2048, items: { type: 'object', additionalProperties: false, required: ['source', 'headers'], properties: { source: { type: 'string', maxLength: 4096 }, headers: { type: 'array', maxItems: 1024, items: { type: 'object', additionalProperties: false, required: ['key', 'value'], properties: { key: { type: 'string', maxLength: 4096 }, value: { type: 'string', maxLength: 32768 } } } }, has, missing: has } } },
    rewrites: { type: 'array', maxItems: 2048, items: { type: 'object', additionalProperties: false, required: ['source', 'destination'], properties: { source: { type: 'string', maxLength: 4096 }, destination: { type: 'string', maxLength: 4096 }, has, missing: has } } },
  },
}

export function parseVercel (text: string): VercelConfig {
  const config = JSON.parse(text) as VercelConfig
  const ajv = new Ajv({ allErrors: true })
  if (!ajv.validate(VERCEL_SCHEMA, config)) throw new Error(`vercel.json: ${ajv.errorsText()}`)
  for (const entry of [...config.headers, ...config.rewrites ?? []]) vercelSource(entry.source)
  return config
}

/** Every matching entry in order, a later one replacing a header an earlier one set. */
export function vercelHeaders (config: VercelConfig, path: string): Headers {
  const out: Headers = {}
  for (const entry of config.headers.filter(e => vercelSource(e.source).test(path))) {
    for (const { key, value } of entry.headers) out[key.toLowerCase()] = value
  }
  return out
}

/** The rewrite a path that names no file gets, given the request's headers (lower-case names). */
export function vercelRewrite (config: VercelConfig, path: string, request: Headers): string | undefined {
  return config.rewrites?.find(r => vercelSource(r.source).test(path) && (r.has ?? []).every(h => h.type === 'header' && new RegExp(`^${h.value}$`).test(request[h.key.toLowerCase()] ?? '')))?.destination
}

/** The JSON Schema of the S3 manifest (s3.ts), checked with ajv. */
export const S3_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['format', 'objects', 'warnings'],
  properties: {
    format: { const: 'wasm-serve-s3-manifest/1' },
    objects: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['key', 'file', 'contentType', 'cacheControl'],
        properties: {
          // S3 keys: UTF-8, at most 1,024 bytes (https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-keys.html).
          key: { type: 'string', minLength: 1, maxLength: 1024 },
          file: { type: 'string', minLength: 1 },
          contentType: { type: 'string', minLength: 1 },
          cacheControl: { type: 'string', minLength: 1 },
          contentEncoding: { enum: ['br', 'gzip', 'zstd'] },
          cdnHeaders: { type: 'object', additionalProperties: { type: 'string' } },
        },
      },
    },
    cors: {
      type: 'object',
      additionalProperties: false,
      required: ['CORSRules'],
      properties: {
        CORSRules: {
          type: 'array',
          maxItems: 100,
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['AllowedOrigins', 'AllowedMethods'],
            properties: {
              AllowedOrigins: { type: 'array', minItems: 1, items: { type: 'string' } },
              AllowedMethods: { type: 'array', minItems: 1, items: { enum: ['GET', 'PUT', 'HEAD', 'POST', 'DELETE'] } },
              AllowedHeaders: { type: 'array', items: { type: 'string' } },
              ExposeHeaders: { type: 'array', items: { type: 'string' } },
              MaxAgeSeconds: { type: 'integer', minimum: 0 },
            },
          },
        },
      },
    },
    warnings: { type: 'array', items: { type: 'string' } },
  },
}

export interface S3Manifest {
  objects: Array<{ key: string, file: string, contentType: string, cacheControl: string, contentEncoding?: string, cdnHeaders?: Headers }>
  cors?: { CORSRules: Array<{ AllowedOrigins: string[], AllowedMethods: string[], ExposeHeaders?: string[], MaxAgeSeconds?: number }> }
  warnings: string[]
}

export function parseS3 (text: string): S3Manifest {
  const manifest = JSON.parse(text) as S3Manifest
  const ajv = new Ajv({ allErrors: true })
  if (!ajv.validate(S3_SCHEMA, manifest)) throw new Error(`s3 manifest: ${ajv.errorsText()}`)
  return manifest
}

/** Splits the CLI's stdout for a two-file target (`# ==> name <==` before each file); one file is printed as it is, and named `single`. */
export function splitFiles (stdout: string, single = '_headers'): Record<string, string> {
  if (!stdout.startsWith('# ==> ')) return { [single]: stdout }
  const out: Record<string, string> = {}
  for (const part of stdout.split(/^# ==> /m).slice(1)) {
    const name = part.slice(0, part.indexOf(' <=='))
    out[name] = part.slice(part.indexOf('\n') + 1)
  }
  return out
}
