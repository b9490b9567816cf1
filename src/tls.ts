/**
 * HTTPS for the CLI and Docker: the user's certificate, or one for local development, for
 * localhost/127.0.0.1/::1: kept per user and reused across starts (dev-cert.ts) when the CLI names
 * where, else made for this process alone (selfsigned, EC P-256, 30 days). HTTP/2 matters
 * here, not only TLS: Chrome honours 103 Early Hints only over HTTP/2, and sends br only to secure
 * origins (rules: docs/delivery.md).
 */
import { readFile } from 'node:fs/promises'
import { X509Certificate } from 'node:crypto'
import type { ResolvedOptions } from './options.js'
import { TlsError } from './start-errors.js'
import { devCertificate, type DevCert } from './dev-cert.js'

export interface TlsMaterial {
  cert: string
  key: string
  fingerprint256: string
  selfSigned: boolean
  /** The kept development certificate this came from (`https: true` with a store). */
  dev?: DevCert
  /** Why the development certificate could not be kept (it was made for this process alone). */
  notKept?: string
}

/**
 * `https: true` keeps its certificate in `devStore` (the CLI passes devCertDir()), naming `hosts` too
 * (the addresses other machines use); without a store it lasts one process.
 */
export async function loadTls (https: ResolvedOptions['https'], devStore?: string, hosts: readonly string[] = []): Promise<TlsMaterial | undefined> {
  if (https === false) return undefined
  if (https === true && devStore !== undefined) {
    try {
      const dev = await devCertificate(devStore, { hosts })
      return { cert: dev.cert, key: dev.key, fingerprint256: new X509Certificate(dev.cert).fingerprint256, selfSigned: dev.issuer === 'self-signed', dev }
    } catch (err) {
      if (err instanceof TlsError) throw err
      // A read-only home (a container): serve anyway, on a certificate for this process alone.
      return { ...(await loadTls(true))!, notKept: `cannot keep the development certificate in ${devStore} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})` }
    }
  }
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
