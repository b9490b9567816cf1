/**
 * HTTP/1.1 over a bare socket, so a request target reaches the server byte for byte (undici and
 * fetch normalise `..`, backslashes and some escapes before sending).
 */
import { connect } from 'node:net'

export interface RawResponse {
  status: number
  headers: Record<string, string>
  body: Buffer
  /** The connection ended before a complete response arrived (reset or closed early). */
  incomplete: boolean
}

export interface RawRequest {
  port: number
  target: string
  method?: string
  headers?: Record<string, string>
  timeoutMs?: number
}

export function rawRequest (req: RawRequest): Promise<RawResponse> {
  const head = [`${req.method ?? 'GET'} ${req.target} HTTP/1.1`, 'Host: 127.0.0.1', 'Connection: close']
  for (const [name, value] of Object.entries(req.headers ?? {})) head.push(`${name}: ${value}`)
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    const socket = connect({ host: '127.0.0.1', port: req.port })
    socket.setTimeout(req.timeoutMs ?? 5000, () => socket.destroy(new Error(`no response to ${req.target.slice(0, 80)} within the timeout`)))
    socket.on('data', (chunk: Buffer) => chunks.push(chunk))
    let settled = false
    const finish = (err?: Error) => {
      if (settled) return
      settled = true
      const data = Buffer.concat(chunks)
      // A server may answer and close while a huge request is still being written (EPIPE/ECONNRESET).
      if (err !== undefined && data.length === 0) return reject(err)
      try { resolve(parse(data)) } catch (parseError) { reject(parseError) }
    }
    socket.on('error', finish)
    socket.on('close', () => finish())
    socket.write(Buffer.from(head.join('\r\n') + '\r\n\r\n', 'latin1'))
  })
}

function parse (data: Buffer): RawResponse {
  const end = data.indexOf('\r\n\r\n')
  if (end === -1) throw new Error(`no complete response head in ${data.length} bytes: ${JSON.stringify(data.toString('latin1').slice(0, 200))}`)
  const [statusLine = '', ...lines] = data.subarray(0, end).toString('latin1').split('\r\n')
  const match = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine)
  if (match === null) throw new Error(`bad status line ${JSON.stringify(statusLine)}`)
  const headers: Record<string, string> = {}
  for (const line of lines) {
    const colon = line.indexOf(':')
    const name = line.slice(0, colon).trim().toLowerCase()
    const value = line.slice(colon + 1).trim()
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value
  }
  let body = data.subarray(end + 4)
  let incomplete = false
  if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
    const decoded = dechunk(body)
    body = decoded.body
    incomplete = !decoded.complete
  } else if (headers['content-length'] !== undefined) {
    const length = Number(headers['content-length'])
    incomplete = body.length < length
  }
  return { status: Number(match[1]), headers, body, incomplete }
}

function dechunk (data: Buffer): { body: Buffer, complete: boolean } {
  const parts: Buffer[] = []
  let at = 0
  for (;;) {
    const lineEnd = data.indexOf('\r\n', at)
    if (lineEnd === -1) return { body: Buffer.concat(parts), complete: false }
    const size = parseInt(data.subarray(at, lineEnd).toString('latin1'), 16)
    if (Number.isNaN(size)) return { body: Buffer.concat(parts), complete: false }
    if (size === 0) return { body: Buffer.concat(parts), complete: true }
    parts.push(data.subarray(lineEnd + 2, lineEnd + 2 + size))
    at = lineEnd + 2 + size + 2
  }
}
