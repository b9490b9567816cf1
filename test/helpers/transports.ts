/**
 * The ways a browser reaches the server the CLI runs: HTTP/1.1 in the clear, and over TLS HTTP/2 or,
 * for a client that offers only HTTP/1.1, HTTP/1.1 on the same port (ALPN fallback). A delivery rule
 * holds on each, so a test states it once, as a loop over TRANSPORTS.
 */
import http2, { type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2'
import { Agent } from 'undici'
import { loadTls, type TlsMaterial } from '../../src/tls.js'
import type { WasmServeOptions } from '../../src/options.js'
import { get, getWith, type Got, type Headers, type Method, type RequestHeaders } from './http.js'
import { startCliApp, type Running } from './server.js'

interface Teardown { teardown: (fn: () => unknown) => void }

/** A running server and a client for it: `get` takes a path, as a page's fetch would. */
export interface Client {
  server: Running
  get: (path: string, headers?: RequestHeaders, method?: Method) => Promise<Got>
}

export interface Transport {
  name: 'HTTP/1.1' | 'HTTP/1.1 over TLS' | 'HTTP/2'
  start: (t: Teardown, options: WasmServeOptions & { root: string }) => Promise<Client>
}

let tls: Promise<TlsMaterial> | undefined
/** One self-signed certificate for every HTTP/2 server of a test file. */
export function selfSigned (): Promise<TlsMaterial> {
  tls ??= loadTls(true).then(material => material!)
  return tls
}

export const TRANSPORTS: Transport[] = [
  {
    name: 'HTTP/1.1',
    async start (t, options) {
      const server = await startCliApp(t, options)
      return { server, get: (path, headers = {}, method = 'GET') => get(server.url + path, headers, method) }
    },
  },
  {
    name: 'HTTP/1.1 over TLS',
    async start (t, options) {
      const server = await startCliApp(t, options, await selfSigned())
      // undici offers only http/1.1 in its TLS handshake: the HTTP/2 server answers it in HTTP/1.1.
      const dispatcher = new Agent({ connect: { rejectUnauthorized: false } })
      t.teardown(() => dispatcher.close())
      return { server, get: (path, headers = {}, method = 'GET') => getWith(server.url + path, { headers, method, dispatcher }) }
    },
  },
  {
    name: 'HTTP/2',
    async start (t, options) {
      const server = await startCliApp(t, options, await selfSigned())
      const session = connectH2(t, server.url)
      return { server, get: (path, headers = {}, method = 'GET') => h2get(session, path, headers, method) }
    },
  },
]

/** An HTTP/2 session that accepts the self-signed certificate, closed when `t` ends. */
export function connectH2 (t: Teardown, url: string): ClientHttp2Session {
  const session = http2.connect(url, { rejectUnauthorized: false })
  session.on('error', () => {})
  t.teardown(() => session.close())
  return session
}

/** One request on an HTTP/2 session, read whole, with headers shaped as helpers/http.ts shapes them. */
export function h2get (session: ClientHttp2Session, path: string, headers: RequestHeaders = {}, method: Method = 'GET'): Promise<Got> {
  return new Promise((resolve, reject) => {
    const sent = Object.fromEntries(Object.entries(headers).filter(([, value]) => value !== undefined))
    const stream = session.request({ ':method': method, ':path': path, ...sent })
    const informational: Got['informational'] = []
    const chunks: Buffer[] = []
    let response: IncomingHttpHeaders | undefined
    stream.on('headers', h => informational.push({ status: Number(h[':status']), headers: flatten(h) }))
    stream.on('response', h => { response = h })
    stream.on('data', (chunk: Buffer) => chunks.push(chunk))
    stream.on('error', reject)
    stream.on('end', () => {
      if (response === undefined) return reject(new Error(`no response for ${path}`))
      resolve({ status: Number(response[':status']), headers: flatten(response), body: Buffer.concat(chunks), informational })
    })
    stream.end()
  })
}

/** Headers by lower-case name, a repeated one joined with ", "; pseudo-headers (":status") left out. */
function flatten (headers: IncomingHttpHeaders): Headers {
  const flat: Headers = {}
  for (const [name, value] of Object.entries(headers)) {
    if (!name.startsWith(':') && value !== undefined) flat[name] = Array.isArray(value) ? value.join(', ') : String(value)
  }
  return flat
}
