// The delivery rules over real HTTP: the server the CLI runs, with the same assertions over each
// transport (HTTP/1.1, HTTP/1.1 over TLS, HTTP/2), then the plugin in a Fastify app for what only
// HTTP/1.1 or the plugin's own body handling can show (pooled buffers, pipelining, onSend hooks).
import t from 'tap'
import { copyFileSync, readFileSync, utimesSync, writeFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { connect } from 'node:net'
import { Readable } from 'node:stream'
import { request } from 'undici'
import { join } from 'node:path'
import { get } from './helpers/http.js'
import { until } from './helpers/poll.js'
import { BR, GZ, JS, SITE, SQLITE, TINY, makeSite, tempDir } from './helpers/site.js'
import { etagOf, openUnder, startPlugin } from './helpers/server.js'
import { TRANSPORTS } from './helpers/transports.js'

// A .gz without its original, for the decoded size a lone sibling announces (D5).
const root = makeSite(t, { ...SITE, 'Build/other.wasm.gz': GZ })

for (const transport of TRANSPORTS) {
  t.test(`delivery rules over ${transport.name}`, async t => {
    const { get } = await transport.start(t, { root })

    t.test('serves the br sibling with the original Content-Type and exact lengths (D1, D3, D5)', async t => {
      const res = await get('/sqlite3.wasm', { 'accept-encoding': 'gzip, deflate, br, zstd' })
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
        const res = await get('/sqlite3.wasm', { 'accept-encoding': ae })
        t.equal(res.headers['content-encoding'], 'gzip', ae)
        t.ok(res.body.equals(GZ))
        t.equal(res.headers['content-type'], 'application/wasm')
      }
    })

    t.test('identity without Accept-Encoding, with Vary and no charset (D1, D7)', async t => {
      const res = await get('/sqlite3.wasm')
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
      const res = await get('/sqlite3.wasm', { 'accept-encoding': 'identity;q=0, *;q=0' })
      t.equal(res.status, 406)
      t.equal(res.headers.vary, 'Accept-Encoding')
    })

    t.test('a tiny module is never encoded and a non-compressible file does not Vary (D7)', async t => {
      const tiny = await get('/tiny.wasm', { 'accept-encoding': 'br' })
      t.equal(tiny.headers['content-encoding'], undefined)
      t.ok(tiny.body.equals(TINY))
      t.equal(tiny.headers['content-type'], 'application/wasm')
      const png = await get('/logo.png', { 'accept-encoding': 'br' })
      t.equal(png.headers['content-type'], 'image/png')
      t.equal(png.headers.vary, undefined)
    })

    t.test('text types carry charset=utf-8', async t => {
      t.equal((await get('/app.js')).headers['content-type'], 'text/javascript; charset=utf-8')
      t.equal((await get('/')).headers['content-type'], 'text/html; charset=utf-8')
    })

    t.test('content-derived ETags differ per representation (D6)', async t => {
      const br = await get('/sqlite3.wasm', { 'accept-encoding': 'br' })
      const gz = await get('/sqlite3.wasm', { 'accept-encoding': 'gzip' })
      const id = await get('/sqlite3.wasm')
      t.equal(br.headers.etag, etagOf(BR))
      t.equal(gz.headers.etag, etagOf(GZ))
      t.equal(id.headers.etag, etagOf(SQLITE))
      t.equal(new Set([br.headers.etag, gz.headers.etag, id.headers.etag]).size, 3)
      t.notOk(br.headers.etag!.startsWith('W/'), 'strong')
    })

    t.test('If-None-Match: exact, list, weak and * give 304 with validators and no body (D6, D7)', async t => {
      const tag = etagOf(BR)
      for (const inm of [tag, `"nope", ${tag}`, `W/${tag}`, '*']) {
        const res = await get('/sqlite3.wasm', { 'accept-encoding': 'br', 'if-none-match': inm })
        t.equal(res.status, 304, inm)
        t.equal(res.body.length, 0)
        t.equal(res.headers.etag, tag)
        t.equal(res.headers.vary, 'Accept-Encoding')
        t.equal(res.headers['cache-control'], 'no-cache')
        t.equal(res.headers['content-type'], 'application/wasm')
      }
      const other = await get('/sqlite3.wasm', { 'accept-encoding': 'gzip', 'if-none-match': tag })
      t.equal(other.status, 200, 'the br tag does not validate the gzip representation')
    })

    t.test('If-Modified-Since gives 304 unless If-None-Match is present (D6)', async t => {
      const first = await get('/sqlite3.wasm')
      const lm = first.headers['last-modified']!
      t.equal((await get('/sqlite3.wasm', { 'if-modified-since': lm })).status, 304)
      t.equal((await get('/sqlite3.wasm', { 'if-modified-since': 'Thu, 01 Jan 1970 00:00:00 GMT' })).status, 200)
      t.equal((await get('/sqlite3.wasm', { 'if-modified-since': lm, 'if-none-match': '"other"' })).status, 200)
      t.equal((await get('/sqlite3.wasm', { 'if-modified-since': 'garbage' })).status, 200)
    })

    t.test('ranges come from the identity bytes, with Vary, even when br is accepted (D8)', async t => {
      const res = await get('/sqlite3.wasm', { range: 'bytes=100-199', 'accept-encoding': 'br' })
      t.equal(res.status, 206)
      t.equal(res.headers['content-range'], `bytes 100-199/${SQLITE.length}`)
      t.equal(res.headers['content-length'], '100')
      t.equal(res.headers['content-encoding'], undefined)
      t.equal(res.headers.vary, 'Accept-Encoding')
      t.equal(res.headers['content-type'], 'application/wasm')
      t.ok(res.body.equals(SQLITE.subarray(100, 200)))
      const suffix = await get('/sqlite3.wasm', { range: 'bytes=-10' })
      t.ok(suffix.body.equals(SQLITE.subarray(SQLITE.length - 10)))
      const open = await get('/sqlite3.wasm', { range: `bytes=${SQLITE.length - 5}-` })
      t.equal(open.headers['content-range'], `bytes ${SQLITE.length - 5}-${SQLITE.length - 1}/${SQLITE.length}`)
      const clamp = await get('/sqlite3.wasm', { range: `bytes=0-${SQLITE.length * 2}` })
      t.equal(clamp.status, 206)
      t.equal(clamp.body.length, SQLITE.length)
    })

    t.test('unsatisfiable range → 416 with bytes */size; invalid ranges → 200 (D8)', async t => {
      const bad = await get('/sqlite3.wasm', { range: `bytes=${SQLITE.length}-` })
      t.equal(bad.status, 416)
      t.equal(bad.headers['content-range'], `bytes */${SQLITE.length}`)
      t.equal((await get('/sqlite3.wasm', { range: 'bytes=-0' })).status, 416)
      for (const range of ['bytes=abc', 'items=0-5', 'bytes=9-1', 'bytes=0-1,9-5']) {
        const res = await get('/sqlite3.wasm', { range })
        t.equal(res.status, 200, range)
        t.equal(res.body.length, SQLITE.length)
      }
    })

    t.test('If-Range: matching strong ETag or date gives 206, anything else the whole file (D8)', async t => {
      const id = await get('/sqlite3.wasm')
      t.equal((await get('/sqlite3.wasm', { range: 'bytes=0-9', 'if-range': id.headers.etag! })).status, 206)
      t.equal((await get('/sqlite3.wasm', { range: 'bytes=0-9', 'if-range': id.headers['last-modified']! })).status, 206)
      t.equal((await get('/sqlite3.wasm', { range: 'bytes=0-9', 'if-range': '"stale"' })).status, 200)
      t.equal((await get('/sqlite3.wasm', { range: 'bytes=0-9', 'if-range': `W/${id.headers.etag!}` })).status, 200)
    })

    t.test('HEAD returns exactly the headers GET would, without a body (D9)', async t => {
      for (const headers of [{ 'accept-encoding': 'br' }, {}, { range: 'bytes=0-9' }]) {
        const g = await get('/sqlite3.wasm', headers)
        const h = await get('/sqlite3.wasm', headers, 'HEAD')
        t.equal(h.status, g.status)
        t.equal(h.body.length, 0)
        for (const name of ['content-type', 'content-length', 'content-encoding', 'etag', 'vary', 'last-modified', 'cache-control', 'x-decoded-content-length', 'content-range']) {
          t.equal(h.headers[name], g.headers[name], `${name} ${JSON.stringify(headers)}`)
        }
      }
    })

    t.test('a direct request for x.wasm.br gets the wasm type and Content-Encoding br (D3, Unity)', async t => {
      const br = await get('/Build/game.wasm.br', { 'accept-encoding': 'gzip, br' })
      t.equal(br.headers['content-type'], 'application/wasm')
      t.equal(br.headers['content-encoding'], 'br')
      t.equal(br.headers['content-length'], String(BR.length))
      t.ok(br.body.equals(BR))
      t.equal(br.headers.vary, 'Accept-Encoding')
      const raw = await get('/Build/game.wasm.br')
      t.equal(raw.headers['content-encoding'], undefined, 'never claims br to a client that did not accept it')
      t.equal(raw.headers['content-type'], 'application/octet-stream')
      t.ok(raw.body.equals(BR))
      t.not(raw.headers.etag, br.headers.etag)
      const sibling = await get('/sqlite3.wasm.br', { 'accept-encoding': 'br' })
      t.equal(sibling.headers['x-decoded-content-length'], String(SQLITE.length))
      // Without its original, a .gz still says what it decodes to (its ISIZE trailer), so a progress
      // bar ends at exactly 100 % (D5); brotli records no size, so a lone .br has none.
      const gz = await get('/Build/other.wasm.gz', { 'accept-encoding': 'gzip' })
      t.equal(gz.headers['content-encoding'], 'gzip')
      t.equal(gz.headers['x-decoded-content-length'], String(SQLITE.length))
      t.equal(br.headers['x-decoded-content-length'], undefined, 'a lone .br: no decoded size to announce')
    })

    t.test('directories: index.html answers the directory URL, no listings (the 301 adding the slash: robustness.test.ts)', async t => {
      const index = await get('/')
      t.equal(index.status, 200)
      t.match(index.body.toString(), /<h1>site<\/h1>/)
      const build = await get('/Build/')
      t.equal(build.status, 404, 'no directory listing')
      t.notMatch(build.body.toString(), /game/)
    })

    t.test('default cache policy: hashed names immutable, others no-cache (D10)', async t => {
      t.equal((await get('/app.js')).headers['cache-control'], 'no-cache')
      t.equal((await get('/index.html')).headers['cache-control'], 'no-cache')
    })

    t.test('missing files are 404 and never HTML in place of wasm', async t => {
      const res = await get('/missing.wasm')
      t.equal(res.status, 404)
      t.notMatch(res.headers['content-type'] ?? '', /wasm/)
    })
  })
}

for (const transport of TRANSPORTS) {
  t.test(`memoryBudget 0: files streamed from disk arrive whole with their lengths, concurrently, over ${transport.name} (D5)`, async t => {
    const { get } = await transport.start(t, { root, memoryBudget: 0 })
    const wanted = [{ ae: 'identity', bytes: SQLITE }, { ae: 'br', bytes: BR }, { ae: 'gzip', bytes: GZ }]
    const results = await Promise.all(Array.from({ length: 18 }, (_, i) => wanted[i % wanted.length]!).map(async w => ({ w, res: await get('/sqlite3.wasm', { 'accept-encoding': w.ae }) })))
    for (const { w, res } of results) {
      t.equal(res.headers['content-length'], String(w.bytes.length), `${w.ae}: length`)
      t.equal(res.headers['transfer-encoding'], undefined, `${w.ae}: never chunked`)
      t.ok(res.body.equals(w.bytes), `${w.ae}: byte for byte`)
    }
    const range = await get('/sqlite3.wasm', { range: 'bytes=100000-299999', 'accept-encoding': 'br' })
    t.equal(range.status, 206)
    t.equal(range.headers['content-length'], '200000')
    t.ok(range.body.equals(SQLITE.subarray(100_000, 300_000)), 'a range of the identity bytes')
    t.equal((await get('/app.js')).body.toString(), JS.toString())
  })
}

t.test('streamed files reuse read buffers without mixing bytes between responses (D5, D16)', async t => {
  // A file larger than the socket buffers, read slowly by some clients: their writes stay pending,
  // holding the pooled buffer, while fast clients take buffers for other responses. A buffer handed
  // back to the pool too early would be read into while a socket still sends from it.
  const big = randomBytes(12 << 20)
  const dir = makeSite(t, { 'big.bin': big })
  for (const name of ['sqlite3.wasm', 'sqlite3.wasm.br', 'sqlite3.wasm.gz']) copyFileSync(join(root, name), join(dir, name))
  const { url, port } = await startPlugin(t, { root: dir, memoryBudget: 0 })
  const slowly = async () => {
    const res = await request(`${url}/big.bin`, { headers: { 'accept-encoding': 'identity' } })
    const chunks: Buffer[] = []
    for await (const chunk of res.body) {
      chunks.push(chunk)
      // A slow reader, not a wait for anything: the pause keeps this response's writes pending.
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
    const socket = connect(port, '127.0.0.1')
    socket.write('GET /big.bin HTTP/1.1\r\nHost: x\r\nAccept-Encoding: identity\r\n\r\n')
    await new Promise(resolve => socket.once('data', resolve))
    socket.destroy()
  }
  await until(() => openUnder(dir) === 0, { what: 'the files of the clients that went to be closed' })
  t.equal(openUnder(dir), 0, 'no file handle left open')
})

t.test('pipelined requests on a connection that dies leave no file open (HTTP/1.1)', async t => {
  // Large enough that the first response cannot fit in the socket buffers and stalls.
  const dir = makeSite(t, { 'big.bin': randomBytes(24 << 20) })
  let received = 0
  const { port } = await startPlugin(t, { root: dir, memoryBudget: 0 }, { before: app => app.addHook('onRequest', async () => { received++ }) })
  for (let i = 0; i < 4; i++) {
    // Three requests at once: the first response stalls (the client stops reading), the other two
    // wait behind it, and Node 20 never closes those when the connection goes.
    const socket = connect(port, '127.0.0.1')
    socket.write('GET /big.bin HTTP/1.1\r\nHost: x\r\nAccept-Encoding: identity\r\n\r\n'.repeat(3))
    await new Promise<void>(resolve => {
      let got = 0
      socket.on('data', (d: Buffer) => { got += d.length; if (got > 100_000) { socket.pause(); resolve() } })
    })
    // All three requests reached the server: two responses wait behind the stalled one.
    await until(() => received === 3 * (i + 1), { what: 'the three pipelined requests to reach the server' })
    socket.destroy()
    await until(() => openUnder(dir) === 0, { what: 'the files to be closed with the connection' })
    t.equal(openUnder(dir), 0, `round ${i + 1}: every file handle closed with its connection`)
  }
})

t.test('a streamed body read by an onSend hook arrives intact (fresh buffers, not pooled ones)', async t => {
  // A hook that reads the whole file body and keeps every chunk it was given before answering:
  // chunks read into one reused buffer would all end up holding the last bytes read.
  const { url } = await startPlugin(t, { root, memoryBudget: 0 }, {
    fastify: { forceCloseConnections: true },
    before: app => app.addHook('onSend', async (_request, _reply, payload) => {
      if (!(payload instanceof Readable)) return payload
      const chunks: Buffer[] = []
      for await (const chunk of payload) chunks.push(chunk as Buffer)
      return Buffer.concat(chunks)
    }),
  })
  const bodies = await Promise.all(Array.from({ length: 6 }, async () => (await get(`${url}/sqlite3.wasm`, { 'accept-encoding': 'identity' })).body))
  for (const body of bodies) t.ok(body.equals(SQLITE), 'byte for byte through the hook')
})

t.test('ETags are identical across restarts (D6)', async t => {
  const a = await startPlugin(t, { root })
  const first = await get(`${a.url}/sqlite3.wasm`, { 'accept-encoding': 'br' })
  await a.close()
  const b = await startPlugin(t, { root, memoryBudget: 0 })
  const second = await get(`${b.url}/sqlite3.wasm`, { 'accept-encoding': 'br' })
  t.equal(second.headers.etag, first.headers.etag)
})

t.test('a .zst sibling is checked past skippable frames, as zstd reads it (D3, D5)', async t => {
  const original = Buffer.alloc(5000, 'a')
  // A skippable frame (RFC 8878 §3.1.2) with 32 bytes of metadata, then one frame: single segment,
  // 2-byte content size (5000 - 256), and one RLE block repeating 'a' 5000 times.
  const skippable = Buffer.concat([Buffer.from([0x50, 0x2a, 0x4d, 0x18, 32, 0, 0, 0]), Buffer.alloc(32, 7)])
  const fcs = Buffer.alloc(2)
  fcs.writeUInt16LE(5000 - 256)
  const blockHeader = 1 | (1 << 1) | (5000 << 3)
  const frame = Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x60]), fcs, Buffer.from([blockHeader & 0xff, (blockHeader >> 8) & 0xff, blockHeader >> 16, 0x61])])
  const zst = Buffer.concat([skippable, frame])
  const dir = makeSite(t, {
    'rle.txt': original,
    'rle.txt.zst': zst,
    'wrong.txt': original,
    'wrong.txt.zst': Buffer.concat([skippable, Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x60, 0, 0]), frame.subarray(7)]), // records 256 bytes
  })
  const { url } = await startPlugin(t, { root: dir, compress: { onTheFly: false } })
  const res = await get(`${url}/rle.txt`, { 'accept-encoding': 'zstd' })
  t.equal(res.headers['content-encoding'], 'zstd', 'served as zstd')
  t.equal(res.headers['x-decoded-content-length'], '5000')
  t.ok(res.body.equals(zst), 'the sibling byte for byte')
  const wrong = await get(`${url}/wrong.txt`, { 'accept-encoding': 'zstd' })
  t.equal(wrong.headers['content-encoding'], undefined, 'a sibling recording another size is ignored')
  t.ok(wrong.body.equals(original))
})

t.test('stale and useless siblings are not served (D3)', async t => {
  const dir = tempDir(t, 'stale')
  writeFileSync(join(dir, 'old.wasm'), SQLITE)
  writeFileSync(join(dir, 'old.wasm.br'), BR)
  const past = new Date(Date.now() - 60_000)
  utimesSync(join(dir, 'old.wasm.br'), past, past) // older than its original
  writeFileSync(join(dir, 'wrong.wasm'), SQLITE.subarray(0, 500_000))
  writeFileSync(join(dir, 'wrong.wasm.gz'), GZ) // decodes to another size (gzip ISIZE)
  writeFileSync(join(dir, 'big.wasm'), TINY)
  writeFileSync(join(dir, 'big.wasm.br'), Buffer.concat([TINY, TINY])) // not smaller
  const { url, logs } = await startPlugin(t, { root: dir })
  for (const name of ['old.wasm', 'wrong.wasm', 'big.wasm']) {
    const res = await get(`${url}/${name}`, { 'accept-encoding': 'br, gzip' })
    t.equal(res.headers['content-encoding'], undefined, `${name} is sent as identity`)
    t.ok(res.body.equals(readFileSync(join(dir, name))))
  }
  t.equal(logs.filter(l => String(l.msg).includes('ignoring precompressed sibling')).length, 3, 'each reported once')
})

t.test('a cached copy of another accepted representation of the same bytes revalidates with a 304 (D6)', async t => {
  const { url } = await startPlugin(t, { root })
  // A browser cached the identity response (say, before an encoding existed) and now sends br.
  const res = await get(`${url}/sqlite3.wasm`, { 'accept-encoding': 'gzip, deflate, br', 'if-none-match': etagOf(SQLITE) })
  t.equal(res.status, 304)
  t.equal(res.headers.etag, etagOf(SQLITE), 'the 304 keeps the ETag of the copy the client holds')
  t.equal(res.headers.vary, 'Accept-Encoding')
  const notAccepted = await get(`${url}/sqlite3.wasm`, { 'accept-encoding': 'gzip', 'if-none-match': etagOf(BR) })
  t.equal(notAccepted.status, 200, 'a br copy does not validate for a client that does not accept br')
  t.equal(notAccepted.headers['content-encoding'], 'gzip')
})
