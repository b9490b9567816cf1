/**
 * One HTTP/1.1 request over undici with the whole body read, for tests that compare bodies byte for
 * byte and headers by name. (raw-http.ts is for request targets undici would normalise.)
 */
import { request, type Dispatcher } from 'undici'

export type Method = 'GET' | 'HEAD' | 'OPTIONS'
/** A header given as undefined is not sent (undici skips it), so a test can spread optional ones. */
export type RequestHeaders = Record<string, string | undefined>
/** By lower-case name; a header sent more than once is joined with ", " (RFC 9110 §5.3), as raw-http.ts does. */
export type Headers = Record<string, string | undefined>

export interface Got {
  status: number
  headers: Headers
  body: Buffer
  /** The 1xx responses (103 Early Hints) that came before this one, in order. */
  informational: Array<{ status: number, headers: Headers }>
}

export interface GetOptions {
  headers?: RequestHeaders
  method?: Method
  /** For the headers and again for the body; undici's default is 300 s, as long as a whole tap file. */
  timeoutMs?: number
  /** Another undici dispatcher than the global one (e.g. one that accepts a self-signed certificate). */
  dispatcher?: Dispatcher
}

export function get (url: string, headers: RequestHeaders = {}, method: Method = 'GET'): Promise<Got> {
  return getWith(url, { headers, method })
}

/** The same with a timeout, where a hang (a Content-Length the body never reaches) is the failure to catch. */
export async function getWith (url: string, { headers = {}, method = 'GET', timeoutMs, dispatcher }: GetOptions = {}): Promise<Got> {
  const informational: Got['informational'] = []
  const onInfo = (info: { statusCode: number, headers: Record<string, string | string[]> }) => { informational.push({ status: info.statusCode, headers: joined(info.headers) }) }
  const res = await request(url, { method, headers, headersTimeout: timeoutMs, bodyTimeout: timeoutMs, onInfo, dispatcher })
  const body = Buffer.from(await res.body.arrayBuffer())
  return { status: res.statusCode, headers: joined(res.headers), body, informational }
}

function joined (headers: Record<string, string | string[] | undefined>): Headers {
  const flat: Headers = {}
  for (const [name, value] of Object.entries(headers)) flat[name] = Array.isArray(value) ? value.join(', ') : value
  return flat
}

/**
 * Reads the rest of a body already being iterated (a stalled download let go): every byte, after the
 * `chunks` already read, and the error that cut it short, if one did.
 */
export async function readRest (body: AsyncIterator<Buffer>, chunks: Buffer[]): Promise<{ received: Buffer, error: unknown }> {
  let error: unknown
  try {
    for (let next = await body.next(); next.done !== true; next = await body.next()) chunks.push(next.value)
  } catch (err) { error = err }
  return { received: Buffer.concat(chunks), error }
}
