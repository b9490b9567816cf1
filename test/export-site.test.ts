/**
 * The site model every export target is written from (src/export/site.ts) must say what the server
 * sends: for every file, the headers it lists are those of wasm-serve's own response for that path,
 * and its siblings and decoded sizes are those the server negotiates.
 */
import t from 'tap'
import { gzipSync } from 'node:zlib'
import { request } from 'undici'
import { resolveOptions, type WasmServeOptions } from '../src/options.js'
import { readSite, type SiteFile } from '../src/export/site.js'
import { BR, GZ, JS, PAGE, SQLITE, TINY, makeSite } from './helpers/site.js'
import { startCliApp } from './helpers/server.js'

const FILES = {
  'sqlite3.wasm': SQLITE,
  'sqlite3.wasm.br': BR,
  'sqlite3.wasm.gz': GZ,
  'assets/app.3f2a1b9c.wasm': TINY,
  'assets/main-DiwrgTda.js': JS,
  'index.html': PAGE,
  'docs/index.html': PAGE,
  'Build/game.wasm.br': BR,
  'with space.txt': 'hello\n',
  '.env': 'SECRET=1\n',
}

const OPTIONS: WasmServeOptions = {
  crossOriginIsolation: 'require-corp',
  cors: { origin: ['https://a.example', 'https://b.example'] },
  preload: ['/sqlite3.wasm'],
  spa: 'index.html',
  compress: { onTheFly: false },
  // No delta announcements (D18): an engine exported to cannot make deltas, so the model has none,
  // and on Node 24 the server would announce them for modules.
  routes: [{ match: 'docs/**', cacheControl: 'public, max-age=60', headers: { 'X-Robots-Tag': 'noindex' } }, { match: '**', dictionary: false }],
}

/** Headers of a response that an engine computes itself, per representation (not in the model). */
const OWN = new Set(['content-length', 'etag', 'last-modified', 'accept-ranges', 'content-encoding', 'x-decoded-content-length', 'date', 'connection', 'keep-alive'])

t.test('every file the model lists carries exactly the headers wasm-serve sends for it', async t => {
  const root = makeSite(t, FILES)
  const site = await readSite({ ...resolveOptions(OPTIONS), root })
  const server = await startCliApp(t, { ...OPTIONS, root })
  t.same(site.files.map(f => f.path), ['Build/game.wasm.br', 'assets/app.3f2a1b9c.wasm', 'assets/main-DiwrgTda.js', 'docs/index.html', 'index.html', 'sqlite3.wasm', 'sqlite3.wasm.br', 'sqlite3.wasm.gz', 'with space.txt'], 'sorted, no dotfile')
  t.same(site.dirs, ['', 'Build', 'assets', 'docs'])
  for (const file of site.files) {
    // A direct sibling's model is its encoded response; everything else's, the identity one.
    const accept = file.direct !== undefined ? file.direct : 'identity'
    const res = await request(server.url + file.url, { headers: { 'accept-encoding': accept } })
    await res.body.dump()
    t.equal(res.statusCode, 200, file.url)
    const sent = Object.fromEntries(Object.entries(res.headers).filter(([name]) => !OWN.has(name)))
    t.same(file.headers, sent, `${file.path}: the model's headers are the response's`)
    t.equal(file.type, res.headers['content-type'], `${file.path}: type`)
  }
})

t.test('siblings, decoded sizes and the files that want siblings are those the server negotiates', async t => {
  const root = makeSite(t, { ...FILES, 'big.js': JS, 'Build/game.framework.js.gz': gzipSync(JS) })
  const site = await readSite({ ...resolveOptions(OPTIONS), root })
  const server = await startCliApp(t, { ...OPTIONS, root })
  const byPath = new Map<string, SiteFile>(site.files.map(f => [f.path, f]))
  const sqlite = byPath.get('sqlite3.wasm')!
  t.same(sqlite.encodings, [{ coding: 'br', file: 'sqlite3.wasm.br', size: BR.length }, { coding: 'gzip', file: 'sqlite3.wasm.gz', size: GZ.length }])
  t.equal(sqlite.decodedSize, SQLITE.length)
  t.equal(sqlite.headers.vary, 'Accept-Encoding, Origin')
  for (const coding of ['br', 'gzip']) {
    const res = await request(server.url + '/sqlite3.wasm', { headers: { 'accept-encoding': coding } })
    await res.body.dump()
    t.equal(res.headers['content-encoding'], coding)
    t.equal(res.headers['x-decoded-content-length'], String(sqlite.decodedSize))
  }
  const game = byPath.get('Build/game.wasm.br')!
  t.equal(game.direct, 'br', 'a lone sibling is answered with its coding')
  t.equal(game.type, 'application/wasm')
  t.same(game.encodings, [])
  t.equal(game.decodedSize, undefined, 'brotli records no decoded size, so none is sent')
  const framework = byPath.get('Build/game.framework.js.gz')!
  t.equal(framework.direct, 'gzip')
  t.equal(framework.decodedSize, JS.length, 'gzip records the decoded size')
  t.equal(byPath.get('big.js')!.wantsSiblings, true, 'compressible, above minSize, no sibling')
  t.equal(byPath.get('assets/app.3f2a1b9c.wasm')!.wantsSiblings, false, 'below minSize')
  t.equal(byPath.get('assets/app.3f2a1b9c.wasm')!.hashed, true)
  t.equal(byPath.get('sqlite3.wasm')!.hashed, false)
  t.equal(byPath.get('with space.txt')!.url, '/with%20space.txt')
  t.same(byPath.get('index.html')!.links, ['</sqlite3.wasm>; rel=preload; as=fetch; crossorigin'])
})

t.test('two reads of the same root give the same model', async t => {
  const root = makeSite(t, FILES)
  const options = { ...resolveOptions(OPTIONS), root }
  t.same(await readSite(options), await readSite(options))
})
