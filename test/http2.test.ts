// HTTPS and HTTP/2: what only the TLS server shows (the delivery rules themselves run over every
// transport in http.test.ts and delivery-policy.test.ts): a body cut with an error code when its
// file changes, HTTP/2 preferred and HTTP/1.1 offered on the same port (ALPN), and the real CLI's
// `--https` and `--tls-cert`/`--tls-key`, with the certificate fingerprint it prints.
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import http2 from 'node:http2'
import { join } from 'node:path'
import { connect as tlsConnect } from 'node:tls'
import { BR, makeSite, tempDir } from './helpers/site.js'
import { runCli, serveCli } from './helpers/cli.js'
import { until } from './helpers/poll.js'
import { startCliApp } from './helpers/server.js'
import { connectH2, h2get, selfSigned } from './helpers/transports.js'

const site = makeSite(t)
const tls = await selfSigned()

/** The SHA-256 fingerprint of the certificate the server at `url` presents. */
function servedFingerprint (url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port: Number(new URL(url).port), rejectUnauthorized: false, ALPNProtocols: ['h2'] }, () => {
      resolve(socket.getPeerX509Certificate()?.fingerprint256 ?? '')
      socket.end()
    })
    socket.on('error', reject)
  })
}

t.test('a file rewritten while it streams over HTTP/2 is cut with an error, never ended short (D16)', async t => {
  const root = makeSite(t, { 'rewritten.bin': randomBytes(4 << 20) })
  const { url } = await startCliApp(t, { root, memoryBudget: 0 }, tls)
  const session = connectH2(t, url)
  const stream = session.request({ ':path': '/rewritten.bin', 'accept-encoding': 'identity' })
  let received = 0
  const outcome = new Promise<{ ended: boolean, rstCode: number | undefined }>(resolve => {
    let ended = false
    stream.on('data', (chunk: Buffer) => { received += chunk.length })
    stream.on('end', () => { ended = true })
    stream.on('error', () => {})
    stream.on('close', () => resolve({ ended, rstCode: stream.rstCode }))
  })
  // HTTP/2 flow control holds the server back while the client does not read: rewrite the file then.
  await new Promise(resolve => stream.once('data', resolve))
  stream.pause()
  // The stream's receive window used up: the server has sent all it may and waits, mid-body.
  await until(() => stream.state.localWindowSize === 0, { what: 'the server to fill the stream\'s flow-control window' })
  writeFileSync(join(root, 'rewritten.bin'), randomBytes(4 << 20))
  stream.resume()
  const { ended, rstCode } = await outcome
  t.ok(received < 4 << 20, `the response was cut (${received} of ${4 << 20} bytes)`)
  t.not(rstCode, http2.constants.NGHTTP2_NO_ERROR, `reset with an error code (${String(rstCode)}), so no client takes the bytes for a whole body`)
  t.notOk(ended, 'the stream did not end normally')
})

t.test('HTTP/2 is preferred, and HTTP/1.1 offered on the same port (ALPN fallback)', async t => {
  const { port } = await startCliApp(t, { root: site }, tls)
  const negotiated = async (ALPNProtocols: string[]) => new Promise<string | false>((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, ALPNProtocols, rejectUnauthorized: false }, () => {
      resolve(socket.alpnProtocol ?? false)
      socket.end()
    })
    socket.on('error', reject)
  })
  t.equal(await negotiated(['h2', 'http/1.1']), 'h2', 'HTTP/2 is preferred')
  t.equal(await negotiated(['http/1.1']), 'http/1.1', 'HTTP/1.1 is offered as fallback')
  // What such a client is then answered: the delivery rules over 'HTTP/1.1 over TLS' in
  // http.test.ts and delivery-policy.test.ts.
})

t.test('the CLI with --https serves HTTP/2 on a self-signed certificate and prints its fingerprint', async t => {
  const { url, out, child, exited } = await serveCli(t, [site, '--port', '0', '--https'])
  t.match(url, /^https:\/\/127\.0\.0\.1:\d+$/)
  t.match(out.stdout, /\(HTTP\/2\)/, 'says it speaks HTTP/2')
  t.match(out.stderr, /self-signed/i, 'warns that the certificate is self-signed')
  t.match(out.stderr, /SHA-256 ([0-9A-F]{2}:){31}[0-9A-F]{2}/, 'prints the SHA-256 fingerprint')
  const session = connectH2(t, url)
  const res = await h2get(session, '/sqlite3.wasm', { 'accept-encoding': 'br' })
  t.equal(res.status, 200)
  t.equal(res.headers['content-type'], 'application/wasm')
  t.equal(res.headers['content-encoding'], 'br')
  t.ok(res.body.equals(BR))
  t.equal(res.headers.connection, undefined, 'no connection-specific headers over HTTP/2')
  const fingerprint = /SHA-256 ((?:[0-9A-F]{2}:){31}[0-9A-F]{2})/.exec(out.stderr)?.[1]
  t.equal(await servedFingerprint(url), fingerprint, 'the printed fingerprint is the certificate the server presents')
  session.close()
  child.kill('SIGTERM')
  t.equal((await exited).code, 0, 'exits 0 on SIGTERM')
})

t.test('the CLI serves HTTP/2 with the user\'s certificate (--tls-cert/--tls-key), and refuses half or unreadable pairs', async t => {
  const dir = tempDir(t, 'cert')
  writeFileSync(join(dir, 'cert.pem'), tls.cert)
  writeFileSync(join(dir, 'key.pem'), tls.key)
  const { url, out, child, exited } = await serveCli(t, [site, '--port', '0', '--tls-cert', join(dir, 'cert.pem'), '--tls-key', join(dir, 'key.pem')])
  t.match(url, /^https:\/\/127\.0\.0\.1:\d+$/)
  t.notMatch(out.stderr, /self-signed/i, 'no self-signed warning for a certificate the user gave')
  const session = connectH2(t, url)
  const res = await h2get(session, '/sqlite3.wasm', { 'accept-encoding': 'br' })
  t.equal(res.headers['content-encoding'], 'br')
  t.ok(res.body.equals(BR), 'served over HTTP/2')
  t.equal(await servedFingerprint(url), tls.fingerprint256, 'the server presents the given certificate')
  session.close()
  child.kill('SIGTERM')
  t.equal((await exited).code, 0)

  const half = runCli(t, [site, '--port', '0', '--tls-cert', join(dir, 'cert.pem')])
  t.equal((await half.exited).code, 2, '--tls-cert alone: exit 2, a usage error')
  t.match(half.out.stderr, /--tls-cert and --tls-key go together/)
  const missing = runCli(t, [site, '--port', '0', '--tls-cert', join(dir, 'cert.pem'), '--tls-key', join(dir, 'nope.pem')])
  t.equal((await missing.exited).code, 2, 'an unreadable key: exit 2, a start-up error')
  t.match(missing.out.stderr, /cannot read the TLS key/)
  t.notMatch(missing.out.stdout, /serving/, 'nothing served')
})

t.test('the HTTPS CLI exits 0 on SIGTERM while a browser keeps an idle HTTP/2 session open', async t => {
  const { url, out, child, exited } = await serveCli(t, [site, '--port', '0', '--https'])
  const session = http2.connect(url, { rejectUnauthorized: false })
  session.on('error', () => {})
  t.teardown(() => session.destroy())
  t.equal((await h2get(session, '/')).status, 200)
  const started = Date.now()
  child.kill('SIGTERM')
  await until(() => child.exitCode !== null || child.signalCode !== null, { timeout: 15_000, what: () => `the CLI to exit (stderr: ${out.stderr})` })
  t.equal((await exited).code, 0, `exits 0 (stderr: ${out.stderr.split('\n').filter(l => /Error/.test(l)).join(' ') || 'no error'})`)
  t.ok(Date.now() - started < 12000, 'within the shutdown grace period')
})
