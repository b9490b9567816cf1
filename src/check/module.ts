/**
 * The audit of one WebAssembly module URL. Every question is answered from headers and the first
 * eight bytes: a GET as Chrome sends it, a GET without Accept-Encoding, one refusing br and zstd by
 * q-value, HEADs for each coding, an 8-byte range, a conditional GET, and a GET for a missing
 * neighbour; every body is dropped unread. Only when the identity length is known from none of
 * them (chunked, no ranges) is the module read once, whole, to count it.
 */
import { randomBytes } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import { cachePolicy } from './cache.js'
import { follow, header, RequestError, type Answer, type Client } from './http.js'
import { bytesShown, CHROME_ACCEPT_ENCODING, WASM_MAGIC, type Finding, type RuleId } from './rules.js'

export interface ModuleContext {
  client: Client
  /** Origins of the pages that load this module (CORS is needed for those of another origin). */
  pageOrigins: string[]
  progress?: (line: string) => void
  /** The GET as Chrome sends it, when the caller already made it (to tell a module from a page). */
  reached?: { answer: Answer, chain: string[] }
}

export interface ModuleResult {
  findings: Finding[]
  /** Headers of the GET as Chrome sends it, when the module answered. */
  headers?: IncomingHttpHeaders
}

type Verdict = Omit<Finding, 'url'>
type Probe = Answer | RequestError

const CODINGS = ['br', 'zstd', 'gzip'] as const
const BIG = 4 * 1024 * 1024

export const codingOf = (a: Answer): string => (header(a.headers, 'content-encoding') ?? 'identity').trim().toLowerCase() || 'identity'
const lengthOf = (a: Answer): number | undefined => {
  const v = header(a.headers, 'content-length')
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined
}
const failed = (rule: RuleId, err: RequestError): Verdict => ({ rule, status: 'fail', evidence: `request failed: ${err.message}` })
const varies = (a: Answer): boolean => /(^|,)\s*(accept-encoding|\*)\s*(,|$)/i.test(header(a.headers, 'vary') ?? '')
const named = (a: Answer, what: string): string => `${what} → ${codingOf(a)}`

export async function auditModule (url: string, ctx: ModuleContext): Promise<ModuleResult> {
  const origin = new URL(url).origin
  const foreign = ctx.pageOrigins.filter(o => o !== origin)
  const chrome: Record<string, string> = { 'accept-encoding': CHROME_ACCEPT_ENCODING, accept: '*/*', ...(foreign.length > 0 ? { origin: foreign[0]! } : {}) }
  let reached = foreign.length > 0 ? undefined : ctx.reached
  try {
    reached ??= await follow(ctx.client, url, { headers: chrome })
  } catch (err) {
    return { findings: [{ rule: 'reachable', status: 'fail', url, evidence: (err as Error).message }] }
  }
  const via = reached.chain.length > 1 ? ` via ${reached.chain.join(' → ')}` : ''
  if (reached.answer.status !== 200) {
    return { findings: [{ rule: 'reachable', status: 'fail', url, evidence: `${reached.answer.status}${via}` }], headers: reached.answer.headers }
  }
  const final = reached.chain.at(-1)!
  const probes = await probe(ctx.client, final, chrome, reached.answer)
  let first = reached.answer
  // A server that encodes on the fly (wasm-serve, D4) may answer identity until the encoding is made:
  // ask again once, so the rules judge what later visitors get.
  if (codingOf(first) === 'identity' && probes.offered.length > 0) first = await ctx.client.get(final, { headers: chrome }).catch(() => first)
  const verdicts: Verdict[] = [
    { rule: 'reachable', status: 'pass', evidence: `200${via}` },
    contentType(first),
    encoding(first, probes),
    qValues(probes.qValues),
    contentLength(first, probes),
    vary(first, probes),
    etag(first, probes),
    notModified(await conditional(ctx.client, final, chrome, first)),
    range(probes.range),
    await headAgain(ctx.client, final, chrome, head(first, probes.head)),
    { rule: 'cache-policy', ...cachePolicy(final, 'module', first.headers) },
    await decodedLength(first, probes, ctx, final),
    cors(first, foreign),
    spaFallback(probes.missing),
  ]
  return { findings: verdicts.map(v => ({ ...v, url })), headers: first.headers }
}

interface Probes {
  head: Probe
  plain: Probe
  qValues: Probe
  range: Probe
  missing: Probe
  /** Codings the server has for this module, from HEADs asking for each alone. */
  offered: string[]
}

async function probe (client: Client, url: string, chrome: Record<string, string>, first: Answer): Promise<Probes> {
  const settle = async (p: Promise<Answer>): Promise<Probe> => p.catch((err: unknown) => err instanceof RequestError ? err : new RequestError(String(err)))
  const missingUrl = new URL(`wasm-serve-check-${randomBytes(6).toString('hex')}.wasm`, url).href
  const { origin } = chrome
  const extra: Record<string, string> = origin !== undefined ? { origin } : {}
  const [head, plain, qValues, range, missing, ...single] = await Promise.all([
    settle(client.get(url, { method: 'HEAD', headers: chrome })),
    settle(client.get(url, { headers: { accept: '*/*', ...extra } })),
    settle(client.get(url, { headers: { ...chrome, 'accept-encoding': 'gzip;q=1, br;q=0, zstd;q=0' } })),
    settle(client.get(url, { headers: { accept: '*/*', 'accept-encoding': 'identity', range: 'bytes=0-7', ...extra }, readBytes: 8 })),
    settle(client.get(missingUrl, { headers: { accept: '*/*', 'accept-encoding': CHROME_ACCEPT_ENCODING }, readBytes: 512 })),
    ...CODINGS.map(c => settle(client.get(url, { method: 'HEAD', headers: { ...chrome, 'accept-encoding': c } }))),
  ])
  const offered = CODINGS.filter((c, i) => { const a = single[i]; return (a instanceof RequestError ? undefined : a && codingOf(a)) === c || codingOf(first) === c })
  return { head: head!, plain: plain!, qValues: qValues!, range: range!, missing: missing!, offered }
}

function contentType (first: Answer): Verdict {
  const type = header(first.headers, 'content-type')
  // The WebAssembly Web API compares the Content-Type value itself, byte-case-insensitively, with
  // `application/wasm`: a parameter (charset) makes compileStreaming/instantiateStreaming reject it.
  // https://webassembly.github.io/spec/web-api/#dom-webassembly-compilestreaming
  if (type?.toLowerCase() === 'application/wasm') return { rule: 'content-type', status: 'pass', evidence: 'application/wasm' }
  return { rule: 'content-type', status: 'fail', evidence: `${type === undefined ? 'no Content-Type' : `Content-Type: ${type}`}: instantiateStreaming rejects anything but exactly application/wasm` }
}

/** The module's identity size: a 206's Content-Range total, or an identity 200's Content-Length. */
function identitySize (first: Answer, probes: Probes): number | undefined {
  const { range, plain } = probes
  if (!(range instanceof RequestError)) {
    const total = /^bytes\s+\d+-\d+\/(\d+)$/i.exec(header(range.headers, 'content-range') ?? '')?.[1]
    if (range.status === 206 && total !== undefined) return Number(total)
    if (range.status === 200 && codingOf(range) === 'identity' && lengthOf(range) !== undefined) return lengthOf(range)
  }
  for (const a of [plain, first]) if (!(a instanceof RequestError) && a.status === 200 && codingOf(a) === 'identity' && lengthOf(a) !== undefined) return lengthOf(a)
  return undefined
}

function encoding (first: Answer, probes: Probes): Verdict {
  const coding = codingOf(first)
  const offers = `offers ${probes.offered.length > 0 ? probes.offered.join(', ') : 'no encoding'}`
  const { plain } = probes
  if (plain instanceof RequestError) return failed('encoding', plain)
  if (codingOf(plain) !== 'identity') return { rule: 'encoding', status: 'fail', evidence: `${codingOf(plain)} sent to a request without Accept-Encoding (curl, wget save undecodable bytes); ${offers}` }
  if (!['br', 'zstd', 'gzip', 'deflate', 'identity'].includes(coding)) return { rule: 'encoding', status: 'fail', evidence: `Content-Encoding ${coding} was not asked for (${CHROME_ACCEPT_ENCODING})` }
  const size = identitySize(first, probes)
  if (coding === 'identity' && (size ?? 0) >= 1024) return { rule: 'encoding', status: 'warn', evidence: `identity (${size} B) for ${CHROME_ACCEPT_ENCODING}; ${offers}` }
  return { rule: 'encoding', status: 'pass', evidence: `${coding} for ${CHROME_ACCEPT_ENCODING}${coding === 'identity' ? ` (${size ?? '?'} B: too small to gain)` : ''}; ${offers}` }
}

function qValues (answer: Probe): Verdict {
  if (answer instanceof RequestError) return failed('q-values', answer)
  const coding = codingOf(answer)
  const asked = 'gzip;q=1, br;q=0, zstd;q=0'
  // RFC 9110 §12.5.3: q=0 means "not acceptable".
  if (coding === 'br' || coding === 'zstd') return { rule: 'q-values', status: 'fail', evidence: `${coding} sent for ${asked}` }
  if (answer.status !== 200) return { rule: 'q-values', status: 'warn', evidence: `${answer.status} for ${asked} (gzip or identity was acceptable)` }
  return { rule: 'q-values', status: 'pass', evidence: `${coding} for ${asked}` }
}

/** Every 200 the module gave to a GET, labelled by what was asked. */
function gets (first: Answer, probes: Probes): Array<{ what: string, answer: Answer }> {
  const out = [{ what: 'Chrome', answer: first }]
  if (!(probes.plain instanceof RequestError)) out.push({ what: 'no Accept-Encoding', answer: probes.plain })
  if (!(probes.qValues instanceof RequestError)) out.push({ what: 'br;q=0', answer: probes.qValues })
  if (!(probes.range instanceof RequestError)) out.push({ what: 'Range', answer: probes.range })
  return out.filter(g => g.answer.status === 200)
}

function contentLength (first: Answer, probes: Probes): Verdict {
  const all = gets(first, probes)
  const chunked = all.filter(g => lengthOf(g.answer) === undefined)
  if (chunked.length > 0) return { rule: 'content-length', status: 'warn', evidence: `no Content-Length (${header(chunked[0]!.answer.headers, 'transfer-encoding') ?? 'read to close'}): ${chunked.map(g => named(g.answer, g.what)).join(', ')}; progress has no total` }
  const seen = [...new Map(all.map(g => [codingOf(g.answer), lengthOf(g.answer)])).entries()].map(([c, n]) => `${c} ${n} B`)
  return { rule: 'content-length', status: 'pass', evidence: `Content-Length on every 200: ${seen.join(', ')}` }
}

function vary (first: Answer, probes: Probes): Verdict {
  const all = gets(first, probes)
  const codings = new Set(all.map(g => codingOf(g.answer)))
  if (codings.size < 2 && probes.offered.length === 0) return { rule: 'vary', status: 'pass', evidence: `one representation (${[...codings].join('')})${varies(first) ? ', Vary: Accept-Encoding anyway' : ''}` }
  const missing = all.filter(g => !varies(g.answer))
  // RFC 9110 §12.5.5: without Vary a shared cache hands the encoded bytes to clients that did not ask.
  const encodedMissing = missing.filter(g => codingOf(g.answer) !== 'identity')
  if (encodedMissing.length > 0) return { rule: 'vary', status: 'fail', evidence: `no Vary: Accept-Encoding on ${encodedMissing.map(g => named(g.answer, g.what)).join(', ')}: a shared cache serves it to clients that did not ask` }
  if (missing.length > 0) return { rule: 'vary', status: 'warn', evidence: `no Vary: Accept-Encoding on ${missing.map(g => named(g.answer, g.what)).join(', ')}: a shared cache keeps identity for everyone` }
  return { rule: 'vary', status: 'pass', evidence: `Vary: ${header(first.headers, 'vary')}` }
}

function etag (first: Answer, probes: Probes): Verdict {
  const tags = new Map<string, string>()
  for (const { answer } of gets(first, probes).filter(g => g.what !== 'Range')) {
    const tag = header(answer.headers, 'etag')
    if (tag !== undefined) tags.set(codingOf(answer), tag)
  }
  const strong = [...tags.entries()].filter(([, t]) => !t.startsWith('W/'))
  const shared = strong.find(([c, t]) => strong.some(([c2, t2]) => c2 !== c && t2 === t))
  // RFC 9110 §8.8.3: a strong ETag promises byte identity; two encodings are two byte sequences.
  if (shared !== undefined) return { rule: 'etag', status: 'fail', evidence: `one strong ETag ${shared[1]} for ${strong.filter(([, t]) => t === shared[1]).map(([c]) => c).join(' and ')}` }
  if (tags.size === 0) {
    const lastModified = header(first.headers, 'last-modified')
    if (lastModified === undefined) return { rule: 'etag', status: 'warn', evidence: 'no ETag and no Last-Modified: every visit downloads the module again' }
    return { rule: 'etag', status: 'pass', evidence: `no ETag, Last-Modified: ${lastModified}` }
  }
  return { rule: 'etag', status: 'pass', evidence: [...tags.entries()].map(([c, t]) => `${c} ${t}`).join(', ') }
}

async function conditional (client: Client, url: string, chrome: Record<string, string>, first: Answer): Promise<{ asked: string, answer: Probe } | undefined> {
  const tag = header(first.headers, 'etag')
  const date = header(first.headers, 'last-modified')
  const condition: Record<string, string> | undefined = tag !== undefined ? { 'if-none-match': tag } : date !== undefined ? { 'if-modified-since': date } : undefined
  if (condition === undefined) return undefined
  const asked = Object.entries(condition).map(([k, v]) => `${k === 'if-none-match' ? 'If-None-Match' : 'If-Modified-Since'}: ${v}`).join('')
  return { asked, answer: await client.get(url, { headers: { ...chrome, ...condition } }).catch((err: RequestError) => err) }
}

function notModified (sent: { asked: string, answer: Probe } | undefined): Verdict {
  if (sent === undefined) return { rule: 'not-modified', status: 'warn', evidence: 'no ETag or Last-Modified to revalidate with' }
  const { asked, answer } = sent
  if (answer instanceof RequestError) return failed('not-modified', answer)
  if (answer.status === 304) return { rule: 'not-modified', status: 'pass', evidence: `304 for ${asked}` }
  return { rule: 'not-modified', status: 'warn', evidence: `${answer.status} for ${asked}${answer.status === 200 ? ' (body not downloaded): Chrome recompiles on a new 200' : ''}` }
}

function range (answer: Probe): Verdict {
  if (answer instanceof RequestError) return failed('range', answer)
  const coding = codingOf(answer)
  const magic = answer.body.subarray(0, 4).equals(WASM_MAGIC)
  const notWasm: Verdict = { rule: 'range', status: 'fail', evidence: `${answer.status}, the bytes are not a wasm module: ${bytesShown(answer.body)}` }
  if (answer.status === 206) {
    const contentRange = header(answer.headers, 'content-range')
    if (coding !== 'identity') return { rule: 'range', status: 'fail', evidence: `206 of the ${coding} bytes for Accept-Encoding: identity (ranges are over identity, D8)` }
    if (!/^bytes 0-7\/\d+$/i.test(contentRange ?? '')) return { rule: 'range', status: 'fail', evidence: `206 with Content-Range: ${contentRange ?? '(none)'} for bytes=0-7` }
    if (!magic) return notWasm
    return { rule: 'range', status: 'pass', evidence: `206, Content-Range: ${contentRange}, starts with ${bytesShown(answer.body)}` }
  }
  if (answer.status === 200) {
    if (coding === 'identity' && answer.body.length >= 4 && !magic) return notWasm
    return { rule: 'range', status: 'warn', evidence: `200 for Range: bytes=0-7 (no ranges; body dropped after ${answer.body.length} bytes): a resumed download starts over` }
  }
  return { rule: 'range', status: 'fail', evidence: `${answer.status} for Range: bytes=0-7` }
}

function head (first: Answer, answer: Probe): Verdict {
  if (answer instanceof RequestError) return failed('head', answer)
  const compare = [['status', String(first.status), String(answer.status)], ...['content-type', 'content-encoding'].map(h => [h, header(first.headers, h), header(answer.headers, h)])]
  const differ = compare.filter(([, g, h]) => g !== h).map(([n, g, h]) => `${n} ${g ?? '(none)'} on GET, ${h ?? '(none)'} on HEAD`)
  const [getLength, headLength] = [lengthOf(first), lengthOf(answer)]
  if (getLength !== undefined && headLength !== undefined && getLength !== headLength) differ.push(`content-length ${getLength} on GET, ${headLength} on HEAD`)
  if (differ.length > 0) return { rule: 'head', status: 'fail', evidence: differ.join('; ') }
  // RFC 9110 §9.3.2 lets HEAD leave out Content-Length; tools that size a download by HEAD then cannot (D9).
  if (getLength !== undefined && headLength === undefined) return { rule: 'head', status: 'warn', evidence: `no Content-Length on HEAD (GET has ${getLength})` }
  return { rule: 'head', status: 'pass', evidence: `same status, type, encoding and length as GET (${codingOf(answer)}, ${headLength ?? 'no length'})` }
}

/**
 * A HEAD and a GET that disagree on the encoding may straddle the moment an encoding made on the fly
 * became ready (D4): the pair is asked once more, HEAD first, before the difference counts.
 */
async function headAgain (client: Client, url: string, chrome: Record<string, string>, verdict: Verdict): Promise<Verdict> {
  if (verdict.status !== 'fail' || !verdict.evidence.includes('content-encoding')) return verdict
  try {
    const again = await client.get(url, { method: 'HEAD', headers: chrome })
    return head(await client.get(url, { headers: chrome }), again)
  } catch { return verdict }
}

async function decodedLength (first: Answer, probes: Probes, ctx: ModuleContext, url: string): Promise<Verdict> {
  const coding = codingOf(first)
  if (coding === 'identity') return { rule: 'decoded-length', status: 'pass', evidence: 'identity: Content-Length is the decoded length' }
  const stated = header(first.headers, 'x-decoded-content-length')
  if (stated === undefined) return { rule: 'decoded-length', status: 'warn', evidence: `${coding} without X-Decoded-Content-Length: a progress bar cannot know the total (whatwg/fetch#1358)` }
  const size = identitySize(first, probes) ?? await countIdentity(ctx, url, Number(stated))
  if (size === undefined) return { rule: 'decoded-length', status: 'warn', evidence: `X-Decoded-Content-Length: ${stated}, identity length unknown` }
  if (String(size) !== stated.trim()) return { rule: 'decoded-length', status: 'fail', evidence: `X-Decoded-Content-Length: ${stated}, identity is ${size} B: progress ends ${Number(stated) > size ? 'short of' : 'past'} 100 %` }
  return { rule: 'decoded-length', status: 'pass', evidence: `X-Decoded-Content-Length: ${stated} = identity length` }
}

/**
 * The one full download: the identity bytes counted, when neither a range nor a Content-Length gave
 * the size. A progress line every quarter for a module over 4 MB (the stated size is the guess).
 */
async function countIdentity (ctx: ModuleContext, url: string, expected: number): Promise<number | undefined> {
  let shown = 0
  const onBytes = (n: number) => {
    if (expected < BIG) return
    const quarter = Math.min(4, Math.floor((n / expected) * 4))
    if (quarter > shown) { shown = quarter; ctx.progress?.(`downloading ${url}: ${quarter * 25} % (${n} of ~${expected} B) to count the identity length`) }
  }
  const answer = await ctx.client.get(url, { headers: { 'accept-encoding': 'identity' }, readBytes: Infinity, onBytes }).catch(() => undefined)
  return answer?.status === 200 && answer.complete && codingOf(answer) === 'identity' ? answer.body.length : undefined
}

function cors (first: Answer, foreign: string[]): Verdict {
  const allow = header(first.headers, 'access-control-allow-origin')
  if (allow === undefined) {
    if (foreign.length > 0) return { rule: 'cors', status: 'fail', evidence: `no Access-Control-Allow-Origin, but loaded by a page of ${foreign.join(', ')}: fetch() fails` }
    return { rule: 'cors', status: 'pass', evidence: 'same-origin only (no Access-Control-Allow-Origin)' }
  }
  const refused = foreign.filter(o => allow.trim() !== '*' && allow.trim() !== o)
  if (refused.length > 0) return { rule: 'cors', status: 'fail', evidence: `Access-Control-Allow-Origin: ${allow}, but loaded by a page of ${refused.join(', ')}` }
  const exposed = (header(first.headers, 'access-control-expose-headers') ?? '').toLowerCase().split(',').map(s => s.trim())
  if (codingOf(first) !== 'identity' && !exposed.includes('x-decoded-content-length') && !exposed.includes('*')) {
    return { rule: 'cors', status: 'warn', evidence: `Access-Control-Allow-Origin: ${allow}, X-Decoded-Content-Length not in Access-Control-Expose-Headers: other origins cannot read it` }
  }
  return { rule: 'cors', status: 'pass', evidence: `Access-Control-Allow-Origin: ${allow}` }
}

function spaFallback (answer: Probe): Verdict {
  if (answer instanceof RequestError) return failed('spa-fallback', answer)
  const where = new URL(answer.url).pathname
  const type = header(answer.headers, 'content-type') ?? ''
  if (answer.status === 404 || answer.status === 410) return { rule: 'spa-fallback', status: 'pass', evidence: `${answer.status} for ${where}` }
  if (answer.status === 200) {
    const html = /html/i.test(type) || /^\s*</.test(answer.body.toString('latin1'))
    return { rule: 'spa-fallback', status: 'fail', evidence: `200 ${type} for the missing ${where}${html ? ': an HTML page where a module was asked, compiled as wasm it fails with a magic-word error, not a 404' : ''}` }
  }
  return { rule: 'spa-fallback', status: 'warn', evidence: `${answer.status} for the missing ${where} (expected 404)` }
}
