// HTTPS and HTTP/2 (issue 3 item 6): the CLI's server with a self-signed certificate, talked to with
// node's http2 client; the same delivery rules hold as over HTTP/1.1 (types, encodings, lengths,
// validators, ranges, policy headers, 103 Early Hints), HTTP/1.1 clients still get answers on the
// same port (ALPN fallback), and the real CLI's `--https` prints its URL and certificate fingerprint.
import t, { type Test } from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { randomBytes } from 'node:crypto'
import http2, { type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { connect as tlsConnect } from 'node:tls'
import { Agent, request } from 'undici'
import { BR, GZ, SQLITE, makeSite } from './helpers/site.js'
import { createServer } from '../src/server.js'
import { runCli, serveCli } from './helpers/cli.js'
import { resolveOptions, type WasmServeOptions } from '../src/options.js'
import { loadTls } from '../src/tls.js'


const PAGE = '<!doctype html><title>site</title><h1>site</h1>\n'
const site = makeSite()
t.teardown(() => rmSync(site, { recursive: true, force: true }))
const tls = await loadTls(true)

/** Starts the CLI's app over TLS (HTTP/2 with HTTP/1.1 fallback) on a free loopback port. */
async function startHttps (t: Test, options: WasmServeOptions = {}): Promise<string> {
  const silent = new Writable({ write (_chunk, _enc, done) { done() } })
  const resolved = resolveOptions({ logLevel: 'warn', ...options })
  const app = await createServer({ options: { ...resolved, root: site }, logStream: silent, tls: tls! })
  t.teardown(() => app.close())
  const address = await app.listen({ host: '127.0.0.1', port: 0 })
  return address
}

function connectH2 (t: Test, url: string): ClientHttp2Session {
  const session = http2.connect(url, { rejectUnauthorized: false })
  session.on('error', () => {})
  t.teardown(() => session.close())
  return session
}

interface H2Res { status: number, headers: IncomingHttpHeaders, body: Buffer, informational: IncomingHttpHeaders[] }

function h2 (session: ClientHttp2Session, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<H2Res> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':method': method, ':path': path, ...headers })
    const informational: IncomingHttpHeaders[] = []
    const chunks: Buffer[] = []
    let response: IncomingHttpHeaders | undefined
    stream.on('headers', h => informational.push(h))
    stream.on('response', h => { response = h })
    stream.on('data', (chunk: Buffer) => chunks.push(chunk))
    stream.on('error', reject)
    stream.on('end', () => {
      if (response === undefined) return reject(new Error(`no response for ${path}`))
      resolve({ status: Number(response[':status']), headers: response, body: Buffer.concat(chunks), informational })
    })
    stream.end()
  })
}

t.test('files streamed from disk arrive whole over HTTP/2, concurrently on one connection (D5)', async t => {
  const url = await startHttps(t, { memoryBudget: 0 })
  const session = connectH2(t, url)
  const wanted = [{ ae: 'identity', bytes: SQLITE }, { ae: 'br', bytes: BR }, { ae: 'gzip', bytes: GZ }]
  const results = await Promise.all(Array.from({ length: 18 }, (_, i) => wanted[i % wanted.length]!).map(async w => ({ w, res: await h2(session, '/sqlite3.wasm', { 'accept-encoding': w.ae }) })))
  for (const { w, res } of results) {
    t.equal(res.headers['content-length'], String(w.bytes.length), `${w.ae}: length`)
    t.ok(res.body.equals(w.bytes), `${w.ae}: byte for byte`)
  }
  const range = await h2(session, '/sqlite3.wasm', { range: 'bytes=100000-299999' })
  t.equal(range.status, 206)
  t.ok(range.body.equals(SQLITE.subarray(100_000, 300_000)), 'a range of the identity bytes')
})

t.test('a file rewritten while it streams over HTTP/2 is cut with an error, never ended short (D16)', async t => {
  const file = join(site, 'rewritten.bin')
  writeFileSync(file, randomBytes(4 << 20))
  t.teardown(() => rmSync(file, { force: true }))
  const url = await startHttps(t, { memoryBudget: 0 })
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
  await new Promise(resolve => setTimeout(resolve, 100))
  writeFileSync(file, randomBytes(4 << 20))
  stream.resume()
  const { ended, rstCode } = await outcome
  t.ok(received < 4 << 20, `the response was cut (${received} of ${4 << 20} bytes)`)
  t.not(rstCode, http2.constants.NGHTTP2_NO_ERROR, `reset with an error code (${String(rstCode)}), so no client takes the bytes for a whole body`)
  t.notOk(ended, 'the stream did not end normally')
})

t.test('serves wasm over HTTP/2 with the same types, encodings and lengths', async t => {
  const url = await startHttps(t)
  t.match(url, /^https:\/\/127\.0\.0\.1:\d+$/)
  const session = connectH2(t, url)
  const br = await h2(session, '/sqlite3.wasm', { 'accept-encoding': 'gzip, deflate, br, zstd' })
  t.equal(br.status, 200)
  t.equal(br.headers['content-type'], 'application/wasm')
  t.equal(br.headers['content-encoding'], 'br')
  t.equal(br.headers['content-length'], String(BR.length))
  t.equal(br.headers['x-decoded-content-length'], String(SQLITE.length))
  t.equal(br.headers.vary, 'Accept-Encoding')
  t.ok(br.body.equals(BR), 'the br sibling byte for byte')
  t.equal(br.headers.connection, undefined, 'no connection-specific headers over HTTP/2')
  t.equal(br.headers['transfer-encoding'], undefined)

  const gz = await h2(session, '/sqlite3.wasm', { 'accept-encoding': 'gzip' })
  t.equal(gz.headers['content-encoding'], 'gzip')
  t.equal(gz.headers['content-length'], String(GZ.length))
  t.ok(gz.body.equals(GZ))

  const identity = await h2(session, '/sqlite3.wasm')
  t.equal(identity.headers['content-type'], 'application/wasm')
  t.equal(identity.headers['content-encoding'], undefined)
  t.equal(identity.headers['content-length'], String(SQLITE.length))
  t.ok(identity.body.equals(SQLITE))

  const page = await h2(session, '/')
  t.equal(page.status, 200)
  t.match(page.headers['content-type'], /^text\/html/)
  t.equal(page.body.toString(), PAGE)

  const head = await h2(session, '/sqlite3.wasm', { 'accept-encoding': 'br' }, 'HEAD')
  t.equal(head.status, 200)
  t.equal(head.headers['content-length'], String(BR.length))
  t.equal(head.body.length, 0)

  t.equal((await h2(session, '/missing.wasm')).status, 404)
})

t.test('validators and ranges work over HTTP/2: ETag + 304, 206 over the decoded bytes', async t => {
  const url = await startHttps(t)
  const session = connectH2(t, url)
  const first = await h2(session, '/sqlite3.wasm', { 'accept-encoding': 'br' })
  const etag = String(first.headers.etag)
  t.match(etag, /^"[^"]+"$/, 'a strong ETag')
  const again = await h2(session, '/sqlite3.wasm', { 'accept-encoding': 'br', 'if-none-match': etag })
  t.equal(again.status, 304)
  t.equal(again.body.length, 0)
  t.equal(again.headers.etag, etag)
  t.equal(again.headers.vary, 'Accept-Encoding')
  const range = await h2(session, '/sqlite3.wasm', { range: 'bytes=0-3' })
  t.equal(range.status, 206)
  t.equal(range.headers['content-range'], `bytes 0-3/${SQLITE.length}`)
  t.equal(range.headers['content-length'], '4')
  t.ok(range.body.equals(SQLITE.subarray(0, 4)), 'the wasm magic number')
  const tail = await h2(session, '/sqlite3.wasm', { range: 'bytes=-16', 'accept-encoding': 'br' })
  t.equal(tail.status, 206)
  t.equal(tail.headers['content-encoding'], undefined, 'ranges are over the decoded bytes')
  t.ok(tail.body.equals(SQLITE.subarray(SQLITE.length - 16)))
})

t.test('policy headers, isolation and CORS hold over HTTP/2', async t => {
  const url = await startHttps(t, {
    crossOriginIsolation: 'require-corp',
    cors: { origin: ['https://app.example'] },
    routes: [
      { match: '**/*.wasm', cacheControl: 'public, max-age=60', headers: { 'X-Content-Type-Options': 'nosniff' } },
    ],
  })
  const session = connectH2(t, url)
  const wasm = await h2(session, '/sqlite3.wasm', { 'accept-encoding': 'br', origin: 'https://app.example' })
  t.equal(wasm.headers['cache-control'], 'public, max-age=60')
  t.equal(wasm.headers['x-content-type-options'], 'nosniff')
  t.equal(wasm.headers['cross-origin-resource-policy'], 'cross-origin')
  t.equal(wasm.headers['access-control-allow-origin'], 'https://app.example')
  t.match(String(wasm.headers['access-control-expose-headers']), /X-Decoded-Content-Length/i)
  t.match(String(wasm.headers.vary), /Accept-Encoding/)
  t.match(String(wasm.headers.vary), /Origin/)
  const cached = await h2(session, '/sqlite3.wasm', { 'accept-encoding': 'br', origin: 'https://app.example', 'if-none-match': String(wasm.headers.etag) })
  t.equal(cached.status, 304)
  t.equal(cached.headers['cache-control'], 'public, max-age=60', 'a 304 keeps the policy')
  t.equal(cached.headers['x-content-type-options'], 'nosniff')
  const page = await h2(session, '/index.html')
  t.equal(page.headers['cross-origin-opener-policy'], 'same-origin')
  t.equal(page.headers['cross-origin-embedder-policy'], 'require-corp')
  t.equal(page.headers['cache-control'], 'no-cache')
  const preflight = await h2(session, '/sqlite3.wasm', { origin: 'https://app.example', 'access-control-request-method': 'GET' }, 'OPTIONS')
  t.equal(preflight.status, 204)
  t.match(String(preflight.headers['access-control-allow-methods']), /GET/)
})

t.test('with earlyHints a 103 carrying the preload links comes before the response over HTTP/2', async t => {
  const url = await startHttps(t, {
    earlyHints: true,
    spa: 'index.html',
    routes: [{ match: '**/*.html', preload: ['/sqlite3.wasm'] }],
    preload: ['/app.js'],
  })
  const expected = '</sqlite3.wasm>; rel=preload; as=fetch; crossorigin, </app.js>; rel=modulepreload; crossorigin'
  const session = connectH2(t, url)
  const page = await h2(session, '/', { accept: 'text/html' })
  t.equal(page.status, 200)
  t.equal(page.informational.length, 1, 'one informational response')
  t.equal(page.informational[0]?.[':status'], 103)
  const hinted = page.informational[0]?.link
  t.equal(Array.isArray(hinted) ? hinted.join(', ') : hinted, expected, 'the 103 carries the links')
  t.equal(page.headers.link, expected, 'the 200 carries them too')
  t.equal(page.body.toString(), PAGE)
  const spa = await h2(session, '/deep/route', { accept: 'text/html' })
  t.equal(spa.status, 200)
  t.equal(spa.informational[0]?.[':status'], 103, 'SPA fallback pages are hinted too')
  const wasm = await h2(session, '/sqlite3.wasm')
  t.same(wasm.informational, [], 'no 103 for the module')
})

t.test('an HTTP/1.1 client is answered on the same port (ALPN fallback)', async t => {
  const url = await startHttps(t, { crossOriginIsolation: 'credentialless' })
  const { port } = new URL(url)
  const negotiated = async (ALPNProtocols: string[]) => new Promise<string | false>((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port: Number(port), ALPNProtocols, rejectUnauthorized: false }, () => {
      resolve(socket.alpnProtocol ?? false)
      socket.end()
    })
    socket.on('error', reject)
  })
  t.equal(await negotiated(['h2', 'http/1.1']), 'h2', 'HTTP/2 is preferred')
  t.equal(await negotiated(['http/1.1']), 'http/1.1', 'HTTP/1.1 is offered as fallback')

  const dispatcher = new Agent({ connect: { rejectUnauthorized: false } })
  t.teardown(() => dispatcher.close())
  const res = await request(`${url}/sqlite3.wasm`, { dispatcher, headers: { 'accept-encoding': 'br' } })
  const body = Buffer.from(await res.body.arrayBuffer())
  t.equal(res.statusCode, 200)
  t.equal(res.headers['content-type'], 'application/wasm')
  t.equal(res.headers['content-encoding'], 'br')
  t.equal(res.headers['content-length'], String(BR.length))
  t.equal(res.headers['x-decoded-content-length'], String(SQLITE.length))
  t.equal(res.headers['cross-origin-resource-policy'], 'same-origin')
  t.ok(body.equals(BR))
  const page = await request(`${url}/`, { dispatcher })
  await page.body.dump()
  t.equal(page.headers['cross-origin-embedder-policy'], 'credentialless')
})

t.test('the CLI with --https serves HTTP/2 on a self-signed certificate and prints its fingerprint', async t => {
  const { url, out, child, exited } = await serveCli(t, [site, '--port', '0', '--https'])
  t.match(url, /^https:\/\/127\.0\.0\.1:\d+$/)
  t.match(out.stdout, /\(HTTP\/2\)/, 'says it speaks HTTP/2')
  t.match(out.stderr, /self-signed/i, 'warns that the certificate is self-signed')
  t.match(out.stderr, /SHA-256 ([0-9A-F]{2}:){31}[0-9A-F]{2}/, 'prints the SHA-256 fingerprint')
  const session = connectH2(t, url)
  const res = await h2(session, '/sqlite3.wasm', { 'accept-encoding': 'br' })
  t.equal(res.status, 200)
  t.equal(res.headers['content-type'], 'application/wasm')
  t.equal(res.headers['content-encoding'], 'br')
  t.ok(res.body.equals(BR))
  const fingerprint = /SHA-256 ((?:[0-9A-F]{2}:){31}[0-9A-F]{2})/.exec(out.stderr)?.[1]
  const served = await new Promise<string>((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port: Number(new URL(url).port), rejectUnauthorized: false, ALPNProtocols: ['h2'] }, () => {
      resolve(socket.getPeerX509Certificate()?.fingerprint256 ?? '')
      socket.end()
    })
    socket.on('error', reject)
  })
  t.equal(served, fingerprint, 'the printed fingerprint is the certificate the server presents')
  session.close()
  child.kill('SIGTERM')
  t.equal((await exited).code, 0, 'exits 0 on SIGTERM')
})

t.test('the CLI serves HTTP/2 with the user\'s certificate (--tls-cert/--tls-key), and refuses half or unreadable pairs', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'wasm-serve-cert-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'cert.pem'), tls!.cert)
  writeFileSync(join(dir, 'key.pem'), tls!.key)
  const { url, out, child, exited } = await serveCli(t, [site, '--port', '0', '--tls-cert', join(dir, 'cert.pem'), '--tls-key', join(dir, 'key.pem')])
  t.match(url, /^https:\/\/127\.0\.0\.1:\d+$/)
  t.notMatch(out.stderr, /self-signed/i, 'no self-signed warning for a certificate the user gave')
  const session = connectH2(t, url)
  const res = await h2(session, '/sqlite3.wasm', { 'accept-encoding': 'br' })
  t.equal(res.headers['content-encoding'], 'br')
  t.ok(res.body.equals(BR), 'served over HTTP/2')
  const served = await new Promise<string>((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port: Number(new URL(url).port), rejectUnauthorized: false, ALPNProtocols: ['h2'] }, () => {
      resolve(socket.getPeerX509Certificate()?.fingerprint256 ?? '')
      socket.end()
    })
    socket.on('error', reject)
  })
  t.equal(served, tls!.fingerprint256, 'the server presents the given certificate')
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
  t.equal((await h2(session, '/')).status, 200)
  const started = Date.now()
  child.kill('SIGTERM')
  const code = await Promise.race([exited.then(e => e.code), new Promise<string>(resolve => setTimeout(() => resolve('still running'), 15000))])
  t.equal(code, 0, `exits 0 (stderr: ${out.stderr.split('\n').filter(l => /Error/.test(l)).join(' ') || 'no error'})`)
  t.ok(Date.now() - started < 12000, 'within the shutdown grace period')
})
