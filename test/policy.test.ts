// The route policy (D10–D13) as plain functions: the content-hash detector on names real build
// tools emit, the preload Link values, and the per-file headers compilePolicy computes at catalog
// time. HTTP behaviour is in delivery-policy.test.ts.
import t from 'tap'
import { IMMUTABLE, REVALIDATE, compilePolicy, isHashedName, preloadLink } from '../src/policy.js'
import { resolveOptions, type WasmServeOptions } from '../src/options.js'

/** [name as served, is it content-hashed, where the name comes from] */
const NAMES: Array<[string, boolean, string]> = [
  // Vite / Rollup: `[name]-[hash:8]`, base64url (may contain - and _, may have no digit)
  ['assets/index-DiwrgTda.js', true, 'Vite entry chunk, hash without digits, in assets/'],
  ['assets/index-C-ArJ-KI.js', true, 'Vite hash containing dashes, no digit, in assets/'],
  ['index-C-ArJ-KI.js', false, 'the same without digit outside a bundler folder'],
  ['vendor-B8Ldc9_9.js', true, 'Rollup hash containing an underscore'],
  ['assets/app-BxT3k9aZ.wasm', true, 'Vite ?url wasm asset'],
  ['assets/index-BQ3v7bzq.css', true, 'Vite CSS asset'],
  ['assets/sqlite3-CqQ6hJ8n.wasm', true, 'Emscripten module bundled by Vite'],
  ['assets/my_crate_bg-D4f0aK2x.wasm', true, 'wasm-pack output bundled by Vite'],
  // webpack
  ['main.3f9a1c2b4e5d6f7a8b9c.js', true, 'webpack 5 [contenthash], 20 hex'],
  ['main.3f9a1c2b.js', true, 'webpack [name].[contenthash:8]'],
  ['static/js/main.e5c5b1a3.chunk.js', true, 'create-react-app chunk'],
  ['runtime.0123abcd4567ef89.js', true, 'webpack xxhash64 contenthash, 16 hex'],
  ['0123456789abcdef0123.module.wasm', true, 'wasm-pack via webpack asyncWebAssembly'],
  ['app.3f9a1c2b.wasm', true, 'a hashed module, as in D10'],
  // Parcel: `[name].[hash:8]`
  ['index.2b3c4d5e.js', true, 'Parcel 2 script'],
  ['styles.9c3f8a1b.css', true, 'Parcel 2 stylesheet'],
  // esbuild: `[name]-[hash]`, 8 base32 upper-case characters
  ['main-K7ZBXP5Q.js', true, 'esbuild entry'],
  ['chunk-2WXYZQ3A.js', true, 'esbuild split chunk'],
  ['polyfills-ABCDEFGH.js', false, 'esbuild hash without digits, outside a bundler folder: not counted'],
  // Unity "Name Files As Hashes": 32 hex, then the precompressed suffix
  ['Build/8e5d0f6c0a9b6e3f1f7c3d2e1a0b9c8d.wasm.br', true, 'Unity brotli build'],
  ['Build/0f1e2d3c4b5a69788796a5b4c3d2e1f0.data.gz', true, 'Unity gzip data'],

  // Must NOT count: versions, years, dates, plain names, words
  ['jquery-3.7.1.min.js', false, 'version number'],
  ['lodash-4.17.21.js', false, 'version number'],
  ['bootstrap-5.3.3.min.css', false, 'version number'],
  ['v1.2.3/app.js', false, 'version in the directory, not the name'],
  ['report-2024.pdf', false, 'a year'],
  ['20240101.log', false, 'a date'],
  ['release-20240101.zip', false, 'a date after a dash'],
  ['main-12345678.js', false, 'all digits after a dash'],
  ['vendor-bundle.js', false, 'a word after a dash'],
  ['app-settings.js', false, 'an 8-letter lower-case word after a dash'],
  ['deadbeef.js', false, 'hex letters only, a word'],
  ['index.html', false, 'the page itself'],
  ['app.wasm', false, 'plain name'],
  ['react-dom.production.min.js', false, 'plain name with dots'],
  // Emscripten output keeps the names it was given
  ['sqlite3.wasm', false, 'Emscripten (sqlite-wasm)'],
  ['ffmpeg-core.wasm', false, 'Emscripten (ffmpeg.wasm)'],
  ['ffmpeg-core.worker.js', false, 'Emscripten pthread worker'],
  ['pyodide.asm.wasm', false, 'Emscripten (Pyodide)'],
  // wasm-pack without a bundler
  ['pkg/my_crate_bg.wasm', false, 'wasm-pack --target web'],
  ['ort-wasm-simd-threaded.wasm', false, 'onnxruntime-web, an 8-letter word last'],
  // Godot exports are not hashed
  ['godot.wasm', false, 'Godot'],
  ['index.wasm', false, 'Godot 4 web export'],
  ['index.pck', false, 'Godot 4 pack'],
  ['index.audio.worklet.js', false, 'Godot 4 audio worklet'],
  ['index.side.wasm', false, 'Godot 4 GDExtension side module'],
  // Unity without "Name Files As Hashes"
  ['Build/WebGL.wasm.br', false, 'Unity default names'],
  ['Build/WebGL.framework.js.br', false, 'Unity default names'],
  ['Build/game.wasm.br', false, 'brotli sibling of a plain name'],
]

t.test('recognises content hashes from real build tools and leaves versions and plain names alone', async t => {
  for (const [name, hashed, source] of NAMES) {
    t.equal(isHashedName(name), hashed, `${name} (${source}) ${hashed ? 'is' : 'is not'} hashed`)
  }
})

t.test('a PascalCase word after a dash is not a hash (fonts and icons served unhashed)', async t => {
  for (const name of ['OpenSans-SemiBold.woff2', 'Inter-Variable.woff2', 'icon-Download.svg', 'widget-Carousel.js', 'page-Checkout.js', 'icon-Facebook.svg', 'Lato-Hairline.woff', 'photo-IMG_1234.jpg']) {
    t.equal(isHashedName(name), false, name)
  }
})

t.test('preload links carry crossorigin; scripts get modulepreload', async t => {
  t.equal(preloadLink('/app.wasm'), '</app.wasm>; rel=preload; as=fetch; crossorigin')
  t.equal(preloadLink('/assets/app-BxT3k9aZ.wasm'), '</assets/app-BxT3k9aZ.wasm>; rel=preload; as=fetch; crossorigin')
  t.equal(preloadLink('/app.js'), '</app.js>; rel=modulepreload; crossorigin')
  t.equal(preloadLink('/worker.mjs'), '</worker.mjs>; rel=modulepreload; crossorigin')
  t.equal(preloadLink('/app.js?v=2'), '</app.js?v=2>; rel=modulepreload; crossorigin', 'a query does not hide the extension')
  t.equal(preloadLink('/data.json'), '</data.json>; rel=preload; as=fetch; crossorigin')
  t.equal(preloadLink('/my file.wasm'), '</my%20file.wasm>; rel=preload; as=fetch; crossorigin', 'spaces are percent-encoded')
  t.equal(preloadLink('/my%20file.wasm'), '</my%20file.wasm>; rel=preload; as=fetch; crossorigin', 'already-encoded URLs are not encoded twice')
  t.notMatch(preloadLink('/a>b.wasm'), /<\/a>b/, 'a ">" cannot end the URL reference early')
})

function policyFor (options: WasmServeOptions) {
  return compilePolicy(resolveOptions({ root: '/srv', ...options }))
}

t.test('without config hashed files are immutable and everything else revalidates', async t => {
  const policy = policyFor({})
  t.equal(policy('assets/index-BXaH3k2f.js', 'text/javascript; charset=utf-8').headers['cache-control'], IMMUTABLE)
  t.equal(policy('Build/8e5d0f6c0a9b6e3f1f7c3d2e1a0b9c8d.wasm.br', 'application/wasm').headers['cache-control'], IMMUTABLE)
  t.equal(policy('sqlite3.wasm', 'application/wasm').headers['cache-control'], REVALIDATE)
  t.equal(policy('index.html', 'text/html; charset=utf-8').headers['cache-control'], REVALIDATE)
  t.same(policy('index.html', 'text/html; charset=utf-8').links, [], 'no preload links without config')
  t.equal(policy('index.html', 'text/html; charset=utf-8').headers.link, undefined)
})

t.test('the first matching route sets Cache-Control and extra headers, names lower-cased', async t => {
  const policy = policyFor({
    routes: [
      { match: 'assets/**', cacheControl: 'public, max-age=600', headers: { 'X-Content-Type-Options': 'nosniff' } },
      { match: '**/*.wasm', cacheControl: 'public, max-age=60', headers: { 'X-Route': 'wasm' } },
    ],
  })
  const inAssets = policy('assets/app-BxT3k9aZ.wasm', 'application/wasm').headers
  t.equal(inAssets['cache-control'], 'public, max-age=600', 'the first route wins over the second and over the hash default')
  t.equal(inAssets['x-content-type-options'], 'nosniff')
  t.equal(inAssets['x-route'], undefined, 'the second route adds nothing')
  const elsewhere = policy('lib/sqlite3.wasm', 'application/wasm').headers
  t.equal(elsewhere['cache-control'], 'public, max-age=60')
  t.equal(elsewhere['x-route'], 'wasm')
  t.equal(policy('index.html', 'text/html').headers['cache-control'], REVALIDATE, 'unmatched files keep the default')
})

t.test('a route without cacheControl keeps the default cache policy and adds its headers', async t => {
  const policy = policyFor({ routes: [{ match: '**', headers: { 'X-Frame-Options': 'DENY' } }] })
  t.equal(policy('main-K7ZBXP5Q.js', 'text/javascript').headers['cache-control'], IMMUTABLE)
  t.equal(policy('main-K7ZBXP5Q.js', 'text/javascript').headers['x-frame-options'], 'DENY')
})

t.test('preload links go on HTML only: route preloads first, then top-level preloads', async t => {
  const policy = policyFor({
    routes: [{ match: '**/*.html', preload: ['/sqlite3.wasm'] }],
    preload: ['/app.js'],
  })
  const page = policy('index.html', 'text/html; charset=utf-8')
  t.same(page.links, ['</sqlite3.wasm>; rel=preload; as=fetch; crossorigin', '</app.js>; rel=modulepreload; crossorigin'])
  t.equal(page.headers.link, page.links.join(', '))
  const wasm = policy('sqlite3.wasm', 'application/wasm')
  t.same(wasm.links, [])
  t.equal(wasm.headers.link, undefined)
})

t.test('cross-origin isolation: COOP and COEP on documents, CORP on every file', async t => {
  for (const mode of ['require-corp', 'credentialless'] as const) {
    const policy = policyFor({ crossOriginIsolation: mode })
    const page = policy('index.html', 'text/html; charset=utf-8').headers
    t.equal(page['cross-origin-opener-policy'], 'same-origin', mode)
    t.equal(page['cross-origin-embedder-policy'], mode, mode)
    const wasm = policy('sqlite3.wasm', 'application/wasm').headers
    t.equal(wasm['cross-origin-resource-policy'], 'same-origin', `${mode}: CORP same-origin without CORS`)
    t.equal(wasm['cross-origin-embedder-policy'], undefined, `${mode}: no COEP on a module`)
  }
  const shared = policyFor({ crossOriginIsolation: 'require-corp', cors: { origin: '*' } })
  t.equal(shared('sqlite3.wasm', 'application/wasm').headers['cross-origin-resource-policy'], 'cross-origin', 'CORS-shared files may be embedded cross-origin')
  t.equal(policyFor({})('index.html', 'text/html').headers['cross-origin-opener-policy'], undefined, 'off by default')
})

t.test('document isolation: Document-Isolation-Policy on documents and scripts, no COOP or COEP, CORP on every file', async t => {
  for (const [mode, dip] of [['document', 'isolate-and-require-corp'], ['document-credentialless', 'isolate-and-credentialless']] as const) {
    const policy = policyFor({ crossOriginIsolation: mode })
    const page = policy('index.html', 'text/html; charset=utf-8').headers
    t.equal(page['document-isolation-policy'], dip, `${mode}: DIP on the page`)
    t.equal(page['cross-origin-opener-policy'], undefined, `${mode}: no COOP, so a popup keeps its opener`)
    t.equal(page['cross-origin-embedder-policy'], undefined, `${mode}: no COEP`)
    t.equal(page['cross-origin-resource-policy'], 'same-origin', `${mode}: CORP on the page`)
    const worker = policy('worker.js', 'text/javascript; charset=utf-8').headers
    t.equal(worker['document-isolation-policy'], dip, `${mode}: DIP on a script a worker may start from`)
    t.equal(worker['cross-origin-embedder-policy'], undefined, `${mode}: no COEP on a script`)
    const wasm = policy('sqlite3.wasm', 'application/wasm').headers
    t.equal(wasm['cross-origin-resource-policy'], 'same-origin', `${mode}: CORP on the module`)
    t.equal(wasm['document-isolation-policy'], undefined, `${mode}: no DIP on a module`)
    t.equal(wasm['cross-origin-opener-policy'], undefined, `${mode}: no COOP on a module`)
  }
  const shared = policyFor({ crossOriginIsolation: 'document', cors: { origin: '*' } })
  t.equal(shared('sqlite3.wasm', 'application/wasm').headers['cross-origin-resource-policy'], 'cross-origin', 'CORS-shared files may be embedded cross-origin')
})

t.test('CORS with "*" is static: Allow-Origin, exposed lengths and ETag, Timing-Allow-Origin', async t => {
  const headers = policyFor({ cors: { origin: '*' } })('sqlite3.wasm', 'application/wasm').headers
  t.equal(headers['access-control-allow-origin'], '*')
  const exposed = (headers['access-control-expose-headers'] ?? '').split(/\s*,\s*/).map(s => s.toLowerCase())
  t.ok(exposed.includes('x-decoded-content-length'), 'exposes X-Decoded-Content-Length')
  t.ok(exposed.includes('etag'), 'exposes ETag')
  t.equal(headers['timing-allow-origin'], '*')
  const listed = policyFor({ cors: { origin: ['https://app.example'] } })('sqlite3.wasm', 'application/wasm').headers
  t.equal(listed['access-control-allow-origin'], undefined, 'a list of origins is answered per request, not precomputed')
})
