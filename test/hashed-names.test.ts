// D10: which file names count as content-hashed (served immutable for a year), on names taken from
// real build outputs and real human-named assets. A wrong "hashed" pins a changing file in browsers
// for a year; a missed one costs a 304. Every name is one a tool or a person actually produces; the
// comment gives where from (public repositories and framework documentation).
import t from 'tap'
import { cacheRules, hashIn, isHashedName, IMMUTABLE, REVALIDATE } from '../src/policy.js'
import { resolveOptions } from '../src/options.js'

/** [path relative to the root, hashed?, where it comes from] */
const HASHED: Array<[string, string]> = [
  // Vite 5+/Rollup 4: assets/[name]-[hash:8], base64url (- and _ allowed)
  ['assets/index-BXaH3k2f.js', 'Vite entry chunk'],
  ['assets/index-2TCwO9Hs.js', 'Vite chunk (an app\'s __vite__mapDeps list)'],
  ['assets/index-CkUg_pFd.css', 'Vite CSS with an underscore in the hash'],
  ['assets/index-DiAzB68-.js', 'Vite hash ending in a dash'],
  ['assets/apple-Dh8W-knn.js', 'Vite hash with a dash inside'],
  ['assets/PolygonDrawer-3u0kE7kj.js', 'Vite chunk of a PascalCase module'],
  ['assets/TriangleDrawer-ipDbJmMK.js', 'Vite hash without a digit, in assets/'],
  ['assets/error-summary-BDTw_dGB.js', 'Vite chunk of a dashed module name'],
  ['assets/rdf-editor-mCQ4F84x.js', 'Vite chunk'],
  ['assets/index-legacy-D44yECni.js', '@vitejs/plugin-legacy chunk'],
  ['assets/polyfills-legacy-B97CwC2N.js', '@vitejs/plugin-legacy polyfills'],
  ['assets/sqlite3-CqQ6hJ8n.wasm', 'Emscripten module imported with ?url by Vite'],
  ['assets/index-b8500bfc.css', 'Vite 3/4: 8 hex'],
  // Astro: _astro/[name].[hash:8]
  ['_astro/index.6eOqeIuv.css', 'Astro stylesheet'],
  ['_astro/client.ShtJu5IE.js', 'Astro island client'],
  ['_astro/houston.CZZyCf7p.webp', 'Astro optimised image'],
  ['_astro/print.BJ0teN4y.css', 'Starlight print stylesheet'],
  ['_astro/index.DuFj8Y_O.css', 'Astro stylesheet with an underscore'],
  ['_astro/jsx-runtime.D3GSbgeI.js', 'Astro React runtime chunk'],
  ['_astro/MobileTableOfContents.astro_astro_type_script_index_0_lang.C181hMzK.js', 'Astro hoisted script'],
  // SvelteKit: _app/immutable/{entry,chunks,nodes,assets}/
  ['_app/immutable/entry/app.mxS2q_jC.js', 'SvelteKit app entry'],
  ['_app/immutable/entry/start.LWk3BKaK.js', 'SvelteKit start entry'],
  ['_app/immutable/nodes/0.D3fX8Hc_.js', 'SvelteKit layout node'],
  ['_app/immutable/chunks/CazlH01L.js', 'SvelteKit chunk named by its hash alone'],
  ['_app/immutable/assets/0.BGvNULEu.css', 'SvelteKit stylesheet'],
  ['_app/immutable/chunks/stores.31affb43.js', 'SvelteKit 1 (Vite 4): 8 hex'],
  ['_app/immutable/entry/start.vIgh-Gbe.js', 'SvelteKit entry, hash with a dash and no digit'],
  ['assets/index-DiwrgTda.js', 'Vite hash without a digit'],
  // esbuild and Angular 17+ (application builder): [name]-[hash:8], base32 upper case
  ['main-K7ZBXP5Q.js', 'esbuild entry'],
  ['polyfills-FFHMD2TL.js', 'Angular 17 polyfills'],
  ['chunk-2WXYZQ3A.js', 'esbuild split chunk'],
  // webpack and tools built on it
  ['main.3f9a1c2b4e5d6f7a8b9c.js', 'webpack 5 [contenthash], 20 hex'],
  ['runtime.0123abcd4567ef89.js', 'webpack xxhash64 contenthash, 16 hex'],
  ['main.3f2a1b9c8d7e6f50.js', 'Angular CLI up to 16, 16 hex'],
  ['static/js/main.e5c5b1a3.chunk.js', 'create-react-app chunk'],
  ['static/css/main.073c9b0a.css', 'create-react-app stylesheet'],
  ['static/media/logo.6ce24c58023cc2f8fd88fe9d219db6c6.svg', 'create-react-app media, 32 hex'],
  ['0123456789abcdef0123.module.wasm', 'wasm-pack via webpack asyncWebAssembly'],
  // Parcel 2: [name].[hash:8]
  ['index.2b3c4d5e.js', 'Parcel 2 script'],
  ['styles.9c3f8a1b.css', 'Parcel 2 stylesheet'],
  // Next.js: _next/static/
  ['_next/static/chunks/pages/_app-7e6f12ab34cd56ef.js', 'Next.js pages router'],
  ['_next/static/chunks/polyfills-42372ed130431b0a.js', 'Next.js polyfills'],
  ['_next/static/chunks/webpack-c491b2a411a4f8fa.js', 'Next.js runtime'],
  ['_next/static/media/c9a5bc6a7c948fb0-s.p.woff2', 'next/font file'],
  ['_next/static/css/a1b2c3d4e5f6a7b8.css', 'Next.js stylesheet'],
  // Rust: trunk, and Unity "Name Files As Hashes"
  ['app-4b1f0e5a9c3d7e21_bg.wasm', 'trunk: <crate>-<16 hex>_bg.wasm'],
  ['app-4b1f0e5a9c3d7e21.js', 'trunk glue'],
  ['Build/8e5d0f6c0a9b6e3f1f7c3d2e1a0b9c8d.wasm.br', 'Unity brotli build'],
  ['Build/0f1e2d3c4b5a69788796a5b4c3d2e1f0.data.gz', 'Unity gzip data'],
]

const PLAIN: Array<[string, string]> = [
  // Issue 16's examples: human CamelCase words, in and out of bundler folders
  ['font-NotoSans.woff2', 'a font named by a person'],
  ['title-GameOver.png', 'a game screen'],
  ['model-ResNet50.onnx', 'a model named with its depth'],
  ['sprite-Player01.png', 'a numbered sprite'],
  ['level-Stage_01.json', 'a numbered level'],
  ['og-image-1200x630.png', 'Open Graph image named by its size'],
  ['screenshot-1280x800.png', 'a PWA manifest screenshot named by its size'],
  ['firmware-nrf52840.uf2', 'a board name: lower case and digits'],
  ['firmware-esp32-c3.bin', 'a chip name'],
  ['cmaps/Adobe-GB1-UCS2.bcmap', 'pdfjs-dist cmaps: capitals with a 1'],
  ['report-Q3FY2024.pdf', 'a quarter and a year'],
  ['sprites-32x32_v2.png', 'a size and a version'],
  ['api-v1beta12.js', 'an API version'],
  ['assets/add-24px.svg', 'a Material icon under a bundler folder'],
  ['assets/bg-1080p.mp4', 'a video named by its resolution'],
  ['assets/DSCF0042.jpg', 'a Fujifilm camera file: capitals with 0 (not base32)'],
  ['assets/P1010001.JPG', 'a Panasonic camera file'],
  ['music-Theme_A1.ogg', 'a game soundtrack cue: a word and a labelled number'],
  ['assets/boss-Fight_B2.png', 'a labelled sprite under a bundler folder'],
  ['bg-MainMenu.png', 'a background'],
  ['logo-DarkMode.svg', 'a theme logo'],
  ['assets/font-NotoSans.woff2', 'the same in public/assets/, copied as is by Vite'],
  ['assets/model-ResNet50.onnx', 'public/assets/ model'],
  ['assets/sprite-Player01.png', 'public/assets/ sprite'],
  ['assets/logo-DarkMode.svg', 'public/assets/ logo'],
  ['assets/photo-IMG_1234.jpg', 'a camera file name'],
  ['assets/sfx-TRACK_02.ogg', 'an upper-case sound name'],
  ['assets/icon-SETTINGS.svg', 'an upper-case icon name'],
  ['assets/mesh-Item3D.glb', 'a number and a unit letter'],
  ['assets/model-YOLOv8n.onnx', 'a model name'],
  ['assets/scene-Intro_v3.json', 'a versioned scene'],
  ['assets/level-World1_1.json', 'a numbered world'],
  ['assets/OpenSans-SemiBold.woff2', 'Google Fonts download'],
  ['assets/Lato-Hairline.woff', 'Google Fonts download'],
  ['facade01.png', 'a word of hex letters and a number'],
  // versions, dates and plain names
  ['jquery-3.7.1.min.js', 'version number'],
  ['bootstrap-5.3.3.min.css', 'version number'],
  ['report-2024.pdf', 'a year'],
  ['release-20240101.zip', 'a date'],
  ['main-12345678.js', 'all digits'],
  ['app-settings.js', 'a lower-case word'],
  ['deadbeef.js', 'hex letters only'],
  ['index.html', 'the page'],
  // WebAssembly toolchains that keep the names they were given
  ['sqlite3.wasm', 'Emscripten (sqlite-wasm)'],
  ['ffmpeg-core.wasm', 'Emscripten (ffmpeg.wasm)'],
  ['pyodide.asm.wasm', 'Pyodide'],
  ['python_stdlib.zip', 'Pyodide'],
  ['pkg/my_crate_bg.wasm', 'wasm-pack --target web'],
  ['ort-wasm-simd-threaded.wasm', 'onnxruntime-web'],
  ['index.wasm', 'Godot 4 web export'],
  ['index.pck', 'Godot 4 pack'],
  ['Build/WebGL.framework.js.br', 'Unity default names'],
  ['Build/game.wasm.br', 'Unity default names'],
  ['_astro/ec.tm3va.css', 'Expressive Code: a 5-character hash, too short to be sure'],
]

t.test(`${HASHED.length} names from build outputs are hashed, ${PLAIN.length} human and toolchain names are not (D10)`, async t => {
  t.ok(HASHED.length + PLAIN.length >= 60)
  for (const [name, source] of HASHED) t.equal(isHashedName(name), true, `${name} (${source}) is hashed`)
  for (const [name, source] of PLAIN) t.equal(isHashedName(name), false, `${name} (${source}) is not hashed`)
})

t.test('the hash found is the part a bundler wrote', async t => {
  t.equal(hashIn('assets/index-BXaH3k2f.js'), 'BXaH3k2f')
  t.equal(hashIn('_app/immutable/chunks/CazlH01L.js'), 'CazlH01L')
  t.equal(hashIn('Build/8e5d0f6c0a9b6e3f1f7c3d2e1a0b9c8d.wasm.br'), '8e5d0f6c0a9b6e3f1f7c3d2e1a0b9c8d')
  t.equal(hashIn('app-4b1f0e5a9c3d7e21_bg.wasm'), '4b1f0e5a9c3d7e21')
})

t.test('a framework\'s immutable folder is immutable whatever the names in it (Next.js, SvelteKit)', async t => {
  const rule = cacheRules(resolveOptions({}))
  t.same(rule('_next/static/I0JjY_SsFNIFkY51LHHZ8/_buildManifest.js'), { cacheControl: IMMUTABLE, rule: 'bundler folder "_next/static/"' })
  t.same(rule('_app/immutable/entry/start.abc.js'), { cacheControl: IMMUTABLE, rule: 'bundler folder "_app/immutable/"' })
  t.same(rule('static/assets/_next/x.js'), { cacheControl: REVALIDATE, rule: 'default: no content hash in the name' })
})

t.test('precedence: a route with cacheControl, then noCache, then immutable, then the name', async t => {
  const rule = cacheRules(resolveOptions({
    routes: [{ match: 'vendor/**', cacheControl: 'public, max-age=600' }, { match: '**/*.wasm', headers: { 'X-A': 'b' } }],
    noCache: ['assets/config-*.json', 'vendor/**'],
    immutable: ['models/**', 'assets/**'],
  }))
  t.same(rule('vendor/lib-3f9a1c2b.js'), { cacheControl: 'public, max-age=600', rule: 'route 0 "vendor/**"' }, 'a route beats everything')
  t.same(rule('assets/config-K7ZBXP5Q.json'), { cacheControl: REVALIDATE, rule: 'noCache "assets/config-*.json"' }, 'noCache beats immutable and a hashed name')
  t.same(rule('assets/logo-DarkMode.svg'), { cacheControl: IMMUTABLE, rule: 'immutable "assets/**"' }, 'immutable beats the name rule')
  t.same(rule('models/model-ResNet50.wasm'), { cacheControl: IMMUTABLE, rule: 'immutable "models/**"' }, 'a route without cacheControl does not decide')
  t.same(rule('main-K7ZBXP5Q.js'), { cacheControl: IMMUTABLE, rule: 'hashed name "K7ZBXP5Q"' })
  t.same(rule('title-GameOver.png'), { cacheControl: REVALIDATE, rule: 'default: no content hash in the name' })
})
