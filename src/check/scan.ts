/**
 * What a page makes the browser load, read from its HTML, its Link header and its scripts: `<script
 * src>`, `<link rel=preload|modulepreload>`, and the `.wasm` URLs in the scripts' string literals
 * (`"sqlite3.wasm"`, `new URL('app.wasm', import.meta.url)`), each resolved against the script's URL
 * as Emscripten's locateFile and bundlers' `new URL(…, import.meta.url)` resolve them. A scanner
 * with regular expressions, not a parser: it looks for references, it does not run anything.
 */
import { brotliDecompressSync, constants, gunzipSync, inflateSync } from 'node:zlib'
import * as zlib from 'node:zlib'

export interface Preload { url: string, rel: string, as?: string, crossorigin: boolean, from: 'header' | 'html' }
export interface ScriptRef { url: string, module: boolean }

/** The attributes of one tag, names lower-cased; a bare attribute (`crossorigin`) has the value ''. */
function attributes (tag: string): Map<string, string> {
  const out = new Map<string, string>()
  for (const m of tag.matchAll(/([^\s"'<>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g)) {
    out.set(m[1]!.toLowerCase(), m[2] ?? m[3] ?? m[4] ?? '')
  }
  return out
}

function resolved (href: string, base: string): string | undefined {
  try {
    const url = new URL(href.trim(), base)
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : undefined
  } catch { return undefined }
}

/** `<script src>` and `<link rel=preload|modulepreload>` of a page (comments left out). */
export function scanPage (html: string, pageUrl: string): { scripts: ScriptRef[], preloads: Preload[] } {
  const text = html.replace(/<!--[\s\S]*?-->/g, '')
  const base = resolved(attributes(/<base\b[^>]*>/i.exec(text)?.[0] ?? '').get('href') ?? '', pageUrl) ?? pageUrl
  const scripts: ScriptRef[] = []
  for (const tag of text.match(/<script\b[^>]*>/gi) ?? []) {
    const attrs = attributes(tag.slice(7, -1))
    const url = resolved(attrs.get('src') ?? '', base)
    if (attrs.has('src') && url !== undefined) scripts.push({ url, module: attrs.get('type')?.toLowerCase() === 'module' })
  }
  const preloads: Preload[] = []
  for (const tag of text.match(/<link\b[^>]*>/gi) ?? []) {
    const attrs = attributes(tag.slice(5, -1))
    const rel = attrs.get('rel')?.toLowerCase().split(/\s+/).find(r => r === 'preload' || r === 'modulepreload')
    const url = resolved(attrs.get('href') ?? '', base)
    if (rel !== undefined && url !== undefined) preloads.push({ url, rel, as: attrs.get('as')?.toLowerCase(), crossorigin: attrs.has('crossorigin'), from: 'html' })
  }
  return { scripts, preloads }
}

/** The preload and modulepreload links of a Link header (RFC 8288 §3): `<url>; rel=preload; as=fetch; crossorigin`. */
export function linkPreloads (value: string | undefined, base: string): Preload[] {
  const out: Preload[] = []
  for (const m of (value ?? '').matchAll(/<([^>]*)>((?:\s*;\s*[^;,]+(?:=(?:"[^"]*"|[^;,]*))?)*)/g)) {
    const params = new Map([...m[2]!.matchAll(/;\s*([^;=,\s]+)\s*(?:=\s*(?:"([^"]*)"|([^;,]*)))?/g)].map(p => [p[1]!.toLowerCase(), (p[2] ?? p[3] ?? '').trim()]))
    const rel = params.get('rel')?.toLowerCase().split(/\s+/).find(r => r === 'preload' || r === 'modulepreload')
    const url = resolved(m[1]!, base)
    if (rel !== undefined && url !== undefined) out.push({ url, rel, as: params.get('as')?.toLowerCase(), crossorigin: params.has('crossorigin'), from: 'header' })
  }
  return out
}

/** `.wasm` URLs named by string literals in a script, resolved against the script's URL. */
export function wasmUrlsIn (source: string, scriptUrl: string): string[] {
  const found = new Set<string>()
  for (const m of source.matchAll(/(["'`])([^"'`\s\\]*?\.wasm(?:\?[^"'`\s\\]*)?)\1/g)) {
    if (m[2]!.includes('${')) continue
    const url = resolved(m[2]!, scriptUrl)
    if (url !== undefined) found.add(url)
  }
  return [...found]
}

/** A body as text, decoded from its Content-Encoding; a body cut short decodes as far as it goes. */
export function decodeBody (body: Buffer, encoding: string | undefined): string {
  const coding = (encoding ?? 'identity').trim().toLowerCase()
  try {
    if (coding === 'br') return brotliDecompressSync(body, { finishFlush: constants.BROTLI_OPERATION_FLUSH }).toString('utf8')
    if (coding === 'gzip' || coding === 'x-gzip') return gunzipSync(body, { finishFlush: constants.Z_SYNC_FLUSH }).toString('utf8')
    if (coding === 'deflate') return inflateSync(body, { finishFlush: constants.Z_SYNC_FLUSH }).toString('utf8')
    // zstd is in node:zlib from Node 22.15; earlier, a zstd page is scanned as nothing.
    const zstd = (zlib as { zstdDecompressSync?: (b: Buffer) => Buffer }).zstdDecompressSync
    if (coding === 'zstd') return zstd?.(body).toString('utf8') ?? ''
  } catch { return '' }
  return body.toString('utf8')
}
