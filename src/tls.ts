/**
 * HTTPS for the CLI and Docker: the user's certificate, or a self-signed one for local development
 * (made with `selfsigned`, EC P-256, valid 30 days, for localhost/127.0.0.1/::1). HTTP/2 matters
 * here, not only TLS: Chrome honours 103 Early Hints only over HTTP/2, and sends br only to secure
 * origins (rules: docs/delivery.md).
 */
import { readFile } from 'node:fs/promises'
import { X509Certificate } from 'node:crypto'
import type { ResolvedOptions } from './options.js'
import { TlsError } from './start-errors.js'

export interface TlsMaterial { cert: string, key: string, fingerprint256: string, selfSigned: boolean }

export async function loadTls (https: ResolvedOptions['https']): Promise<TlsMaterial | undefined> {
  if (https === false) return undefined
  if (https === true) {
    // Loaded only here: the X.509 stack behind selfsigned is not needed to serve plain HTTP or a given certificate.
    const { generate } = await import('selfsigned')
    const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
      keyType: 'ec',
      algorithm: 'sha256',
      days: 30,
      extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }, { type: 7, ip: '::1' }] }],
    } as Parameters<typeof import('selfsigned').generate>[1])
    return { cert: pems.cert, key: pems.private, fingerprint256: new X509Certificate(pems.cert).fingerprint256, selfSigned: true }
  }
  const certAbout = { option: '/https/cert', value: https.cert }
  const cert = await readFile(https.cert, 'utf8').catch(() => { throw new TlsError(`cannot read the TLS certificate ${https.cert}`, certAbout) })
  const key = await readFile(https.key, 'utf8').catch(() => { throw new TlsError(`cannot read the TLS key ${https.key}`, { option: '/https/key', value: https.key }) })
  let fingerprint256: string
  try { fingerprint256 = new X509Certificate(cert).fingerprint256 } catch { throw new TlsError(`${https.cert} is not a PEM certificate`, certAbout) }
  return { cert, key, fingerprint256, selfSigned: false }
}
