/**
 * The container's HEALTHCHECK: `node dist/healthcheck.js` asks the running server's GET /healthz and
 * exits 0 on 2xx, 1 otherwise (Docker's contract), printing the answer, which `docker inspect` keeps
 * (so the reason of a 503, "empty" or "missing", is there for the operator).
 *
 * The port can come from --port, PORT, WASM_SERVE_PORT or the config file, and a taken port moves to
 * the next one; none of these is visible to a HEALTHCHECK command. So the server, once bound, writes
 * the URL it answers on to the file named by WASM_SERVE_ADDRESS_FILE (the image sets it), and this
 * check reads it; without the file it falls back to WASM_SERVE_PORT, PORT, then 8080.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import { request as httpsRequest } from 'node:https'
import type { AddressInfo } from 'node:net'
import { pathToFileURL } from 'node:url'

export const ADDRESS_FILE_ENV = 'WASM_SERVE_ADDRESS_FILE'
const TIMEOUT_MS = 4000

/** Where a client on this host reaches a server bound to `host`: loopback for a wildcard address. */
function connectHost (host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1'
  if (host === '::') return '[::1]'
  return host.includes(':') ? `[${host}]` : host
}

/** Writes the bound URL where WASM_SERVE_ADDRESS_FILE says; a failure is a warning (the check then falls back to PORT). */
export function publishAddress (input: { address: AddressInfo | string | null, host: string, tls: boolean, env: NodeJS.ProcessEnv }): string | undefined {
  const file = input.env[ADDRESS_FILE_ENV]
  if (file === undefined || file === '' || input.address === null || typeof input.address === 'string') return undefined
  const url = `${input.tls ? 'https' : 'http'}://${connectHost(input.host)}:${input.address.port}`
  try {
    writeFileSync(file, url + '\n')
  } catch (err) {
    process.stderr.write(`wasm-serve: warning: cannot write ${ADDRESS_FILE_ENV}=${file} (${(err as Error).message}); the health check falls back to PORT\n`)
    return undefined
  }
  return url
}

/** The URL the check asks: the published one, else the port from the environment. */
export function healthUrl (env: NodeJS.ProcessEnv): string {
  const file = env[ADDRESS_FILE_ENV]
  let base: string | undefined
  try {
    if (file !== undefined && file !== '') base = readFileSync(file, 'utf8').trim()
  } catch {}
  base ??= `http://127.0.0.1:${env.WASM_SERVE_PORT || env.PORT || 8080}`
  return `${base}/healthz`
}

/** GET the URL: the status and the body, or the error. A self-signed certificate is accepted: this is the server's own loopback. */
export async function check (url: string): Promise<{ ok: boolean, line: string }> {
  const request = url.startsWith('https:') ? httpsRequest : httpRequest
  return new Promise(resolve => {
    const req = request(url, { rejectUnauthorized: false, timeout: TIMEOUT_MS }, res => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { body += chunk })
      res.on('end', () => resolve({ ok: res.statusCode !== undefined && res.statusCode >= 200 && res.statusCode < 300, line: `${url}: ${res.statusCode ?? '?'} ${body}` }))
    })
    req.on('timeout', () => req.destroy(new Error(`no answer within ${TIMEOUT_MS} ms`)))
    req.on('error', err => resolve({ ok: false, line: `${url}: ${err.message}` }))
    req.end()
  })
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const result = await check(healthUrl(process.env))
  process.stdout.write(result.line + '\n')
  process.exitCode = result.ok ? 0 : 1
}
