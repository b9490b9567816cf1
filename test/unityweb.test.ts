// Unity's `.unityweb` files ("Decompression Fallback" builds): the name hides the encoding, so the
// server reads the first bytes as Unity's loader does (src/unityweb.ts), and answers gzip and brotli
// files as lone siblings (D3 in docs/delivery.md) typed by the name inside (D1).
import t from 'tap'
import { brotliCompressSync } from 'node:zlib'
import { get } from './helpers/http.js'
import { decode } from './helpers/decode.js'
import { JS, SQLITE, WEBP, makeSite, unityBrotli, unityGzip } from './helpers/site.js'
import { startCliApp } from './helpers/server.js'
import { sniffUnityWeb } from '../src/unityweb.js'

const DATA = Buffer.concat([Buffer.from('UnityWebData1.0\0', 'latin1'), WEBP.subarray(0, 200_000)])

t.test('sniffUnityWeb finds gzip by its magic and brotli by Unity\'s marker, and nothing else', async t => {
  t.equal(sniffUnityWeb(unityGzip(JS)), 'gzip')
  t.equal(sniffUnityWeb(unityBrotli(JS)), 'br')
  t.equal(sniffUnityWeb(unityBrotli(SQLITE)), 'br', 'whatever window the stream declares')
  t.equal(sniffUnityWeb(unityBrotli(JS).subarray(0, 20)), undefined, 'a marker cut short is not one')
  t.equal(sniffUnityWeb(brotliCompressSync(JS)), undefined, 'brotli without the marker has nothing to recognise')
  t.equal(sniffUnityWeb(SQLITE), undefined, 'a module: \\0asm')
  t.equal(sniffUnityWeb(DATA), undefined, 'Unity\'s uncompressed data file')
  t.equal(sniffUnityWeb(JS), undefined)
  t.equal(sniffUnityWeb(Buffer.alloc(0)), undefined)
  const marked = unityBrotli(JS)
  const other = Buffer.from(marked)
  other[1] = other[1]! ^ 0x40
  t.equal(sniffUnityWeb(other), undefined, 'a metadata block of another length is not Unity\'s')
  const wide = Buffer.from(marked)
  wide[0] = 0x11
  t.equal(sniffUnityWeb(wide), undefined, 'the invalid 7-bit WBITS 0010001')
})

t.test('a .unityweb file gets the Content-Encoding its bytes have and the type of the name inside (D1, D3, Unity)', async t => {
  const files = {
    'Build/game.wasm.unityweb': unityBrotli(SQLITE),
    'Build/game.data.unityweb': unityGzip(DATA),
    'Build/game.framework.js.unityweb': unityGzip(JS),
    'Build/plain.wasm.unityweb': SQLITE,
    'Build/plain.framework.js.unityweb': JS,
    'Build/game.loader.js': JS,
  }
  const root = makeSite(t, files)
  const { url } = await startCliApp(t, { root })

  const cases = [
    { path: '/Build/game.wasm.unityweb', coding: 'br', type: 'application/wasm', original: SQLITE, decoded: undefined },
    { path: '/Build/game.data.unityweb', coding: 'gzip', type: 'application/octet-stream', original: DATA, decoded: DATA.length },
    { path: '/Build/game.framework.js.unityweb', coding: 'gzip', type: 'text/javascript; charset=utf-8', original: JS, decoded: JS.length },
  ] as const
  for (const c of cases) {
    const encoded = await get(url + c.path, { 'accept-encoding': 'gzip, deflate, br' })
    t.equal(encoded.status, 200, c.path)
    t.equal(encoded.headers['content-type'], c.type, `${c.path}: the inner name's type`)
    t.equal(encoded.headers['content-encoding'], c.coding, `${c.path}: the coding its bytes have`)
    t.equal(encoded.headers.vary, 'Accept-Encoding')
    t.equal(encoded.headers['content-length'], String(files[c.path.slice(1) as keyof typeof files].length))
    t.equal(encoded.headers['x-decoded-content-length'], c.decoded === undefined ? undefined : String(c.decoded), 'gzip records its size, brotli none (D5)')
    t.ok((await decode(encoded.body, c.coding)).equals(c.original), `${c.path} decodes to the original`)
    // A client that does not accept the coding gets the bytes as they are: Unity's loader then
    // decompresses them in JavaScript, which is what the fallback is for.
    const raw = await get(url + c.path, { 'accept-encoding': c.coding === 'br' ? 'gzip' : 'br' })
    t.equal(raw.headers['content-encoding'], undefined, `${c.path}: never a coding the client refused`)
    t.equal(raw.headers['content-type'], 'application/octet-stream')
    t.ok(raw.body.equals(files[c.path.slice(1) as keyof typeof files]))
    t.not(raw.headers.etag, encoded.headers.etag, 'each set of bytes has its own ETag (D6)')
  }

  const plain = await get(url + '/Build/plain.wasm.unityweb', { 'accept-encoding': 'br' })
  t.equal(plain.headers['content-type'], 'application/wasm', 'uncompressed: a module, streaming-compilable')
  t.equal(plain.headers['content-encoding'], undefined)
  t.ok(plain.body.equals(SQLITE))
  const script = await get(url + '/Build/plain.framework.js.unityweb')
  t.equal(script.headers['content-type'], 'text/javascript; charset=utf-8')
  t.equal(script.headers['content-encoding'], undefined)
  const head = await get(url + '/Build/game.wasm.unityweb', { 'accept-encoding': 'br' }, 'HEAD')
  t.equal(head.headers['content-encoding'], 'br', 'HEAD says what GET sends (D9)')
  t.equal(head.body.length, 0)
})
