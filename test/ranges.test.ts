// Ranges for range readers (D8): several ranges as multipart/byteranges, merged and capped, with
// If-Range and HEAD, from files in memory and streamed from disk, over every transport; the
// cross-origin preflight a page needs to ask for them (D13); the types of the data files range
// readers open (D1). The single-range basics are in http.test.ts.
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseByteranges } from './helpers/byteranges.js'
import { get } from './helpers/http.js'
import { BR, SQLITE, makeSite, offsets } from './helpers/site.js'
import { startCliApp } from './helpers/server.js'
import { TRANSPORTS } from './helpers/transports.js'
import { MAX_RANGES } from '../src/range.js'

/** Big enough that a part spans several 64 KB reads when streamed. */
const DATA = offsets(3 * 1024 * 1024 + 7)
const FILES = { 'lazy.data': DATA, 'sqlite3.wasm': SQLITE, 'sqlite3.wasm.br': BR }
const root = makeSite(t, FILES)
const tokens = (value: string | undefined) => (value ?? '').split(',').map(s => s.trim().toLowerCase()).filter(s => s !== '')

const MODES = [{ name: 'in memory', memoryBudget: '256MB' }, { name: 'streamed from disk', memoryBudget: 0 }]

for (const transport of TRANSPORTS) {
  for (const mode of MODES) {
    t.test(`ranges over ${transport.name}, ${mode.name}`, async t => {
      // No encodings made on the fly: a range never uses them, and brotli over 3 MB would only cost time.
      const { get } = await transport.start(t, { root, memoryBudget: mode.memoryBudget, compress: { onTheFly: false } })

      t.test('a single range is exactly its bytes (D8)', async t => {
        const res = await get('/lazy.data', { range: 'bytes=1000000-1199999' })
        t.equal(res.status, 206)
        t.equal(res.headers['content-range'], `bytes 1000000-1199999/${DATA.length}`)
        t.equal(res.headers['content-length'], '200000')
        t.ok(res.body.equals(DATA.subarray(1_000_000, 1_200_000)), 'the bytes of the range')
      })

      t.test('several ranges → one multipart/byteranges 206, each part with its Content-Type and Content-Range (D8)', async t => {
        const res = await get('/lazy.data', { range: 'bytes=2000000-2300000, 0-99, -5' })
        t.equal(res.status, 206)
        t.match(res.headers['content-type'], /^multipart\/byteranges; boundary=[0-9a-f]{32}$/)
        t.equal(res.headers['content-range'], undefined, 'the parts carry the ranges')
        t.equal(res.headers['content-length'], String(res.body.length), 'an exact length')
        t.equal(res.headers['transfer-encoding'], undefined, 'never chunked')
        const parts = parseByteranges(res.headers['content-type'], res.body)
        t.same(parts.map(p => [p.start, p.end, p.size]), [[0, 99, DATA.length], [2_000_000, 2_300_000, DATA.length], [DATA.length - 5, DATA.length - 1, DATA.length]], 'in ascending order')
        for (const part of parts) {
          t.equal(part.headers['content-type'], 'application/octet-stream')
          t.ok(part.body.equals(DATA.subarray(part.start, part.end + 1)), `bytes ${part.start}-${part.end}`)
        }
        const other = await get('/lazy.data', { range: 'bytes=0-99,2000000-2300000,-5' })
        t.not(other.headers['content-type'], res.headers['content-type'], 'a new boundary for every response')
      })

      t.test('several ranges of a file with a br sibling come from the identity bytes (D8)', async t => {
        const res = await get('/sqlite3.wasm', { range: 'bytes=0-7,100000-100099', 'accept-encoding': 'br' })
        t.equal(res.status, 206)
        t.equal(res.headers['content-encoding'], undefined)
        t.equal(res.headers.vary, 'Accept-Encoding')
        const identity = await get('/sqlite3.wasm')
        t.equal(res.headers.etag, identity.headers.etag, 'the identity ETag')
        const parts = parseByteranges(res.headers['content-type'], res.body)
        t.same(parts.map(p => p.headers['content-type']), ['application/wasm', 'application/wasm'])
        t.ok(parts[0]!.body.equals(SQLITE.subarray(0, 8)) && parts[1]!.body.equals(SQLITE.subarray(100_000, 100_100)), 'identity bytes, not br')
      })

      t.test('overlapping and adjacent ranges are merged; one left is a plain 206 (D8)', async t => {
        const merged = await get('/lazy.data', { range: 'bytes=100-199,150-299,300-399,5000-5009,0-9' })
        const parts = parseByteranges(merged.headers['content-type'], merged.body)
        t.same(parts.map(p => [p.start, p.end]), [[0, 9], [100, 399], [5000, 5009]])
        t.ok(parts[1]!.body.equals(DATA.subarray(100, 400)))
        const one = await get('/lazy.data', { range: 'bytes=0-9,5-19,20-29' })
        t.equal(one.status, 206)
        t.equal(one.headers['content-range'], `bytes 0-29/${DATA.length}`)
        t.equal(one.headers['content-type'], 'application/octet-stream')
        t.ok(one.body.equals(DATA.subarray(0, 30)))
        const repeated = await get('/lazy.data', { range: `bytes=${Array(MAX_RANGES).fill('0-1048575').join(',')}` })
        t.equal(repeated.headers['content-range'], `bytes 0-1048575/${DATA.length}`, `${MAX_RANGES} copies of one range send it once`)
        t.equal(repeated.body.length, 1_048_576)
      })

      t.test('unsatisfiable ranges among several are dropped; none satisfiable → 416; too many or an invalid one → the whole file (D8)', async t => {
        const some = await get('/lazy.data', { range: `bytes=0-3,${DATA.length}-,8-11` })
        t.same(parseByteranges(some.headers['content-type'], some.body).map(p => [p.start, p.end]), [[0, 3], [8, 11]])
        const none = await get('/lazy.data', { range: `bytes=${DATA.length}-,${DATA.length + 10}-${DATA.length + 20},-0` })
        t.equal(none.status, 416)
        t.equal(none.headers['content-range'], `bytes */${DATA.length}`)
        const spread = Array.from({ length: MAX_RANGES }, (_, i) => `${i * 1000}-${i * 1000 + 1}`)
        const most = await get('/lazy.data', { range: `bytes=${spread.join(',')}` })
        t.equal(most.status, 206)
        t.equal(parseByteranges(most.headers['content-type'], most.body).length, MAX_RANGES, `${MAX_RANGES} ranges are served`)
        for (const range of [`bytes=${[...spread, '999999-1000000'].join(',')}`, 'bytes=0-1,9-5', 'bytes=0-1,x', 'bytes=,']) {
          const res = await get('/lazy.data', { range })
          t.equal(res.status, 200, range.length > 40 ? `${MAX_RANGES + 1} ranges` : range)
          t.equal(res.headers['content-length'], String(DATA.length))
        }
      })

      t.test('If-Range with several ranges: the current strong ETag or date gives the parts; an old or weak ETag the whole file (D8)', async t => {
        const head = await get('/lazy.data', {}, 'HEAD')
        const etag = head.headers.etag!
        const range = 'bytes=0-3,4096-8191'
        for (const ifRange of [etag, head.headers['last-modified']!]) {
          const res = await get('/lazy.data', { range, 'if-range': ifRange })
          t.equal(res.status, 206, ifRange)
          t.same(parseByteranges(res.headers['content-type'], res.body).map(p => p.body.length), [4, 4096])
        }
        for (const ifRange of ['"an-older-version"', `W/${etag}`, 'Thu, 01 Jan 1970 00:00:00 GMT']) {
          const res = await get('/lazy.data', { range, 'if-range': ifRange })
          t.equal(res.status, 200, ifRange)
          t.equal(res.headers['content-type'], 'application/octet-stream')
          t.ok(res.body.equals(DATA), 'the whole file')
        }
      })

      t.test('HEAD with several ranges has the headers GET has, without a body (D8, D9)', async t => {
        const range = 'bytes=0-3,1000000-1065535'
        const g = await get('/lazy.data', { range })
        const h = await get('/lazy.data', { range }, 'HEAD')
        t.equal(h.status, 206)
        t.equal(h.body.length, 0)
        for (const name of ['content-length', 'etag', 'last-modified', 'cache-control', 'accept-ranges', 'content-range']) t.equal(h.headers[name], g.headers[name], name)
        t.match(h.headers['content-type'], /^multipart\/byteranges; boundary=[0-9a-f]{32}$/, 'the same type (its boundary is new)')
      })
    })
  }
}

t.test('a file changed on disk before a multipart request is answered from its new bytes (D8, D16)', async t => {
  const dir = makeSite(t, { 'lazy.data': DATA })
  const { url } = await startCliApp(t, { root: dir, memoryBudget: 0, compress: { onTheFly: false }, revalidate: 0 })
  const before = await get(`${url}/lazy.data`, { range: 'bytes=0-3,200000-200003' })
  const changed = Buffer.from(DATA).fill(0xab, 0, 300_000)
  writeFileSync(join(dir, 'lazy.data'), changed)
  const after = await get(`${url}/lazy.data`, { range: 'bytes=0-3,200000-200003', 'if-range': before.headers.etag! })
  t.equal(after.status, 200, 'If-Range with the old ETag: the whole new file')
  t.ok(after.body.equals(changed))
  const parts = await get(`${url}/lazy.data`, { range: 'bytes=0-3,200000-200003' })
  t.not(parts.headers.etag, before.headers.etag, 'a new ETag')
  t.same(parseByteranges(parts.headers['content-type'], parts.body).map(p => p.body.toString('hex')), ['abababab', 'abababab'])
})

t.test('cross-origin: a preflight for several ranges is allowed and the multipart 206 is readable (D8, D13)', async t => {
  const { url } = await startCliApp(t, { root, cors: { origin: '*' }, compress: { onTheFly: false } })
  const origin = 'https://app.example'
  // `bytes=0-1,4-5` is not a CORS-safelisted Range value (Fetch: only a single range is), so a page's fetch preflights it.
  const preflight = await get(`${url}/lazy.data`, { origin, 'access-control-request-method': 'GET', 'access-control-request-headers': 'range' }, 'OPTIONS')
  t.equal(preflight.status, 204)
  t.equal(preflight.headers['access-control-allow-origin'], '*')
  t.ok(tokens(preflight.headers['access-control-allow-headers']).includes('range'), 'Range is allowed')
  const res = await get(`${url}/lazy.data`, { origin, range: 'bytes=0-1,4-5' })
  t.equal(res.status, 206)
  t.equal(res.headers['access-control-allow-origin'], '*')
  t.same(parseByteranges(res.headers['content-type'], res.body).map(p => p.body.toString('hex')), ['0000', '0400'])
})

t.test('data files range readers open: registered types, identity when never encoded, ranges from the identity bytes (D1, D8)', async t => {
  const dir = makeSite(t, {
    'db.sqlite': DATA.subarray(0, 8192),
    'db.sqlite3': DATA.subarray(0, 8192),
    'table.parquet': DATA.subarray(0, 8192),
    'table.arrow': DATA.subarray(0, 8192),
    'other.db': DATA.subarray(0, 8192),
    'analytics.duckdb': DATA.subarray(0, 8192),
    'lazy.data': DATA.subarray(0, 8192),
  })
  const { url } = await startCliApp(t, { root: dir })
  const types: Record<string, string> = {
    'db.sqlite': 'application/vnd.sqlite3',
    'db.sqlite3': 'application/vnd.sqlite3',
    'table.parquet': 'application/vnd.apache.parquet',
    'table.arrow': 'application/vnd.apache.arrow.file',
    'other.db': 'application/octet-stream',
    'analytics.duckdb': 'application/octet-stream',
    'lazy.data': 'application/octet-stream',
  }
  for (const [name, type] of Object.entries(types)) {
    const res = await get(`${url}/${name}`, { 'accept-encoding': 'gzip, br, zstd', range: 'bytes=4-7,8192-' })
    t.equal(res.status, 206, name)
    t.equal(res.headers['content-range'], 'bytes 4-7/8192', `${name}: the satisfiable range alone`)
    t.equal(res.headers['content-type'], type, `${name}: ${type}`)
    t.equal(res.headers['content-encoding'], undefined)
    t.equal(res.body.readUInt32LE(0), 4)
    // Vary: Accept-Encoding is on exactly the files that have or may get an encoding (D7).
    if (name !== 'lazy.data') t.equal(res.headers.vary, undefined, `${name}: never encoded on the fly`)
  }
})
