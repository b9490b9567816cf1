// `--https` trusted once (docs/delivery.md §1 CLI): the development certificate is kept per user,
// outside any root, and reused until it nears its end; a corrupt, mismatched or expiring one is made
// anew; mkcert's CA is used when present. Real files in temp state directories, real TLS handshakes
// with the spawned CLI; mkcert is stood in for by a script that signs with an openssl-made CA.
import t, { type Test } from 'tap'
import { spawnSync } from 'node:child_process'
import { createPrivateKey, generateKeyPairSync, X509Certificate } from 'node:crypto'
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { connect as tlsConnect } from 'node:tls'
import { devCertDir, devCertificate, findMkcert, spkiHash, trustAdvice } from '../src/dev-cert.js'
import { serveCli } from './helpers/cli.js'
import { makeSite, tempDir } from './helpers/site.js'

const DAY = 24 * 3600 * 1000

/** The certificate the server at `url` presents. */
function servedCertificate (url: string): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port: Number(new URL(url).port), rejectUnauthorized: false, ALPNProtocols: ['h2'] }, () => {
      resolve(socket.getPeerX509Certificate()!)
      socket.end()
    })
    socket.on('error', reject)
  })
}

t.test('the state directory: XDG_STATE_HOME when absolute, else ~/.local/state', async t => {
  t.equal(devCertDir({ XDG_STATE_HOME: '/var/state' }, '/home/u'), '/var/state/wasm-serve')
  t.equal(devCertDir({ XDG_STATE_HOME: 'relative' }, '/home/u'), '/home/u/.local/state/wasm-serve', 'a relative path is ignored, as the XDG spec says')
  t.equal(devCertDir({}, '/home/u'), '/home/u/.local/state/wasm-serve')
})

t.test('made once, kept with a private key (0600) in a private directory (0700), then reused', async t => {
  const dir = join(tempDir(t, 'state'), 'wasm-serve')
  const first = await devCertificate(dir, { mkcert: null })
  t.equal(first.made, true)
  t.equal(first.issuer, 'self-signed')
  t.equal(statSync(dir).mode & 0o777, 0o700, 'directory 0700')
  t.equal(statSync(join(dir, 'dev-key.pem')).mode & 0o777, 0o600, 'key 0600')
  t.equal(first.certFile, join(dir, 'dev-cert.pem'))
  const x509 = new X509Certificate(readFileSync(first.certFile, 'utf8'))
  t.ok(x509.checkHost('localhost') !== undefined && x509.checkIP('127.0.0.1') !== undefined && x509.checkIP('::1') !== undefined, 'names localhost, 127.0.0.1 and ::1')
  t.ok(x509.checkPrivateKey(createPrivateKey(readFileSync(join(dir, 'dev-key.pem'), 'utf8'))), 'the key on disk is the certificate\'s')
  const days = (new Date(x509.validTo).getTime() - new Date(x509.validFrom).getTime()) / DAY
  t.ok(days >= 364 && days <= 366, `valid a year (${days} days)`)
  const second = await devCertificate(dir, { mkcert: null })
  t.equal(second.made, false, 'reused')
  t.equal(second.cert, first.cert)
  t.equal(second.key, first.key)
})

t.test('the LAN addresses a wildcard bind is reached by are named too; a kept certificate without one is made anew', async t => {
  const dir = join(tempDir(t, 'state'), 'wasm-serve')
  const lan = await devCertificate(dir, { mkcert: null, hosts: ['192.168.1.20', 'devbox.local'] })
  const x509 = new X509Certificate(lan.cert)
  t.ok(x509.checkIP('192.168.1.20') !== undefined, 'the LAN address')
  t.ok(x509.checkHost('devbox.local') !== undefined, 'a host name')
  t.ok(x509.checkHost('localhost') !== undefined && x509.checkIP('::1') !== undefined, 'and still localhost')
  t.equal((await devCertificate(dir, { mkcert: null, hosts: ['192.168.1.20'] })).made, false, 'reused while it names every host asked for')
  t.equal((await devCertificate(dir, { mkcert: null })).made, false, 'and for localhost alone')
  const moved = await devCertificate(dir, { mkcert: null, hosts: ['10.0.0.7'] })
  t.equal(moved.made, true, 'a new address: made anew')
  t.ok(new X509Certificate(moved.cert).checkIP('10.0.0.7') !== undefined)
})

t.test('made anew when about to expire, corrupt, or when the key does not match; a loose directory is made private', async t => {
  const dir = join(tempDir(t, 'state'), 'wasm-serve')
  const first = await devCertificate(dir, { mkcert: null })
  const nearEnd = new Date(first.validTo.getTime() - 3 * DAY)
  const renewed = await devCertificate(dir, { mkcert: null, now: nearEnd })
  t.equal(renewed.made, true, 'three days before its end it is replaced')
  t.not(renewed.cert, first.cert)
  t.ok(renewed.validTo.getTime() > first.validTo.getTime(), 'the new one lasts longer')

  writeFileSync(join(dir, 'dev-cert.pem'), '-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n')
  const fromCorrupt = await devCertificate(dir, { mkcert: null })
  t.equal(fromCorrupt.made, true, 'a corrupt certificate is replaced')
  t.doesNotThrow(() => new X509Certificate(readFileSync(join(dir, 'dev-cert.pem'))), 'with one that parses')

  const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' })
  writeFileSync(join(dir, 'dev-key.pem'), other)
  const fromMismatch = await devCertificate(dir, { mkcert: null })
  t.equal(fromMismatch.made, true, 'a key that is not the certificate\'s is replaced with the pair')
  t.not(fromMismatch.key, other)

  chmodSync(dir, 0o755)
  const again = await devCertificate(dir, { mkcert: null })
  t.equal(again.made, false)
  t.equal(statSync(dir).mode & 0o777, 0o700, 'the directory is made 0700 again')
})

t.test('the trust advice names the file, the fingerprint, each platform\'s command and Chrome\'s SPKI hash', async t => {
  const dir = join(tempDir(t, 'state'), 'wasm-serve')
  const cert = await devCertificate(dir, { mkcert: null })
  const fingerprint = new X509Certificate(cert.cert).fingerprint256
  const advice = trustAdvice(cert, fingerprint).join('\n')
  t.match(advice, cert.certFile)
  t.match(advice, `SHA-256 ${fingerprint}`)
  t.match(advice, `certutil -d sql:$HOME/.pki/nssdb -A -t "P,," -n wasm-serve -i '${cert.certFile}'`)
  t.match(advice, `security add-trusted-cert -r trustAsRoot -k ~/Library/Keychains/login.keychain-db '${cert.certFile}'`)
  t.match(advice, `--ignore-certificate-errors-spki-list=${spkiHash(cert.cert)}`)
  t.match(spkiHash(cert.cert), /^[A-Za-z0-9+/]{43}=$/, 'base64 of 32 bytes')
})

/** A stand-in for mkcert: `-CAROOT` names a directory holding an openssl-made CA, anything else signs a certificate with it. */
function fakeMkcert (t: Test): string | undefined {
  if (spawnSync('openssl', ['version'], { stdio: 'ignore' }).status !== 0) return undefined
  const base = tempDir(t, 'mkcert')
  const caroot = join(base, 'caroot')
  mkdirSync(caroot)
  const ca = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(caroot, 'rootCA-key.pem'), '-out', join(caroot, 'rootCA.pem'), '-subj', '/CN=fake mkcert CA', '-days', '30', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign'], { stdio: 'ignore' })
  if (ca.status !== 0) return undefined
  const script = join(base, 'mkcert')
  writeFileSync(script, `#!/bin/sh
[ "$1" = "-CAROOT" ] && { echo '${caroot}'; exit 0; }
cert=$2; key=$4
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$key" -subj /CN=localhost -out "$cert.csr" 2>/dev/null || exit 1
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\\n' > "$cert.ext"
openssl x509 -req -in "$cert.csr" -CA '${caroot}/rootCA.pem' -CAkey '${caroot}/rootCA-key.pem' -CAcreateserial -days 30 -extfile "$cert.ext" -out "$cert" 2>/dev/null
`)
  chmodSync(script, 0o755)
  return script
}

t.test('with mkcert and its CA, the certificate comes from that CA, is reused, and replaces a self-signed one', async t => {
  const mkcert = fakeMkcert(t)
  if (mkcert === undefined) return t.skip('openssl is not installed: no CA to stand in for mkcert\'s', () => {})
  t.equal(findMkcert(mkcert), mkcert, 'found: -CAROOT names a directory with rootCA.pem')
  t.equal(findMkcert(join(tempDir(t, 'none'), 'mkcert')), null, 'a missing command is none')
  const dir = join(tempDir(t, 'state'), 'wasm-serve')
  const selfSigned = await devCertificate(dir, { mkcert: null })
  const trusted = await devCertificate(dir, { mkcert })
  t.equal(trusted.made, true, 'the self-signed one is replaced once mkcert can do better')
  t.equal(trusted.issuer, 'mkcert')
  t.not(trusted.cert, selfSigned.cert)
  t.equal(new X509Certificate(trusted.cert).issuer, 'CN=fake mkcert CA')
  t.equal(statSync(join(dir, 'dev-key.pem')).mode & 0o777, 0o600, 'its key kept 0600 too')
  const reused = await devCertificate(dir, { mkcert })
  t.equal(reused.made, false, 'then reused')
  t.equal(reused.cert, trusted.cert)
})

t.test('the CLI: two starts with --https present the same certificate; how to trust it is printed when it is made', async t => {
  const site = makeSite(t, { 'index.html': '<!doctype html>' })
  // An empty PATH: no mkcert, so the self-signed path (node itself is spawned by its absolute path).
  const env = { XDG_STATE_HOME: tempDir(t, 'state'), PATH: tempDir(t, 'path') }
  const first = await serveCli(t, [site, '--port', '0', '--https'], { env })
  const cert = await servedCertificate(first.url)
  t.match(first.out.stderr, `SHA-256 ${cert.fingerprint256}`)
  t.match(first.out.stderr, 'certutil -d sql:$HOME/.pki/nssdb', 'how to trust it, on its first start')
  t.match(first.out.stderr, join(env.XDG_STATE_HOME, 'wasm-serve', 'dev-cert.pem'))
  first.child.kill('SIGTERM')
  await first.exited
  const second = await serveCli(t, [site, '--port', '0', '--https'], { env })
  t.equal((await servedCertificate(second.url)).fingerprint256, cert.fingerprint256, 'the same certificate after a restart')
  t.notMatch(second.out.stderr, 'certutil', 'not repeated off a terminal once made')
  t.match(second.out.stderr, `SHA-256 ${cert.fingerprint256}`, 'the fingerprint is still said')
})

t.test('the CLI: where the certificate cannot be kept it serves on one for this run, and says so', async t => {
  const site = makeSite(t, { 'index.html': '<!doctype html>' })
  const notADir = join(tempDir(t, 'state'), 'file')
  writeFileSync(notADir, '')
  const { url, out } = await serveCli(t, [site, '--port', '0', '--https'], { env: { XDG_STATE_HOME: notADir } })
  t.match(out.stderr, `wasm-serve: warning: cannot keep the development certificate in ${join(notADir, 'wasm-serve')} (ENOTDIR); this certificate lasts until the server stops`)
  t.match((await servedCertificate(url)).fingerprint256, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/, 'still serves HTTPS')
})
