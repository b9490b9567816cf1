/**
 * Delta updates (RFC 9842; docs/delivery.md, "Delta updates"): modules announce themselves as
 * dictionaries, and a browser that holds an earlier version gets the new one compressed against it.
 * Checked with real releases of sqlite3.wasm: every delta is decoded with the old bytes by node:zlib
 * (not by the server's code) and compared byte for byte with the new module.
 */
import t, { type Test } from 'tap'
import { createHash } from 'node:crypto'
import { readFileSync, utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { runCompress } from '../src/compress/index.js'
import { dictionarySupport } from '../src/dictionary.js'
import { get, type Got } from './helpers/http.js'
import { until } from './helpers/poll.js'
import { etagOf, startPlugin } from './helpers/server.js'
import { SQLITE, makeSite, tempDir, writeFiles } from './helpers/site.js'
import { decodeDelta } from './helpers/decode.js'

/** An earlier release of the same module: the current one with a stretch changed, as a rebuild does. */
const OLD = Buffer.from(SQLITE)
OLD.write('an earlier release of this module', 400_000, 'latin1')
OLD.write('and one more change', 700_000, 'latin1')
const NEW = SQLITE
const sha = (b: Buffer) => createHash('sha256').update(b).digest()
const available = (b: Buffer) => `:${sha(b).toString('base64')}:`
const V1 = 'assets/sqlite3.1a2b3c4d.wasm'
const V2 = 'assets/sqlite3.5e6f7a8b.wasm'

const supported = dictionarySupport.dcz || dictionarySupport.dcb
/** Why the delta tests below cannot run here, printed as their skip reason; false where they can. */
const noDeltas = supported ? false : `Node ${process.version} cannot compress with a dictionary (Node 24 can)`
if (!supported) {
  t.comment(`delta updates are off on Node ${process.version} (no zstd, and brotli ignores a dictionary): only what is sent instead is checked`)
  t.test('without dictionary support, modules announce no dictionary and a delta request gets the ordinary answer', async t => {
    const root = makeSite(t, { [V1]: OLD, [V2]: NEW })
    const { url } = await startPlugin(t, { root })
    const res = await get(`${url}/${V2}`, { 'accept-encoding': 'dcz, dcb, br, gzip', 'available-dictionary': available(OLD) })
    t.equal(res.headers['use-as-dictionary'], undefined)
    t.notMatch(res.headers['content-encoding'] ?? '', /^dc[zb]$/, 'neither dcz nor dcb')
    t.ok(res.body.length > 0)
  })
}
t.test('modules announce a match pattern that the next release\'s name satisfies; HTML and routes set to false do not', { skip: noDeltas }, async t => {
  const root = makeSite(t, { [V2]: NEW, 'index.html': '<!doctype html>', 'app.js': 'export const x = 1\n'.repeat(100), 'keep/x.wasm': NEW, 'ided/y.wasm': NEW, 'set/z.wasm': NEW, 'cached/w.wasm': NEW })
  const { url } = await startPlugin(t, {
    root,
    routes: [
      { match: 'keep/**', cacheControl: 'public, max-age=3600', dictionary: false },
      { match: 'ided/**', cacheControl: 'public, max-age=3600', dictionary: { id: 'engine-v1' } },
      { match: 'set/**', cacheControl: 'public, max-age=3600', dictionary: '/set/*.wasm' },
      { match: 'cached/**', cacheControl: 'public, max-age=600' },
    ],
  })
  const wasm = await get(`${url}/${V2}`)
  t.equal(wasm.headers['use-as-dictionary'], 'match="/assets/sqlite3.*.wasm"')
  t.match(wasm.headers.vary, /Available-Dictionary/)
  t.match(wasm.headers['cache-control'], /max-age/, 'and stays cacheable')
  t.equal((await get(`${url}/app.js`)).headers['use-as-dictionary'], undefined, 'a plain name is revalidated every time (no-cache): browsers keep no dictionary from it')
  t.equal((await get(`${url}/cached/w.wasm`)).headers['use-as-dictionary'], 'match="/cached/w.wasm"', 'unless a route keeps it fresh: then it matches itself (the next release at the same URL)')
  t.equal((await get(`${url}/index.html`)).headers['use-as-dictionary'], undefined, 'never a document')
  t.equal((await get(`${url}/keep/x.wasm`)).headers['use-as-dictionary'], undefined, 'dictionary: false')
  t.equal((await get(`${url}/ided/y.wasm`)).headers['use-as-dictionary'], 'match="/ided/y.wasm", id="engine-v1"', 'an id, as an sf-string')
  t.equal((await get(`${url}/set/z.wasm`)).headers['use-as-dictionary'], 'match="/set/*.wasm"', 'a configured pattern')
})

for (const coding of (['dcz', 'dcb'] as const).filter(c => dictionarySupport[c])) {
  t.test(`a browser holding the previous release gets ${coding}, decodable with it to the new module byte for byte`, async t => {
    const root = makeSite(t, { [V1]: OLD, [V2]: NEW })
    const { url } = await startPlugin(t, { root, precompressed: ['br'] })
    const headers = { 'accept-encoding': `${coding}, br`, 'available-dictionary': available(OLD) }
    let res: Got | undefined
    await until(async () => { res = await get(`${url}/${V2}`, headers); return res.headers['content-encoding'] === coding }, { what: `a ${coding} response`, timeout: 30_000 })
    const delta = res!
    t.same(decodeDelta(delta.body, coding, OLD), NEW, 'decoded with the old module: the new one')
    t.equal(Number(delta.headers['content-length']), delta.body.length)
    t.equal(delta.headers['x-decoded-content-length'], String(NEW.length))
    t.equal(delta.headers.etag, etagOf(delta.body), 'its own ETag')
    t.equal(delta.headers['content-type'], 'application/wasm')
    t.match(delta.headers.vary, /Accept-Encoding/)
    t.match(delta.headers.vary, /Available-Dictionary/)
    const br = await get(`${url}/${V2}`, { 'accept-encoding': 'br' })
    t.ok(delta.body.length * 4 < br.body.length, `a fraction of br's bytes (${delta.body.length} against ${br.body.length})`)
    const head = await get(`${url}/${V2}`, headers, 'HEAD')
    const own = (h: Got['headers']) => ({ ...h, date: undefined, connection: undefined, 'keep-alive': undefined })
    t.same(own(head.headers), own(delta.headers), 'HEAD = GET')
    const revalidated = await get(`${url}/${V2}`, { ...headers, 'if-none-match': delta.headers.etag! })
    t.equal(revalidated.status, 304, 'a 304 with the delta\'s ETag')
    t.equal(revalidated.headers.etag, delta.headers.etag)
  })
}

t.test('a dictionaries directory holds an earlier release that is never served', { skip: noDeltas }, async t => {
  const root = makeSite(t, { [V2]: NEW })
  const old = tempDir(t, 'release-1')
  writeFiles(old, { [V1]: OLD, 'secret.txt': 'not served' })
  const { url } = await startPlugin(t, { root, dictionaries: [old] })
  const headers = { 'accept-encoding': 'dcz, dcb, br', 'available-dictionary': available(OLD) }
  let res: Got | undefined
  await until(async () => { res = await get(`${url}/${V2}`, headers); return /^dc[zb]$/.test(res.headers['content-encoding'] ?? '') }, { what: 'a delta', timeout: 30_000 })
  t.same(decodeDelta(res!.body, res!.headers['content-encoding']!, OLD), NEW)
  t.equal((await get(`${url}/${V1}`)).status, 404, 'the old release is not served')
})

t.test('anything else gets the ordinary negotiation, never an error', { skip: noDeltas }, async t => {
  const root = makeSite(t, { [V1]: OLD, [V2]: NEW, 'other/lib.wasm': NEW })
  const { url, app } = await startPlugin(t, { root, precompressed: ['br'] })
  await app.wasmServe.compressionIdle() // br made on the fly: the ordinary answer to compare with
  // Make the delta first, so a wrong answer below could be it.
  const good = { 'accept-encoding': 'dcz, dcb, br', 'available-dictionary': available(OLD) }
  await until(async () => /^dc[zb]$/.test((await get(`${url}/${V2}`, good)).headers['content-encoding'] ?? ''), { what: 'a delta', timeout: 30_000 })
  const cases: Array<[string, Record<string, string>, string]> = [
    ['wrong length', { 'available-dictionary': `:${Buffer.alloc(16).toString('base64')}:` }, V2],
    ['not base64', { 'available-dictionary': ':!!!notbase64!!!notbase64!!!notbase64!!!notb=:' }, V2],
    ['10 KB long', { 'available-dictionary': ':' + 'A'.repeat(10_000) + ':' }, V2],
    ['no colons', { 'available-dictionary': sha(OLD).toString('base64') }, V2],
    ['an unknown dictionary', { 'available-dictionary': available(Buffer.from('something else')) }, V2],
    ['dcz advertised without a dictionary', {}, V2],
    ['a URL the dictionary\'s pattern does not cover', {}, 'other/lib.wasm'],
  ]
  for (const [name, extra, path] of cases) {
    const headers = path === V2 ? { 'accept-encoding': 'dcz, dcb, br', ...extra } : good
    const res = await get(`${url}/${path}`, headers)
    t.equal(res.status, 200, `${name}: 200`)
    t.equal(res.headers['content-encoding'], 'br', `${name}: br (got ${String(res.headers['content-encoding'])})`)
  }
  const repeated = await get(`${url}/${V2}`, { 'accept-encoding': 'dcz, br', 'available-dictionary': `${available(OLD)}, ${available(OLD)}` })
  t.equal(repeated.headers['content-encoding'], 'br', 'a repeated header: br')
})

t.test('a dictionary that changed on disk after indexing is never used', { skip: noDeltas }, async t => {
  const root = makeSite(t, { [V2]: NEW })
  const old = tempDir(t, 'release-1')
  writeFiles(old, { [V1]: OLD })
  const { url, app } = await startPlugin(t, { root, dictionaries: [old], precompressed: ['br'] })
  await app.wasmServe.compressionIdle()
  writeFileSync(join(old, V1), Buffer.concat([OLD.subarray(0, 1000), Buffer.from('changed')]))
  const headers = { 'accept-encoding': 'dcz, dcb, br', 'available-dictionary': available(OLD) }
  for (let i = 0; i < 10; i++) {
    const res = await get(`${url}/${V2}`, headers)
    t.equal(res.headers['content-encoding'], 'br', `request ${i + 1}: br, never a delta against bytes the client does not have`)
    if (res.headers['content-encoding'] !== 'br') break
  }
  t.ok(readFileSync(join(old, V1)).length < OLD.length)
})

/** `wasm-serve compress <root> --dictionary-from <old>` (gzip siblings only: quick), failing the test on a non-zero exit. */
const compressAgainst = async (t: Test, root: string, old: string) => {
  let err = ''
  const sink = (add: (s: string) => void) => new Writable({ write (chunk, _enc, cb) { add(String(chunk)); cb() } })
  t.equal(await runCompress([root, '--dictionary-from', old, '--encodings', 'gzip'], { stdout: sink(() => {}), stderr: sink(s => { err += s }) }), 0, err)
}
/** Release 2 in a root with its build-time deltas against release 1, which is in `old`. */
const builtRelease = async (t: Test) => {
  const root = makeSite(t, { [V2]: NEW })
  const old = tempDir(t, 'release-1')
  writeFiles(old, { [V1]: OLD })
  await compressAgainst(t, root, old)
  return { root, old }
}
const builtName = (coding: string) => `${V2}.${sha(OLD).subarray(0, 8).toString('hex')}.${coding}`

t.test('a build-time delta answers the first request naming its dictionary, held by the server or not; never at its own URL', { skip: noDeltas }, async t => {
  const { root, old } = await builtRelease(t)
  for (const coding of (['dcz', 'dcb'] as const).filter(c => dictionarySupport[c])) {
    const file = readFileSync(join(root, builtName(coding)))
    for (const dictionaries of [[], [old]]) {
      const { url, app } = await startPlugin(t, { root, dictionaries, compress: { onTheFly: false } })
      const res = await get(`${url}/${V2}`, { 'accept-encoding': `${coding}, br, gzip`, 'available-dictionary': available(OLD) })
      const held = dictionaries.length > 0 ? 'held' : 'not held'
      t.equal(res.headers['content-encoding'], coding, `${coding}, dictionary ${held}: the first request gets the delta`)
      t.same(res.body, file, 'the file compress wrote, byte for byte (not one made on the fly)')
      t.same(decodeDelta(res.body, coding, OLD), NEW, 'decoded with the old module: the new one')
      t.equal(res.headers['x-decoded-content-length'], String(NEW.length))
      t.equal(res.headers.etag, etagOf(file))
      t.match(res.headers.vary, /Available-Dictionary/)
      t.equal((await get(`${url}/${builtName(coding)}`)).status, 404, 'the delta file is not served at its own URL')
      await app.close()
    }
  }
  const { url } = await startPlugin(t, { root, dotfiles: 'allow' })
  t.equal((await get(`${url}/${builtName('dcz')}`)).status, 404, 'nor with dotfiles allowed')
})

t.test('a stale build-time delta (older than its module) is never served: the delta is made from the module', { skip: noDeltas }, async t => {
  const { root, old } = await builtRelease(t)
  const changed = Buffer.from(NEW)
  changed.write('rebuilt after the deltas were written', 300_000, 'latin1')
  writeFileSync(join(root, V2), changed)
  const later = new Date(Date.now() + 10_000)
  utimesSync(join(root, V2), later, later)
  const { url } = await startPlugin(t, { root, dictionaries: [old], compress: { onTheFly: false } })
  const coding = dictionarySupport.dcz ? 'dcz' : 'dcb'
  const headers = { 'accept-encoding': `${coding}, br`, 'available-dictionary': available(OLD) }
  const first = await get(`${url}/${V2}`, headers)
  t.not(first.headers['content-encoding'], coding, 'the first request: no delta yet, the stale file is not one')
  const delta = await until(async () => { const res = await get(`${url}/${V2}`, headers); return res.headers['content-encoding'] === coding && res }, { what: 'a delta made on the fly', timeout: 30_000 })
  t.same(decodeDelta(delta.body, coding, OLD), changed, 'the delta of the module as it is now')
  t.notSame(delta.body, readFileSync(join(root, builtName(coding))), 'not the stale file')
})
