/**
 * Slow, stalled and greedy clients are cut within stated limits (`limits.*`, docs/delivery.md §5),
 * over HTTP/1.1 and HTTP/2, and 1xx goes only to clients that understand it.
 */
import t from 'tap'
import { connect as connectHttp2, constants as h2 } from 'node:http2'
import { connect, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { createServer } from '../src/server.js'
import { resolveOptions, type WasmServeOptions } from '../src/options.js'
import { loadTls } from '../src/tls.js'
import { rawRequest } from './helpers/raw-http.js'
import { startCliApp, type Running } from './helpers/server.js'
import { makeSite } from './helpers/site.js'

const BIG = Buffer.alloc(32 * 1024 * 1024, 'x')

const site = (t: Parameters<typeof makeSite>[0]) => makeSite(t, { 'big.bin': BIG, 'index.html': '<!doctype html><title>x</title>', 'app.wasm': Buffer.from('0061736d01000000', 'hex') })
const start = (t: Parameters<typeof makeSite>[0], options: WasmServeOptions & { root: string }): Promise<Running> => startCliApp(t, options)

/** Resolves with the time the server took to close a socket; rejects if it is still open after `ms`. */
function closedWithin (socket: Socket, ms: number): Promise<number> {
  const started = Date.now()
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`still open after ${ms} ms`)) }, ms)
    socket.on('close', () => { clearTimeout(timer); resolve(Date.now() - started) })
    socket.on('error', () => {})
  })
}

async function connections (server: Running): Promise<number> {
  return new Promise((resolve, reject) => server.app.server.getConnections((err, n) => err == null ? resolve(n) : reject(err)))
}

for (const overTls of [false, true]) {
  t.test(`a client that sends its headers a byte at a time gets 408 and is cut at the headers timeout${overTls ? ' (HTTP/1.1 over TLS, the HTTP/2 server\'s fallback)' : ''}`, async t => {
    const root = site(t)
    const server = overTls ? await startCliApp(t, { root, limits: { headersTimeout: 1 } }, await loadTls(true)) : await start(t, { root, limits: { headersTimeout: 1 } })
    const socket = overTls
      ? tlsConnect({ host: '127.0.0.1', port: server.port, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] })
      : connect({ host: '127.0.0.1', port: server.port })
    const received: Buffer[] = []
    socket.on('data', chunk => received.push(chunk))
    await new Promise(resolve => socket.once(overTls ? 'secureConnect' : 'connect', resolve))
    socket.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n')
    const drip = setInterval(() => { if (!socket.destroyed) socket.write('X-Slow: 1\r\n') }, 200)
    t.teardown(() => clearInterval(drip))
    const ms = await closedWithin(socket, 6000)
    clearInterval(drip)
    t.ok(ms < 1000 + 2000 + 1000, `cut after ${ms} ms (timeout 1 s, checked every 2 s)`)
    t.match(Buffer.concat(received).toString('latin1'), /^HTTP\/1\.1 408 /, 'with 408 Request Timeout')
  })
}

t.test('a client that stops reading a download is cut at the send timeout (HTTP/1.1)', async t => {
  const server = await start(t, { root: site(t), memoryBudget: 0, limits: { sendTimeout: 1 } })
  const socket = connect({ host: '127.0.0.1', port: server.port })
  socket.write('GET /big.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
  // The response has started; from then on nothing is read.
  await new Promise(resolve => socket.once('data', resolve))
  socket.pause()
  t.equal(await connections(server), 1, 'the download holds its connection')
  const started = Date.now()
  while (await connections(server) > 0 && Date.now() - started < 8000) await new Promise(resolve => setTimeout(resolve, 50))
  const ms = Date.now() - started
  t.equal(await connections(server), 0, `the server let go of the connection after ${ms} ms`)
  t.ok(ms < 6000, 'within the send timeout and a margin')
  socket.destroy()
})

t.test('HTTP/2: at most limits.maxStreams streams, and a stream that makes no progress is cancelled', async t => {
  const tls = await loadTls(true)
  const options = resolveOptions({ logLevel: 'silent', memoryBudget: 0, limits: { sendTimeout: 1, maxStreams: 7 } })
  const app = await createServer({ options: { ...options, root: site(t) }, tls })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  const { port } = app.server.address() as { port: number }
  const session = connectHttp2(`https://127.0.0.1:${port}`, { rejectUnauthorized: false })
  t.teardown(() => session.destroy())
  const settings = await new Promise<{ maxConcurrentStreams?: number }>(resolve => session.once('remoteSettings', resolve))
  t.equal(settings.maxConcurrentStreams, 7, 'SETTINGS_MAX_CONCURRENT_STREAMS is advertised')
  const stream = session.request({ ':path': '/big.bin' })
  stream.once('response', () => stream.pause()) // the flow-control window fills, then nothing moves
  const started = Date.now()
  const code = await new Promise<number>(resolve => stream.on('close', () => resolve(stream.rstCode ?? -1)))
  t.equal(code, h2.NGHTTP2_CANCEL, `reset with CANCEL after ${Date.now() - started} ms, never a clean end`)
  t.ok(Date.now() - started < 6000, 'within the send timeout and a margin')
})

t.test('connections beyond limits.maxConnections are refused and the limit is logged', async t => {
  const server = await start(t, { root: site(t), limits: { maxConnections: 3 } })
  const held: Socket[] = []
  t.teardown(() => { for (const s of held) s.destroy() })
  for (let i = 0; i < 3; i++) {
    const s = connect({ host: '127.0.0.1', port: server.port })
    await new Promise(resolve => s.once('connect', resolve))
    held.push(s)
  }
  const extra = connect({ host: '127.0.0.1', port: server.port })
  extra.on('error', () => {})
  extra.write('GET /index.html HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
  const answer: Buffer[] = []
  extra.on('data', chunk => answer.push(chunk))
  await closedWithin(extra, 5000)
  t.equal(Buffer.concat(answer).length, 0, 'the fourth connection is closed unanswered')
  t.ok(server.logs.some(l => String(l.msg).startsWith('connection limit reached')), 'and that is logged')
  held.pop()?.destroy()
  let res = await rawRequest({ port: server.port, target: '/index.html' }).catch(() => undefined)
  for (let i = 0; i < 40 && res?.status !== 200; i++) {
    await new Promise(resolve => setTimeout(resolve, 50))
    res = await rawRequest({ port: server.port, target: '/index.html' }).catch(() => undefined)
  }
  t.equal(res?.status, 200, 'once one closes, the next is served')
})

t.test('103 Early Hints only to HTTP/1.1 and later (RFC 9110 §15.2)', async t => {
  const server = await start(t, { root: site(t), earlyHints: true, preload: ['/app.wasm'] })
  const ask = (version: string) => new Promise<string>((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port: server.port })
    const chunks: Buffer[] = []
    socket.on('data', chunk => chunks.push(chunk))
    socket.on('end', () => resolve(Buffer.concat(chunks).toString('latin1')))
    socket.on('error', reject)
    socket.write(`GET /index.html ${version}\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`)
  })
  t.match(await ask('HTTP/1.1'), /^HTTP\/1\.1 103 Early Hints\r\n/, 'HTTP/1.1 gets the 103 first')
  const old = await ask('HTTP/1.0')
  t.notMatch(old, / 103 /, 'HTTP/1.0 gets none')
  t.match(old, /^HTTP\/1\.1 200 OK\r\n/, 'only the page')
})

t.test('a path over 4 KB is 414 URI Too Long', async t => {
  const server = await start(t, { root: site(t) })
  const res = await rawRequest({ port: server.port, target: '/' + 'a'.repeat(5000) })
  t.equal(res.status, 414)
})
