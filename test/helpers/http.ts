/**
 * One HTTP/1.1 request over undici with the whole body read, for tests that compare bodies byte for
 * byte and headers by name. (raw-http.ts is for request targets undici would normalise.)
 */
import { request } from 'undici'

export type Method = 'GET' | 'HEAD' | 'OPTIONS'
/** A header given as undefined is not sent (undici skips it), so a test can spread optional ones. */
export type RequestHeaders = Record<string, string | undefined>

export interface Got {
  status: number
  /** By lower-case name; a header sent more than once is joined with ", " (RFC 9110 §5.3), as raw-http.ts does. */
  headers: Record<string, string | undefined>
  body: Buffer
}

export interface GetOptions {
  headers?: RequestHeaders
  method?: Method
  /** For the headers and again for the body; undici's default is 300 s, as long as a whole tap file. */
  timeoutMs?: number
}

export function get (url: string, headers: RequestHeaders = {}, method: Method = 'GET'): Promise<Got> {
  return getWith(url, { headers, method })
}

/** The same with a timeout, where a hang (a Content-Length the body never reaches) is the failure to catch. */
export async function getWith (url: string, { headers = {}, method = 'GET', timeoutMs }: GetOptions = {}): Promise<Got> {
  const res = await request(url, { method, headers, headersTimeout: timeoutMs, bodyTimeout: timeoutMs })
  const body = Buffer.from(await res.body.arrayBuffer())
  const joined: Record<string, string | undefined> = {}
  for (const [name, value] of Object.entries(res.headers)) joined[name] = Array.isArray(value) ? value.join(', ') : value
  return { status: res.statusCode, headers: joined, body }
}
