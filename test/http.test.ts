import t from 'tap'
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { randomBytes } from 'node:crypto'
import { connect } from 'node:net'
import { Readable } from 'node:stream'
import { request } from 'undici'
import { join } from 'node:path'
import { get } from './helpers/http.js'
import { BR, GZ, JS, SQLITE, TINY, makeSite, startPlugin } from './helpers/site.js'
import { etagOf } from './helpers/server.js'

const root = makeSite()
t.teardown(() => rmSync(root, { recursive: true, force: true }))

t.test('delivery rules over real HTTP (plugin on a Fastify app)', async t => {
  const { app, url } = await startPlugin({ root })
  t.teardown(() => app.close())

  t.test('serves the br sibling with the original Content-Type and exact lengths (D1, D3, D5)', async t => {
    const res = await get(`${url}/sqlite3.wasm`, { 'accept-encoding': 'gzip, deflate, br, zstd' })
    t.equal(res.status, 200)
    t.equal(res.headers['content-type'], 'application/wasm')
    t.equal(res.headers['content-encoding'], 'br')
    t.equal(res.headers['content-length'], String(BR.length))
    t.equal(res.headers['x-decoded-content-length'], String(SQLITE.length))
    t.equal(res.headers.vary, 'Accept-Encoding')
    t.ok(res.body.equals(BR), 'body is the br sibling byte for byte')
    t.equal(res.headers['transfer-encoding'], undefined, 'never chunked')
  })

  t.test('gzip and x-gzip get the gzip sibling', async t => {
    for (const ae of ['gzip', 'x-gzip', 'br;q=0, gzip']) {
      const res = await get(`${url}/sqlite3.wasm`, { 'accept-encoding': ae })
      t.equal(res.headers['content-encoding'], 'gzip', ae)
      t.ok(res.body.equals(GZ))
      t.equal(res.headers['content-type'], 'application/wasm')
    }
  })

  t.test('identity without Accept-Encoding, with Vary and no charset (D1, D7)', async t => {
    const res = await get(`${url}/sqlite3.wasm`)
    t.equal(res.headers['content-type'], 'application/wasm')
    t.equal(res.headers['content-encoding'], undefined)
    t.equal(res.headers['x-decoded-content-length'], undefined)
    t.equal(res.headers['content-length'], String(SQLITE.length))
    t.equal(res.headers.vary, 'Accept-Encoding')
    t.ok(res.body.equals(SQLITE))
    t.equal(res.headers['accept-ranges'], 'bytes')
    t.ok(res.headers['last-modified'])
  })

  t.test('406 when nothing acceptable, identity excluded (D2)', async t => {
    const res = await get(`${url}/sqlite3.wasm`, { 'accept-encoding': 'identity;q=0, *;q=0' })
    t.equal(res.status, 406)
    t.equal(res.headers.vary, 'Accept-Encoding')
  })

  t.test('a tiny module is never encoded and a non-compressible file does not Vary (D7)', async t => {
    const tiny = await get(`${url}/tiny.wasm`, { 'accept-encoding': 'br' })
    t.equal(tiny.headers['content-encoding'], undefined)
    t.ok(tiny.body.equals(TINY))
    t.equal(tiny.headers['content-type'], 'application/wasm')
    const png = await get(`${url}/logo.png`, { 'accept-encoding': 'br' })
    t.equal(png.headers['content-type'], 'image/png')
    t.equal(png.headers.vary, undefined)
  })

  t.test('text types carry charset=utf-8', async t => {
    t.equal((await get(`${url}/app.js`)).headers['content-type'], 'text/javascript; charset=utf-8')
    t.equal((await get(`${url}/`)).headers['content-type'], 'text/html; charset=utf-8')
  })

  t.test('content-derived ETags differ per representation (D6)', async t => {
    const br = await get(`${url}/sqlite3.wasm`, { 'accept-encoding': 'br' })
    const gz = await get(`${url}/sqlite3.wasm`, { 'accept-encoding': 'gzip' })
    const id = await get(`${url}/sqlite3.wasm`)
    t.equal(br.headers.etag, etagOf(BR))
    t.equal(gz.headers.etag, etagOf(GZ))
    t.equal(id.headers.etag, etagOf(SQLITE))
    t.equal(new Set([br.headers.etag, gz.headers.etag, id.headers.etag]).size, 3)
    t.notOk(br.headers.etag!.startsWith('W/'), 'strong')
  })

  t.test('If-None-Match: exact, list, weak and * give 304 with validators and no body (D6, D7)', async t => {
    const tag = etagOf(BR)
    for (const inm of [tag, `"nope", ${tag}`, `W/${tag}`, '*']) {
      const res = await get(`${url}/sqlite3.wasm`, { 'accept-encoding': 'br', 'if-none-match': inm })
      t.equal(res.status, 304, inm)
      t.equal(res.body.length, 0)
      t.equal(res.headers.etag, tag)
      t.equal(res.headers.vary, 'Accept-Encoding')
      t.equal(res.headers['cache-control'], 'no-cache')
      t.equal(res.headers['content-type'], 'application/wasm')
    }
    const other = await get(`${url}/sqlite3.wasm`, { 'accept-encoding': 'gzip', 'if-none-match': tag })
    t.equal(other.status, 200, 'the br tag does not validate the gzip representation')
  })

  t.test('If-Modified-Since gives 304 unless If-None-Match is present (D6)', async t => {
    const first = await get(`${url}/sqlite3.wasm`)
    const lm = first.headers['last-modified']!
    t.equal((await get(`${url}/sqlite3.wasm`, { 'if-modified-since': lm })).status, 304)
    t.equal((await get(`${url}/sqlite3.wasm`, { 'if-modified-since': 'Thu, 01 Jan 1970 00:00:00 GMT' })).status, 200)
    t.equal((await get(`${url}/sqlite3.wasm`, { 'if-modified-since': lm, 'if-none-match': '"other"' })).status, 200)
    t.equal((await get(`${url}/sqlite3.wasm`, { 'if-modified-since': 'garbage' })).status, 200)
  })

  t.test('ranges come from the identity bytes, with Vary, even when br is accepted (D8)', async t => {
    const res = await get(`${url}/sqlite3.wasm`, { range: 'bytes=100-199', 'accept-encoding': 'br' })
    t.equal(res.status, 206)
    t.equal(res.headers['content-range'], `bytes 100-199/${SQLITE.length}`)
    t.equal(res.headers['content-length'], '100')
    t.equal(res.headers['content-encoding'], undefined)
    t.equal(res.headers.vary, 'Accept-Encoding')
    t.equal(res.headers['content-type'], 'application/wasm')
    t.ok(res.body.equals(SQLITE.subarray(100, 200)))
    const suffix = await get(`${url}/sqlite3.wasm`, { range: 'bytes=-10' })
    t.ok(suffix.body.equals(SQLITE.subarray(SQLITE.length - 10)))
    const open = await get(`${url}/sqlite3.wasm`, { range: `bytes=${SQLITE.length - 5}-` })
    t.equal(open.headers['content-range'], `bytes ${SQLITE.length - 5}-${SQLITE.length - 1}/${SQLITE.length}`)
    const clamp = await get(`${url}/sqlite3.wasm`, { range: `bytes=0-${SQLITE.length * 2}` })
    t.equal(clamp.status, 206)
    t.equal(clamp.body.length, SQLITE.length)
  })

  t.test('unsatisfiable range → 416 with bytes */size; multiple or invalid ranges → 200 (D8)', async t => {
    const bad = await get(`${url}/sqlite3.wasm`, { range: `bytes=${SQLITE.length}-` })
    t.equal(bad.status, 416)
    t.equal(bad.headers['content-range'], `bytes */${SQLITE.length}`)
    t.equal((await get(`${url}/sqlite3.wasm`, { range: 'bytes=-0' })).status, 416)
    for (const range of ['bytes=0-1,5-9', 'bytes=abc', 'items=0-5', 'bytes=9-1']) {
      const res = await get(`${url}/sqlite3.wasm`, { range })
      t.equal(res.status, 200, range)
      t.equal(res.body.length, SQLITE.length)
    }
  })

  t.test('If-Range: matching strong ETag or date gives 206, anything else the whole file (D8)', async t => {
    const id = await get(`${url}/sqlite3.wasm`)
    t.equal((await get(`${url}/sqlite3.wasm`, { range: 'bytes=0-9', 'if-range': id.headers.etag! })).status, 206)
    t.equal((await get(`${url}/sqlite3.wasm`, { range: 'bytes=0-9', 'if-range': id.headers['last-modified']! })).status, 206)
    t.equal((await get(`${url}/sqlite3.wasm`, { range: 'bytes=0-9', 'if-range': '"stale"' })).status, 200)
    t.equal((await get(`${url}/sqlite3.wasm`, { range: 'bytes=0-9', 'if-range': `W/${id.headers.etag!}` })).status, 200)
  })

  t.test('HEAD returns exactly the headers GET would, without a body (D9)', async t => {
    for (const headers of [{ 'accept-encoding': 'br' }, {}, { range: 'bytes=0-9' }]) {
      const g = await get(`${url}/sqlite3.wasm`, headers)
      const h = await get(`${url}/sqlite3.wasm`, headers, 'HEAD')
      t.equal(h.status, g.status)
      t.equal(h.body.length, 0)
      for (const name of ['content-type', 'content-length', 'content-encoding', 'etag', 'vary', 'last-modified', 'cache-control', 'x-decoded-content-length', 'content-range']) {
        t.equal(h.headers[name], g.headers[name], `${name} ${JSON.stringify(headers)}`)
      }
    }
  })

  t.test('a direct request for x.wasm.br gets the wasm type and Content-Encoding br (D3, Unity)', async t => {
    const br = await get(`${url}/Build/game.wasm.br`, { 'accept-encoding': 'gzip, br' })
    t.equal(br.headers['content-type'], 'application/wasm')
    t.equal(br.headers['content-encoding'], 'br')
    t.equal(br.headers['content-length'], String(BR.length))
    t.ok(br.body.equals(BR))
    t.equal(br.headers.vary, 'Accept-Encoding')
    const raw = await get(`${url}/Build/game.wasm.br`)
    t.equal(raw.headers['content-encoding'], undefined, 'never claims br to a client that did not accept it')
    t.equal(raw.headers['content-type'], 'application/octet-stream')
    t.ok(raw.body.equals(BR))
    t.not(raw.headers.etag, br.headers.etag)
    const sibling = await get(`${url}/sqlite3.wasm.br`, { 'accept-encoding': 'br' })
    t.equal(sibling.headers['x-decoded-content-length'], String(SQLITE.length))
    // Without its original, a .gz still says what it decodes to (its ISIZE trailer), so a progress
    // bar ends at exactly 100 % (D5); brotli records no size, so a lone .br has none.
    writeFileSync(join(root, 'Build', 'other.wasm.gz'), GZ)
    const gz = await get(`${url}/Build/other.wasm.gz`, { 'accept-encoding': 'gzip' })
    t.equal(gz.headers['content-encoding'], 'gzip')
    t.equal(gz.headers['x-decoded-content-length'], String(SQLITE.length))
    t.equal(br.headers['x-decoded-content-length'], undefined, 'a lone .br: no decoded size to announce')
  })

  t.test('directories: index.html answers the directory URL, no listings (the 301 adding the slash: robustness.test.ts)', async t => {
    const index = await get(`${url}/`)
    t.equal(index.status, 200)
    t.match(index.body.toString(), /<h1>site<\/h1>/)
    const build = await get(`${url}/Build/`)
    t.equal(build.status, 404, 'no directory listing')
    t.notMatch(build.body.toString(), /game/)
  })

  t.test('default cache policy: hashed names immutable, others no-cache (D10)', async t => {
    t.equal((await get(`${url}/app.js`)).headers['cache-control'], 'no-cache')
    t.equal((await get(`${url}/index.html`)).headers['cache-control'], 'no-cache')
  })

  t.test('missing files are 404 and never HTML in place of wasm', async t => {
    const res = await get(`${url}/missing.wasm`)
    t.equal(res.status, 404)
    t.notMatch(res.headers['content-type'] ?? '', /wasm/)
  })
})

t.test('memoryBudget 0 streams every file from disk with the same headers (D5)', async t => {
  const { app, url } = await startPlugin({ root, memoryBudget: 0 })
  t.teardown(() => app.close())
  const res = await get(`${url}/sqlite3.wasm`, { 'accept-encoding': 'br' })
  t.equal(res.headers['content-length'], String(BR.length))
  t.equal(res.headers['transfer-encoding'], undefined)
  t.ok(res.body.equals(BR))
  const range = await get(`${url}/sqlite3.wasm`, { range: 'bytes=1000-1999' })
  t.ok(range.body.equals(SQLITE.subarray(1000, 2000)))
  t.equal(range.headers['content-length'], '1000')
  t.equal((await get(`${url}/app.js`)).body.toString(), JS.toString())
})

t.test('streamed files reuse read buffers without mixing bytes between responses (D5, D16)', async t => {
  // A file larger than the socket buffers, read slowly by some clients: their writes stay pending,
  // holding the pooled buffer, while fast clients take buffers for other responses. A buffer handed
  // back to the pool too early would be read into while a socket still sends from it.
  const dir = mkdtempSync(join(tmpdir(), 'wasm-serve-pool-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const big = randomBytes(12 << 20)
  writeFileSync(join(dir, 'big.bin'), big)
  for (const name of ['sqlite3.wasm', 'sqlite3.wasm.br', 'sqlite3.wasm.gz']) copyFileSync(join(root, name), join(dir, name))
  const { app, url } = await startPlugin({ root: dir, memoryBudget: 0 })
  t.teardown(() => app.close())
  const openInRoot = () => readdirSync('/proc/self/fd').filter(fd => { try { return readlinkSync(`/proc/self/fd/${fd}`).startsWith(dir) } catch { return false } }).length
  const slowly = async () => {
    const res = await request(`${url}/big.bin`, { headers: { 'accept-encoding': 'identity' } })
    const chunks: Buffer[] = []
    for await (const chunk of res.body) {
      chunks.push(chunk)
      if (chunks.length % 16 === 0) await new Promise(resolve => setTimeout(resolve, 5))
    }
    return Buffer.concat(chunks)
  }
  const wanted = [{ ae: 'identity', bytes: SQLITE }, { ae: 'br', bytes: BR }, { ae: 'gzip', bytes: GZ }]
  const fast = async () => {
    const got = []
    for (let i = 0; i < 12; i++) {
      const w = wanted[i % wanted.length]!
      got.push({ w, res: await get(`${url}/sqlite3.wasm`, { 'accept-encoding': w.ae }) })
    }
    return got
  }
  const [slowBodies, fastResults] = await Promise.all([Promise.all([slowly(), slowly(), slowly()]), Promise.all([fast(), fast()])])
  for (const body of slowBodies) t.ok(body.equals(big), '12 MB read slowly, byte for byte')
  for (const { w, res } of fastResults.flat()) t.ok(res.body.equals(w.bytes), `${w.ae}: byte for byte while other responses stream`)
  const ranges = await Promise.all([0, 70_000, 200_000, 800_000].map(async start => ({ start, res: await get(`${url}/sqlite3.wasm`, { range: `bytes=${start}-${start + 50_000}` }) })))
  for (const { start, res } of ranges) t.ok(res.body.equals(SQLITE.subarray(start, start + 50_001)), `range from ${start}`)
  // Clients gone after the first bytes: their files must be closed.
  for (let i = 0; i < 6; i++) {
    const socket = connect(Number(new URL(url).port), '127.0.0.1')
    socket.write('GET /big.bin HTTP/1.1\r\nHost: x\r\nAccept-Encoding: identity\r\n\r\n')
    await new Promise(resolve => socket.once('data', resolve))
    socket.destroy()
  }
  await new Promise(resolve => setTimeout(resolve, 300))
  t.equal(openInRoot(), 0, 'no file handle left open')
})

t.test('pipelined requests on a connection that dies leave no file open (HTTP/1.1)', async t => {
  // Large enough that the first response cannot fit in the socket buffers and stalls.
  const dir = mkdtempSync(join(tmpdir(), 'wasm-serve-pipelined-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'big.bin'), randomBytes(24 << 20))
  const { app, url } = await startPlugin({ root: dir, memoryBudget: 0 })
  t.teardown(() => app.close())
  const openInRoot = () => readdirSync('/proc/self/fd').filter(fd => { try { return readlinkSync(`/proc/self/fd/${fd}`).startsWith(dir) } catch { return false } }).length
  const { port } = new URL(url)
  for (let i = 0; i < 4; i++) {
    // Three requests at once: the first response stalls (the client stops reading), the other two
    // wait behind it, and Node 20 never closes those when the connection goes.
    const socket = connect(Number(port), '127.0.0.1')
    socket.write('GET /big.bin HTTP/1.1\r\nHost: x\r\nAccept-Encoding: identity\r\n\r\n'.repeat(3))
    await new Promise<void>(resolve => {
      let got = 0
      socket.on('data', (d: Buffer) => { got += d.length; if (got > 100_000) { socket.pause(); resolve() } })
    })
    await new Promise(resolve => setTimeout(resolve, 100))
    socket.destroy()
  }
  await new Promise(resolve => setTimeout(resolve, 500))
  t.equal(openInRoot(), 0, 'every file handle closed with its connection')
})

t.test('a streamed body read by an onSend hook arrives intact (fresh buffers, not pooled ones)', async t => {
  const { default: Fastify } = await import('fastify')
  const { default: wasmServe } = await import('../src/plugin.js')
  const app = Fastify({ forceCloseConnections: true })
  // A hook that reads the whole file body and keeps every chunk it was given before answering:
  // chunks read into one reused buffer would all end up holding the last bytes read.
  app.addHook('onSend', async (_request, _reply, payload) => {
    if (!(payload instanceof Readable)) return payload
    const chunks: Buffer[] = []
    for await (const chunk of payload) chunks.push(chunk as Buffer)
    return Buffer.concat(chunks)
  })
  await app.register(wasmServe, { root, memoryBudget: 0, watch: false })
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  const bodies = await Promise.all(Array.from({ length: 6 }, async () => (await get(`${url}/sqlite3.wasm`, { 'accept-encoding': 'identity' })).body))
  for (const body of bodies) t.ok(body.equals(SQLITE), 'byte for byte through the hook')
})

t.test('ETags are identical across restarts (D6)', async t => {
  const a = await startPlugin({ root })
  const first = await get(`${a.url}/sqlite3.wasm`, { 'accept-encoding': 'br' })
  await a.app.close()
  const b = await startPlugin({ root, memoryBudget: 0 })
  t.teardown(() => b.app.close())
  const second = await get(`${b.url}/sqlite3.wasm`, { 'accept-encoding': 'br' })
  t.equal(second.headers.etag, first.headers.etag)
})

t.test('a .zst sibling is checked past skippable frames, as zstd reads it (D3, D5)', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'wasm-serve-zst-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const original = Buffer.alloc(5000, 'a')
  // A skippable frame (RFC 8878 §3.1.2) with 32 bytes of metadata, then one frame: single segment,
  // 2-byte content size (5000 - 256), and one RLE block repeating 'a' 5000 times.
  const skippable = Buffer.concat([Buffer.from([0x50, 0x2a, 0x4d, 0x18, 32, 0, 0, 0]), Buffer.alloc(32, 7)])
  const fcs = Buffer.alloc(2)
  fcs.writeUInt16LE(5000 - 256)
  const blockHeader = 1 | (1 << 1) | (5000 << 3)
  const frame = Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x60]), fcs, Buffer.from([blockHeader & 0xff, (blockHeader >> 8) & 0xff, blockHeader >> 16, 0x61])])
  const zst = Buffer.concat([skippable, frame])
  writeFileSync(join(dir, 'rle.txt'), original)
  writeFileSync(join(dir, 'rle.txt.zst'), zst)
  writeFileSync(join(dir, 'wrong.txt'), original)
  writeFileSync(join(dir, 'wrong.txt.zst'), Buffer.concat([skippable, Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x60, 0, 0]), frame.subarray(7)])) // records 256 bytes
  const { app, url } = await startPlugin({ root: dir, compress: { onTheFly: false } })
  t.teardown(() => app.close())
  const res = await get(`${url}/rle.txt`, { 'accept-encoding': 'zstd' })
  t.equal(res.headers['content-encoding'], 'zstd', 'served as zstd')
  t.equal(res.headers['x-decoded-content-length'], '5000')
  t.ok(res.body.equals(zst), 'the sibling byte for byte')
  const wrong = await get(`${url}/wrong.txt`, { 'accept-encoding': 'zstd' })
  t.equal(wrong.headers['content-encoding'], undefined, 'a sibling recording another size is ignored')
  t.ok(wrong.body.equals(original))
})

t.test('stale and useless siblings are not served (D3)', async t => {
  const { writeFileSync, utimesSync } = await import('node:fs')
  const { mkdtempSync } = await import('node:fs')
  const { tmpdir } = await import('node:os')
  const dir = mkdtempSync(join(tmpdir(), 'wasm-serve-stale-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'old.wasm'), SQLITE)
  writeFileSync(join(dir, 'old.wasm.br'), BR)
  const past = new Date(Date.now() - 60_000)
  utimesSync(join(dir, 'old.wasm.br'), past, past) // older than its original
  writeFileSync(join(dir, 'wrong.wasm'), SQLITE.subarray(0, 500_000))
  writeFileSync(join(dir, 'wrong.wasm.gz'), GZ) // decodes to another size (gzip ISIZE)
  writeFileSync(join(dir, 'big.wasm'), TINY)
  writeFileSync(join(dir, 'big.wasm.br'), Buffer.concat([TINY, TINY])) // not smaller
  const warnings: string[] = []
  const { default: Fastify } = await import('fastify')
  const { default: wasmServe } = await import('../src/plugin.js')
  const app = Fastify({ logger: { level: 'warn', stream: { write: (line: string) => { warnings.push(line) } } } })
  await app.register(wasmServe, { root: dir, watch: false })
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  for (const name of ['old.wasm', 'wrong.wasm', 'big.wasm']) {
    const res = await get(`${url}/${name}`, { 'accept-encoding': 'br, gzip' })
    t.equal(res.headers['content-encoding'], undefined, `${name} is sent as identity`)
    t.ok(res.body.equals(readFileSync(join(dir, name))))
  }
  t.equal(warnings.filter(w => w.includes('ignoring precompressed sibling')).length, 3, 'each reported once')
})

t.test('a cached copy of another accepted representation of the same bytes revalidates with a 304 (D6)', async t => {
  const { app, url } = await startPlugin({ root })
  t.teardown(() => app.close())
  // A browser cached the identity response (say, before an encoding existed) and now sends br.
  const res = await get(`${url}/sqlite3.wasm`, { 'accept-encoding': 'gzip, deflate, br', 'if-none-match': etagOf(SQLITE) })
  t.equal(res.status, 304)
  t.equal(res.headers.etag, etagOf(SQLITE), 'the 304 keeps the ETag of the copy the client holds')
  t.equal(res.headers.vary, 'Accept-Encoding')
  const notAccepted = await get(`${url}/sqlite3.wasm`, { 'accept-encoding': 'gzip', 'if-none-match': etagOf(BR) })
  t.equal(notAccepted.status, 200, 'a br copy does not validate for a client that does not accept br')
  t.equal(notAccepted.headers['content-encoding'], 'gzip')
})
