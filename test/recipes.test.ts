// The README's Recipes, as a user follows them: each toolchain's output layout is written to a fresh
// directory (real wasm modules stand in for the toolchain's: emcc, cargo, Unity and Godot are not
// installed here), every `npx wasm-serve` line of the recipe is run with the real CLI exactly as the
// README writes it (plus `--port 0`), and the headers the recipe promises are checked on the files
// that matter. The README's lines are read from the README, so a recipe edited there is what runs.
import t, { type Test } from 'tap'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { get as request, type Got, type Method, type RequestHeaders } from './helpers/http.js'
import { ROOT, runCli, serveCli } from './helpers/cli.js'
import { until as poll } from './helpers/poll.js'
import { decode } from './helpers/decode.js'
import { GZ, JS, PAGE, PNG, SQLITE, TINY, WEBP, tempDir, unityBrotli, unityGzip, writeFiles, type Files } from './helpers/site.js'

const HTML = 'text/html; charset=utf-8'
const SCRIPT = 'text/javascript; charset=utf-8'
const NO_CACHE = 'no-cache'
const IMMUTABLE = 'public, max-age=31536000, immutable'
const ACCEPT = 'gzip, deflate, br'
/** Stand-ins for what a toolchain packs besides code: compressible, not code. */
const DATA = Buffer.concat([Buffer.from('UnityWebData1.0\0', 'latin1'), JS, TINY, JS])
const CSS = Buffer.from('body { margin: 0; font: 16px system-ui }\n'.repeat(40))
const FFMPEG_CORE_JS = readFileSync(join(ROOT, 'node_modules/@ffmpeg/core/dist/esm/ffmpeg-core.js'))

type Get = (path: string, headers?: RequestHeaders, method?: Method) => Promise<Got>

interface Step {
  /** A line of the recipe, exactly as in the README. */
  line: string
  /** What the running server must answer; none for `compress`, which is checked by what it writes. */
  check?: (t: Test, get: Get, dir: string) => Promise<void>
}

interface Recipe {
  /** The `###` heading under `## Recipes`. */
  heading: string
  /** The directories the toolchain writes, one per build variant; every step runs on each, in order. */
  layouts: Record<string, Files>
  steps: Step[]
}

/** The `npx wasm-serve` lines of each recipe in the README, by heading, comments stripped. */
function readmeRecipes (): Map<string, string[]> {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
  const section = readme.split('\n## Recipes\n')[1]?.split('\n## ')[0] ?? ''
  const recipes = new Map<string, string[]>()
  for (const part of section.split('\n### ').slice(1)) {
    const heading = part.slice(0, part.indexOf('\n'))
    const lines = [...part.matchAll(/```sh\n([\s\S]*?)```/g)].flatMap(m => m[1]!.split('\n'))
    recipes.set(heading, lines.filter(l => l.startsWith('npx wasm-serve ')).map(l => l.replace(/\s+#.*$/, '').trim()))
  }
  return recipes
}

/** Asserts each named header's exact value; undefined: the header is absent. */
function headers (t: Test, res: Got, want: Record<string, string | undefined>, what: string): void {
  for (const [name, value] of Object.entries(want)) t.equal(res.headers[name], value, `${what}: ${name}`)
}

/** The encoding made in the background has arrived: poll until the response carries it. */
async function encoded (get: Get, path: string, coding: string): Promise<Got> {
  return poll(async () => { const res = await get(path, { 'accept-encoding': ACCEPT }); return res.headers['content-encoding'] === coding && res }, { timeout: 120_000, what: `${coding} for ${path}` })
}

const isolated = { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp', 'cross-origin-resource-policy': 'same-origin' }
const notIsolated = { 'cross-origin-opener-policy': undefined, 'cross-origin-embedder-policy': undefined, 'cross-origin-resource-policy': undefined }

const EMSCRIPTEN: Files = { 'build/index.html': PAGE, 'build/index.js': JS, 'build/index.wasm': SQLITE, 'build/index.data': DATA }

const GODOT: Files = {
  'export/web/index.html': PAGE,
  'export/web/index.js': JS,
  'export/web/index.wasm': SQLITE,
  'export/web/index.pck': DATA,
  'export/web/index.audio.worklet.js': JS,
  'export/web/index.worker.js': JS,
  'export/web/index.icon.png': PNG,
}

function unityBuild (suffix: string, encode: (b: Buffer) => Buffer): Files {
  return {
    'webgl/index.html': PAGE,
    'webgl/TemplateData/style.css': CSS,
    'webgl/Build/game.loader.js': JS,
    [`webgl/Build/game.framework.js${suffix}`]: encode(JS),
    [`webgl/Build/game.wasm${suffix}`]: encode(SQLITE),
    [`webgl/Build/game.data${suffix}`]: encode(DATA),
  }
}

const RECIPES: Recipe[] = [
  {
    heading: 'Emscripten',
    layouts: { build: EMSCRIPTEN },
    steps: [
      {
        line: 'npx wasm-serve build',
        check: async (t, get) => {
          const wasm = await encoded(get, '/index.wasm', 'br')
          headers(t, wasm, { 'content-type': 'application/wasm', 'cache-control': NO_CACHE, 'x-decoded-content-length': String(SQLITE.length), vary: 'Accept-Encoding' }, 'index.wasm')
          t.ok((await decode(wasm.body, 'br')).equals(SQLITE), 'the brotli made in the background decodes to the module')
          const data = await encoded(get, '/index.data', 'br')
          headers(t, data, { 'content-type': 'application/octet-stream', 'x-decoded-content-length': String(DATA.length) }, 'index.data')
          headers(t, await get('/'), { 'content-type': HTML, 'cache-control': NO_CACHE, ...notIsolated }, 'index.html')
          const revalidated = await get('/index.wasm', { 'accept-encoding': ACCEPT, 'if-none-match': wasm.headers.etag })
          t.equal(revalidated.status, 304, 'a plain name is revalidated with its ETag')
        },
      },
      {
        line: 'npx wasm-serve build --isolate',
        check: async (t, get) => {
          headers(t, await get('/'), { 'content-type': HTML, ...isolated }, 'index.html')
          headers(t, await get('/index.js'), { 'content-type': SCRIPT, ...isolated }, 'index.js, which workers start from')
          headers(t, await get('/index.wasm'), { 'content-type': 'application/wasm', 'cross-origin-resource-policy': 'same-origin', 'cross-origin-opener-policy': undefined }, 'index.wasm')
        },
      },
    ],
  },
  {
    heading: 'Rust: wasm-pack, wasm-bindgen',
    layouts: {
      'wasm-pack --target web': {
        'www/index.html': '<!doctype html><script type="module">import init from "./pkg/my_crate.js"; await init()</script>\n',
        'www/pkg/my_crate.js': JS,
        'www/pkg/my_crate_bg.wasm': WEBP,
        'www/pkg/my_crate.d.ts': 'export default function init (): Promise<void>\n',
        'www/pkg/my_crate_bg.wasm.d.ts': 'export const memory: WebAssembly.Memory\n',
        'www/pkg/package.json': '{ "name": "my_crate", "type": "module" }\n',
      },
    },
    steps: [{
      line: 'npx wasm-serve www',
      check: async (t, get) => {
        const wasm = await get('/pkg/my_crate_bg.wasm')
        headers(t, wasm, { 'content-type': 'application/wasm', 'cache-control': NO_CACHE }, 'my_crate_bg.wasm')
        t.ok(wasm.body.equals(WEBP))
        t.equal((await get('/pkg/my_crate_bg.wasm', { 'if-none-match': wasm.headers.etag })).status, 304, 'each load revalidates: 304 while unchanged')
        headers(t, await get('/pkg/my_crate.js'), { 'content-type': SCRIPT, 'cache-control': NO_CACHE }, 'my_crate.js')
        headers(t, await get('/'), { 'content-type': HTML }, 'index.html')
      },
    }],
  },
  {
    heading: 'Rust: Trunk',
    layouts: {
      'trunk build --release': {
        'dist/index.html': PAGE,
        'dist/my-app-1f0e9d8c7b6a5f4e.js': JS,
        'dist/my-app-1f0e9d8c7b6a5f4e_bg.wasm': WEBP,
      },
    },
    steps: [{
      line: 'npx wasm-serve dist',
      check: async (t, get) => {
        headers(t, await get('/my-app-1f0e9d8c7b6a5f4e_bg.wasm'), { 'content-type': 'application/wasm', 'cache-control': IMMUTABLE }, 'hashed _bg.wasm')
        headers(t, await get('/my-app-1f0e9d8c7b6a5f4e.js'), { 'content-type': SCRIPT, 'cache-control': IMMUTABLE }, 'hashed glue')
        headers(t, await get('/'), { 'content-type': HTML, 'cache-control': NO_CACHE }, 'index.html')
      },
    }],
  },
  {
    heading: 'Unity WebGL',
    layouts: {
      // Unity marks every file it compresses (its loader tells by the marker whether the browser decoded it).
      Brotli: unityBuild('.br', unityBrotli),
      Gzip: unityBuild('.gz', unityGzip),
      'Decompression Fallback (brotli)': unityBuild('.unityweb', unityBrotli),
    },
    steps: [{
      line: 'npx wasm-serve webgl',
      check: async (t, get, dir) => {
        const suffix = existsSync(join(dir, 'webgl/Build/game.wasm.br')) ? '.br' : existsSync(join(dir, 'webgl/Build/game.wasm.gz')) ? '.gz' : '.unityweb'
        const coding = suffix === '.gz' ? 'gzip' : 'br'
        for (const [name, type, original] of [['game.wasm', 'application/wasm', SQLITE], ['game.framework.js', SCRIPT, JS], ['game.data', 'application/octet-stream', DATA]] as const) {
          const res = await get(`/Build/${name}${suffix}`, { 'accept-encoding': ACCEPT })
          headers(t, res, { 'content-type': type, 'content-encoding': coding, 'cache-control': NO_CACHE }, name + suffix)
          t.equal(res.headers['x-decoded-content-length'], coding === 'gzip' ? String(original.length) : undefined, `${name}${suffix}: gzip records its size, brotli none`)
          t.ok((await decode(res.body, coding)).equals(original), `${name}${suffix} decodes to the file Unity compressed`)
          headers(t, await get(`/Build/${name}${suffix}`, { 'accept-encoding': 'identity' }), { 'content-type': 'application/octet-stream', 'content-encoding': undefined }, `${name}${suffix} to a client without ${coding}`)
        }
        headers(t, await get('/Build/game.loader.js'), { 'content-type': SCRIPT, 'content-encoding': undefined }, 'game.loader.js')
      },
    }],
  },
  {
    heading: 'Godot',
    layouts: { 'export-release Web': GODOT },
    steps: [
      {
        line: 'npx wasm-serve export/web --isolate',
        check: async (t, get) => {
          headers(t, await get('/'), { 'content-type': HTML, ...isolated }, 'index.html')
          for (const script of ['/index.js', '/index.worker.js', '/index.audio.worklet.js']) headers(t, await get(script), { 'content-type': SCRIPT, ...isolated }, script)
          headers(t, await get('/index.wasm'), { 'content-type': 'application/wasm', 'cross-origin-resource-policy': 'same-origin' }, 'index.wasm')
          const pck = await encoded(get, '/index.pck', 'br')
          headers(t, pck, { 'content-type': 'application/octet-stream', 'cross-origin-resource-policy': 'same-origin', 'x-decoded-content-length': String(DATA.length) }, 'index.pck')
        },
      },
      {
        line: 'npx wasm-serve export/web',
        check: async (t, get) => {
          headers(t, await get('/'), { 'content-type': HTML, ...notIsolated }, 'index.html without threads')
        },
      },
    ],
  },
  {
    heading: 'Vite',
    layouts: {
      'vite build': {
        'dist/index.html': PAGE,
        'dist/assets/index-DiwrgTda.js': JS,
        'dist/assets/index-BqkSz9Ha.css': CSS,
        'dist/assets/lib_bg-CQ8b7Fmx.wasm': WEBP,
      },
    },
    steps: [{
      line: 'npx wasm-serve dist --spa',
      check: async (t, get) => {
        headers(t, await get('/assets/lib_bg-CQ8b7Fmx.wasm'), { 'content-type': 'application/wasm', 'cache-control': IMMUTABLE }, 'hashed wasm')
        headers(t, await get('/assets/index-DiwrgTda.js'), { 'content-type': SCRIPT, 'cache-control': IMMUTABLE }, 'hashed js')
        headers(t, await get('/assets/index-BqkSz9Ha.css'), { 'content-type': 'text/css; charset=utf-8', 'cache-control': IMMUTABLE }, 'hashed css')
        headers(t, await get('/'), { 'content-type': HTML, 'cache-control': NO_CACHE }, 'index.html')
        const deep = await get('/settings/profile', { accept: 'text/html,application/xhtml+xml' })
        t.equal(deep.status, 200, 'a client-side route gets the page')
        t.equal(deep.body.toString(), PAGE)
        const missing = await get('/assets/gone-Abc12345.wasm', { accept: '*/*' })
        t.equal(missing.status, 404, 'a missing module is a 404')
        t.notMatch(missing.headers['content-type'] ?? '', /html/, 'never a page where a module was expected')
      },
    }],
  },
  {
    heading: 'Pyodide',
    layouts: {
      'npm i pyodide': {
        'node_modules/pyodide/pyodide.mjs': JS,
        'node_modules/pyodide/pyodide.js': JS,
        'node_modules/pyodide/pyodide.asm.mjs': JS,
        'node_modules/pyodide/pyodide.asm.wasm': SQLITE,
        'node_modules/pyodide/python_stdlib.zip': GZ,
        'node_modules/pyodide/pyodide-lock.json': '{"info":{"arch":"wasm32","python":"3.14.0"},"packages":{}}\n',
        'node_modules/pyodide/numpy-2.3.4-cp314-cp314-pyodide_2026_0_wasm32.whl': GZ,
      },
    },
    steps: [{
      line: 'npx wasm-serve node_modules/pyodide --cors',
      check: async (t, get) => {
        const origin = { origin: 'http://127.0.0.1:5173' }
        const cors = { 'access-control-allow-origin': '*', 'access-control-expose-headers': 'X-Decoded-Content-Length, ETag, Content-Length, Content-Encoding, Content-Range, Accept-Ranges' }
        headers(t, await get('/pyodide.asm.wasm', origin), { 'content-type': 'application/wasm', ...cors }, 'pyodide.asm.wasm')
        for (const path of ['/pyodide.mjs', '/pyodide.asm.mjs']) headers(t, await get(path, origin), { 'content-type': SCRIPT, ...cors }, path)
        headers(t, await get('/python_stdlib.zip', { ...origin, 'accept-encoding': ACCEPT }), { 'content-type': 'application/zip', 'content-encoding': undefined, ...cors }, 'python_stdlib.zip, already compressed')
        headers(t, await get('/pyodide-lock.json', origin), { 'content-type': 'application/json; charset=utf-8', ...cors }, 'pyodide-lock.json')
        headers(t, await get('/numpy-2.3.4-cp314-cp314-pyodide_2026_0_wasm32.whl', { ...origin, 'accept-encoding': ACCEPT }), { 'content-type': 'application/octet-stream', 'content-encoding': undefined, ...cors }, 'a wheel')
        const preflight = await get('/pyodide.asm.wasm', { ...origin, 'access-control-request-method': 'GET', 'access-control-request-headers': 'range' }, 'OPTIONS')
        t.equal(preflight.status, 204, 'a preflight is answered')
        headers(t, preflight, { 'access-control-allow-origin': '*', 'access-control-allow-headers': 'range' }, 'preflight')
      },
    }],
  },
  {
    heading: 'ffmpeg.wasm',
    layouts: {
      '@ffmpeg/core and @ffmpeg/core-mt': {
        'www/index.html': PAGE,
        'www/ffmpeg/ffmpeg-core.js': FFMPEG_CORE_JS,
        // The real module is 32 MB; a real module a sixtieth of that size stands in for it.
        'www/ffmpeg/ffmpeg-core.wasm': WEBP,
        'www/ffmpeg-mt/ffmpeg-core.js': FFMPEG_CORE_JS,
        'www/ffmpeg-mt/ffmpeg-core.wasm': WEBP,
        'www/ffmpeg-mt/ffmpeg-core.worker.js': JS,
      },
    },
    steps: [
      { line: 'npx wasm-serve compress www' },
      {
        line: 'npx wasm-serve www',
        check: async (t, get, dir) => {
          const sibling = readFileSync(join(dir, 'www/ffmpeg/ffmpeg-core.wasm.br'))
          const wasm = await get('/ffmpeg/ffmpeg-core.wasm', { 'accept-encoding': ACCEPT })
          headers(t, wasm, { 'content-type': 'application/wasm', 'content-encoding': 'br', 'content-length': String(sibling.length), 'x-decoded-content-length': String(WEBP.length) }, 'ffmpeg-core.wasm')
          t.ok(wasm.body.equals(sibling), 'the sibling compress wrote')
          headers(t, await get('/ffmpeg/ffmpeg-core.js', { 'accept-encoding': ACCEPT }), { 'content-type': SCRIPT, 'content-encoding': 'br' }, 'ffmpeg-core.js')
        },
      },
      {
        line: 'npx wasm-serve www --isolate',
        check: async (t, get) => {
          headers(t, await get('/'), { 'content-type': HTML, ...isolated }, 'the page')
          headers(t, await get('/ffmpeg-mt/ffmpeg-core.worker.js'), { 'content-type': SCRIPT, ...isolated }, 'the worker')
          headers(t, await get('/ffmpeg-mt/ffmpeg-core.wasm', { 'accept-encoding': ACCEPT }), { 'content-type': 'application/wasm', 'content-encoding': 'br', 'cross-origin-resource-policy': 'same-origin' }, 'the module')
        },
      },
    ],
  },
]

t.test('every wasm-serve line of the README\'s Recipes is one this file runs, and every recipe is there', async t => {
  const readme = readmeRecipes()
  t.same([...readme.keys()], RECIPES.map(r => r.heading), 'the recipes, in order')
  for (const recipe of RECIPES) t.same(readme.get(recipe.heading), recipe.steps.map(s => s.line), recipe.heading)
})

for (const recipe of RECIPES) {
  t.test(`recipe ${recipe.heading}`, async t => {
    for (const [variant, files] of Object.entries(recipe.layouts)) {
      t.test(variant, async t => {
        const dir = tempDir(t, 'recipe')
        writeFiles(dir, files)
        for (const step of recipe.steps) await run(t, step, dir)
      })
    }
  })
}

/** Runs one README line in `dir` with the real CLI: `compress` to its end, a server until its checks are done. */
async function run (t: Test, step: Step, dir: string): Promise<void> {
  const args = step.line.replace(/^npx wasm-serve /, '').split(/\s+/)
  if (step.check === undefined) {
    const proc = runCli(t, args, { cwd: dir })
    const { code } = await proc.exited
    t.equal(code, 0, `${step.line} exits 0\n${proc.out.stderr}`)
    return
  }
  const server = await serveCli(t, [...args, '--port', '0'], { cwd: dir })
  const get: Get = (path, headers = {}, method = 'GET') => request(server.url + path, headers, method)
  await t.test(step.line, async t => { await step.check!(t, get, dir) })
  server.child.kill('SIGTERM')
  t.equal((await server.exited).code, 0, `${step.line} stops cleanly`)
}
