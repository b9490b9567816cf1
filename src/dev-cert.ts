/**
 * The development certificate behind `--https`, trusted once: made on the first start and kept per
 * user, outside any served root (`$XDG_STATE_HOME/wasm-serve`, else `~/.local/state/wasm-serve`, per
 * the XDG Base Directory spec: https://specifications.freedesktop.org/basedir-spec/latest/), then
 * reused until it nears its end, so a browser's trust (or exception) survives restarts. With mkcert on
 * PATH and its CA made (`mkcert -install`, https://github.com/FiloSottile/mkcert) the certificate
 * comes from that CA, which the system and browsers already trust; otherwise it is self-signed (EC
 * P-256) and wasm-serve prints how to trust it.
 */
import { spawnSync } from 'node:child_process'
import { createHash, createPrivateKey, X509Certificate } from 'node:crypto'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { homedir } from 'node:os'
import { isIP } from 'node:net'
import { isAbsolute, join } from 'node:path'
import { writeAtomic } from './atomic-write.js'
import { TlsError } from './start-errors.js'

/** The names every development certificate covers: what a browser on this machine calls it. */
export const DEV_HOSTS = { dns: ['localhost'], ips: ['127.0.0.1', '::1'] } as const
/**
 * A self-signed certificate lives a year: long enough to trust once, and within the 398 days Apple
 * and Chrome accept for a TLS server certificate (https://support.apple.com/en-us/102028).
 */
const SELF_SIGNED_DAYS = 365
/** Made anew when it would expire within this: a start never serves a certificate about to lapse. */
const RENEW_WITHIN_MS = 7 * 24 * 3600 * 1000

export interface DevCert {
  cert: string
  key: string
  certFile: string
  /** Whether this start made it (false: reused from an earlier start). */
  made: boolean
  issuer: 'self-signed' | 'mkcert'
  validTo: Date
}

/** `$XDG_STATE_HOME/wasm-serve` (only an absolute XDG_STATE_HOME counts, as the spec says), else `~/.local/state/wasm-serve`. */
export function devCertDir (env: NodeJS.ProcessEnv, home = homedir()): string {
  const state = env.XDG_STATE_HOME
  return join(state !== undefined && isAbsolute(state) ? state : join(home, '.local', 'state'), 'wasm-serve')
}

export interface DevCertOptions {
  now?: Date
  /**
   * Names other machines reach this one by, beyond localhost: the LAN addresses of a server bound to
   * 0.0.0.0, or the host it was bound to. A kept certificate that lacks one is made anew with it.
   */
  hosts?: readonly string[]
  /** The mkcert command to use, or null for none; default: `mkcert` when on PATH with a CA. */
  mkcert?: string | null
}

/** The stored certificate while it is usable, else a new one, stored. */
export async function devCertificate (dir: string, opts: DevCertOptions = {}): Promise<DevCert> {
  const now = opts.now ?? new Date()
  const certFile = join(dir, 'dev-cert.pem')
  const keyFile = join(dir, 'dev-key.pem')
  const mkcert = opts.mkcert === undefined ? findMkcert() : opts.mkcert
  const names = namesFor(opts.hosts ?? [])
  ensurePrivateDir(dir)
  const stored = readUsable(certFile, keyFile, now, names)
  // A self-signed one is replaced once mkcert can make a trusted one.
  if (stored !== undefined && !(stored.issuer === 'self-signed' && mkcert !== null)) return { ...stored, certFile, made: false }
  const made = mkcert !== null ? fromMkcert(mkcert, dir, names) : await selfSigned(now, names)
  await writeAtomic(keyFile, Buffer.from(made.key), { mode: 0o600 })
  await writeAtomic(certFile, Buffer.from(made.cert), { mode: 0o644 })
  const x509 = new X509Certificate(made.cert)
  return { ...made, certFile, made: true, issuer: mkcert !== null ? 'mkcert' : 'self-signed', validTo: new Date(x509.validTo) }
}

/** The directory holds a private key: this user's alone (0700), refused when someone else owns it. */
function ensurePrivateDir (dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  const stats = statSync(dir)
  if (!stats.isDirectory()) throw new TlsError(`${dir} is not a directory: cannot keep the development certificate there`, { option: '/https', value: dir })
  const uid = process.getuid?.()
  if (uid !== undefined && stats.uid !== uid) throw new TlsError(`${dir} belongs to another user: cannot keep the development certificate there`, { option: '/https', value: dir })
  if ((stats.mode & 0o077) !== 0) chmodSync(dir, 0o700)
}

interface Names { dns: readonly string[], ips: readonly string[] }

/** localhost, 127.0.0.1 and ::1, then the extra hosts, IP addresses apart from DNS names. */
function namesFor (hosts: readonly string[]): Names {
  const extra = hosts.map(h => h.replace(/^\[|\]$/g, '')).filter(h => h !== '')
  return {
    dns: [...new Set([...DEV_HOSTS.dns, ...extra.filter(h => isIP(h) === 0)])],
    ips: [...new Set([...DEV_HOSTS.ips, ...extra.filter(h => isIP(h) !== 0)])],
  }
}

/** The stored pair when it parses, matches, names every host asked for and is not about to expire. */
function readUsable (certFile: string, keyFile: string, now: Date, names: Names): Omit<DevCert, 'certFile' | 'made'> | undefined {
  try {
    const cert = readFileSync(certFile, 'utf8')
    const key = readFileSync(keyFile, 'utf8')
    const x509 = new X509Certificate(cert)
    const validTo = new Date(x509.validTo)
    if (new Date(x509.validFrom) > now || validTo.getTime() - now.getTime() < RENEW_WITHIN_MS) return undefined
    if (!x509.checkPrivateKey(createPrivateKey(key))) return undefined
    if (names.dns.some(h => x509.checkHost(h) === undefined) || names.ips.some(ip => x509.checkIP(ip) === undefined)) return undefined
    // Signed by its own key (checkIssued would say no: a leaf's key usage does not include signing certificates).
    const selfSigned = x509.issuer === x509.subject && x509.verify(x509.publicKey)
    return { cert, key, validTo, issuer: selfSigned ? 'self-signed' : 'mkcert' }
  } catch {
    return undefined // missing, unreadable or corrupt: made anew
  }
}

async function selfSigned (now: Date, names: Names): Promise<{ cert: string, key: string }> {
  // Loaded only here: the X.509 stack behind selfsigned is not needed to serve plain HTTP or a given certificate.
  const { generate } = await import('selfsigned')
  const notAfterDate = new Date(now.getTime() + SELF_SIGNED_DAYS * 24 * 3600 * 1000)
  const pems = await generate([{ name: 'commonName', value: 'localhost' }, { name: 'organizationName', value: 'wasm-serve development' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    notBeforeDate: now,
    notAfterDate,
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: [...names.dns.map(value => ({ type: 2 as const, value })), ...names.ips.map(ip => ({ type: 7 as const, ip }))] },
    ],
  })
  return { cert: pems.cert, key: pems.private }
}

/** `mkcert` when it is on PATH and its CA exists (`mkcert -CAROOT` names a directory holding rootCA.pem). */
export function findMkcert (command = 'mkcert'): string | null {
  const caroot = spawnSync(command, ['-CAROOT'], { encoding: 'utf8', timeout: 5000 })
  if (caroot.status !== 0) return null
  return existsSync(join(caroot.stdout.trim(), 'rootCA.pem')) ? command : null
}

function fromMkcert (command: string, dir: string, names: Names): { cert: string, key: string } {
  const work = mkdtempSync(join(dir, '.mkcert-'))
  try {
    const certFile = join(work, 'cert.pem')
    const keyFile = join(work, 'key.pem')
    const run = spawnSync(command, ['-cert-file', certFile, '-key-file', keyFile, ...names.dns, ...names.ips], { encoding: 'utf8', timeout: 30_000 })
    if (run.status !== 0) throw new TlsError(`mkcert could not make the development certificate: ${(run.stderr || run.error?.message || '').trim().split('\n').pop() ?? ''}`, { option: '/https', value: command })
    return { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') }
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}

/** Chrome's `--ignore-certificate-errors-spki-list` value: base64 of the SHA-256 of the public key (SPKI). */
export function spkiHash (cert: string): string {
  const der = new X509Certificate(cert).publicKey.export({ type: 'spki', format: 'der' })
  return createHash('sha256').update(der).digest('base64')
}

/** How to trust a self-signed development certificate once, per platform; lines without newlines. */
export function trustAdvice (cert: DevCert, fingerprint256: string): string[] {
  const file = cert.certFile
  const quoted = `'${file.replace(/'/g, "'\\''")}'`
  return [
    `the development certificate is self-signed; trust it once and it is reused until ${cert.validTo.toISOString().slice(0, 10)}: ${file}`,
    `  SHA-256 ${fingerprint256}`,
    `  Linux (Chrome, Chromium): certutil -d sql:$HOME/.pki/nssdb -A -t "P,," -n wasm-serve -i ${quoted}`,
    `  macOS: security add-trusted-cert -r trustAsRoot -k ~/Library/Keychains/login.keychain-db ${quoted}`,
    '  Firefox: accept the warning once ("Accept the Risk and Continue" keeps an exception for this certificate)',
    `  Chrome for one run: --ignore-certificate-errors-spki-list=${spkiHash(cert.cert)}`,
    '  Or install mkcert and run `mkcert -install`: the next start makes the certificate with its trusted CA',
  ]
}
