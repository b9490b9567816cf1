/**
 * The HTTP client of `wasm-serve check`: node:http and node:https, not fetch, because fetch decodes
 * bodies (the checks need the encoded bytes and their length as sent) and hides 1xx responses (103
 * Early Hints arrive as 'information' events here). Each request has an idle timeout; a body is read
 * only as far as asked and the connection dropped after that, so a check never downloads a module it
 * does not need.
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http'
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https'

export interface Informational { status: number, headers: IncomingHttpHeaders }

export interface Answer {
  url: string
  status: number
  headers: IncomingHttpHeaders
  /** The first bytes of the body as sent (still encoded), up to what was asked. */
  body: Buffer
  /** Whether `body` is the whole body (false when the rest was not downloaded). */
  complete: boolean
  /** 1xx responses received before this one (103 Early Hints). */
  informational: Informational[]
}

export interface Ask {
  method?: 'GET' | 'HEAD'
  headers?: Record<string, string>
  /** Bytes of body to read before dropping the connection: 0 (default) reads none. */
  readBytes?: number
  /** Called with the byte count as a whole body is read (readBytes Infinity). */
  onBytes?: (received: number) => void
}

export interface Client {
  get: (url: string, ask?: Ask) => Promise<Answer>
  close: () => void
}

/** A request that could not be answered: timeout, refused, reset, TLS. */
export class RequestError extends Error {}

/** One client per check: keep-alive agents (closed at the end), one timeout, TLS checked or not. */
export function makeClient (options: { timeoutMs: number, insecure: boolean }): Client {
  const http = new HttpAgent({ keepAlive: true })
  const https = new HttpsAgent({ keepAlive: true, rejectUnauthorized: !options.insecure })
  return {
    get: (url, ask = {}) => send(url, ask, { timeoutMs: options.timeoutMs, http, https }),
    close: () => { http.destroy(); https.destroy() },
  }
}

interface Agents { timeoutMs: number, http: HttpAgent, https: HttpsAgent }

async function send (url: string, ask: Ask, agents: Agents): Promise<Answer> {
  const target = new URL(url)
  const secure = target.protocol === 'https:'
  const request = secure ? httpsRequest : httpRequest
  return new Promise<Answer>((resolve, reject) => {
    const informational: Informational[] = []
    const req = request(target, {
      method: ask.method ?? 'GET',
      headers: { 'user-agent': 'wasm-serve-check', ...ask.headers },
      agent: secure ? agents.https : agents.http,
    })
    // An idle timeout: no byte for timeoutMs, whether waiting for headers or in the middle of a body.
    req.setTimeout(agents.timeoutMs, () => req.destroy(new RequestError(`no response within ${agents.timeoutMs} ms`)))
    req.on('information', info => informational.push({ status: info.statusCode, headers: info.headers }))
    req.on('error', err => reject(err instanceof RequestError ? err : new RequestError(describe(err))))
    req.on('response', res => {
      const bodiless = ask.method === 'HEAD' || res.statusCode === 304 || res.statusCode === 204 || res.headers['content-length'] === '0'
      readBody(res, bodiless ? Infinity : ask.readBytes ?? 0, ask.onBytes).then(({ body, complete }) => {
        if (!complete) req.destroy()
        resolve({ url, status: res.statusCode ?? 0, headers: res.headers, body, complete, informational })
      }, err => reject(new RequestError(describe(err))))
    })
    req.end()
  })
}

/**
 * Reads up to `limit` bytes of the body; the rest is never downloaded (the caller drops the
 * connection). A response without a body (HEAD, 304) is read to its end, keeping the connection.
 */
async function readBody (res: IncomingMessage, limit: number, onBytes?: (received: number) => void): Promise<{ body: Buffer, complete: boolean }> {
  const chunks: Buffer[] = []
  let received = 0
  return new Promise((resolve, reject) => {
    const stop = (complete: boolean) => {
      res.removeAllListeners('data')
      const body = Buffer.concat(chunks)
      resolve({ body: body.subarray(0, Math.min(body.length, limit)), complete })
    }
    if (limit === 0) { res.pause(); stop(false); return }
    res.on('data', (chunk: Buffer) => {
      chunks.push(chunk)
      received += chunk.length
      onBytes?.(received)
      if (received >= limit && limit !== Infinity) stop(res.complete)
    })
    res.on('end', () => stop(true))
    res.on('aborted', () => reject(new Error('the connection closed before the body ended')))
    res.on('error', reject)
  })
}

function describe (err: unknown): string {
  const e = err as NodeJS.ErrnoException
  return e.code !== undefined ? `${e.code}${e.message.includes(e.code) ? '' : `: ${e.message}`}` : e.message
}

/** A header's value as one string (several values joined as the RFC allows), or undefined. */
export function header (headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name.toLowerCase()]
  return Array.isArray(value) ? value.join(', ') : value
}

const REDIRECTS = new Set([301, 302, 303, 307, 308])
export const MAX_REDIRECTS = 5

/**
 * A GET that follows up to five redirects, as a browser's fetch does (it allows twenty); the chain
 * walked is returned for the evidence. A loop or a sixth redirect is an error naming the chain.
 */
export async function follow (client: Client, url: string, ask: Ask = {}): Promise<{ answer: Answer, chain: string[] }> {
  const chain = [url]
  for (;;) {
    const answer = await client.get(chain.at(-1)!, ask)
    const location = header(answer.headers, 'location')
    if (!REDIRECTS.has(answer.status) || location === undefined) return { answer, chain }
    const next = new URL(location, answer.url)
    if (next.protocol !== 'http:' && next.protocol !== 'https:') throw new RequestError(`redirected to ${next.protocol} (${chain.join(' → ')})`)
    if (chain.includes(next.href)) throw new RequestError(`redirect loop: ${[...chain, next.href].join(' → ')}`)
    chain.push(next.href)
    if (chain.length > MAX_REDIRECTS + 1) throw new RequestError(`more than ${MAX_REDIRECTS} redirects: ${chain.join(' → ')}`)
  }
}
