/**
 * `wasm-serve export --target nginx|caddy`, tested for real: the output of the real CLI is loaded by
 * Debian's nginx (with the brotli static module) and Caddy, serving a real site, and each engine's
 * responses are compared header by header with wasm-serve's own answer to the same request
 * (wasm-serve serving the same directory with the same options). Skipped, with the reason, where an
 * engine is not installed.
 */
import { chmodSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { request } from 'undici'
import { runCli } from './helpers/cli.js'
import { get, type Got, type RequestHeaders } from './helpers/http.js'
import { NO_CADDY, NO_NGINX, startCaddy, startNginx, validate } from './helpers/engines.js'
import { startCliApp } from './helpers/server.js'
import { BR, GZ, JS, PAGE, SQLITE, WEBP, makeSite, tempDir } from './helpers/site.js'

/** Every kind of file the export must handle: siblings, a hash, pages, a Unity lone .br, a dotfile, awkward names. */
const FILES = {
  'sqlite3.wasm': SQLITE,
  'sqlite3.wasm.br': BR,
  'sqlite3.wasm.gz': GZ,
  'app.3f2a1b9c.wasm': WEBP,
  'index.html': PAGE,
  'docs/index.html': PAGE,
  'app.js': JS,
  'Build/game.wasm.br': BR,
  '.env': 'SECRET=1\n',
  'my file.js': JS,
  'odd/a"b$c (1) é.txt': 'text\n'.repeat(10),
}

const OPTIONS = {
  crossOriginIsolation: 'require-corp' as const,
  cors: { origin: '*' as const },
  preload: ['/sqlite3.wasm'],
  spa: 'index.html',
  // Both sides serve what is on disk: an engine does not compress on the fly as wasm-serve would (D4).
  compress: { onTheFly: false },
  // No delta announcements (D18): an engine cannot make deltas, so the export leaves them out, and
  // on Node 24 the reference server would announce them for modules.
  routes: [{ match: '**/*.js', cacheControl: 'public, max-age=60', headers: { 'x-route': 'js' }, dictionary: false as const }, { match: '**', dictionary: false as const }],
}

/** Headers an engine is told about by the export, compared with wasm-serve's on every 2xx/3xx. */
const COMPARED = [
  'content-type', 'cache-control', 'vary', 'content-encoding', 'content-range', 'location', 'allow', 'link', 'x-route',
  'cross-origin-opener-policy', 'cross-origin-embedder-policy', 'cross-origin-resource-policy',
  'access-control-allow-origin', 'access-control-expose-headers', 'access-control-allow-methods',
  'access-control-allow-headers', 'access-control-max-age', 'timing-allow-origin',
]

interface Case { path: string, headers?: RequestHeaders, method?: 'GET' | 'HEAD' | 'OPTIONS' | 'POST' }

const ENCODINGS: Array<string | undefined> = ['br, gzip', 'gzip', undefined]
const PATHS = ['/sqlite3.wasm', '/app.3f2a1b9c.wasm', '/index.html', '/docs/index.html', '/app.js', '/Build/game.wasm.br', '/my%20file.js', '/odd/a%22b%24c%20(1)%20%C3%A9.txt']

const CASES: Case[] = [
  ...PATHS.flatMap(path => ENCODINGS.map(ae => ({ path, headers: { 'accept-encoding': ae } }))),
  { path: '/', headers: { accept: 'text/html' } },
  { path: '/docs/' },
  { path: '/docs' },
  { path: '/settings/profile', headers: { accept: 'text/html,application/xhtml+xml' } },
  { path: '/settings/profile', headers: { accept: 'application/json' } },
  { path: '/missing.wasm', headers: { accept: 'text/html' } },
  { path: '/.env' },
  { path: '/docs/.env' },
  { path: '/app.js', method: 'POST' },
  { path: '/app.js', method: 'OPTIONS', headers: { origin: 'https://x.example', 'access-control-request-method': 'GET', 'access-control-request-headers': 'range' } },
  { path: '/sqlite3.wasm', headers: { range: 'bytes=10-19' } },
  { path: '/sqlite3.wasm', method: 'HEAD', headers: { 'accept-encoding': 'br' } },
]

async function send (base: string, c: Case): Promise<Got> {
  if (c.method === 'POST') {
    const res = await request(base + c.path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
    await res.body.arrayBuffer()
    return { status: res.statusCode, headers: Object.fromEntries(Object.entries(res.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : v])), body: Buffer.alloc(0), informational: [] }
  }
  return get(base + c.path, c.headers ?? {}, c.method ?? 'GET')
}

/** The headers to compare: all of COMPARED on a success or redirect, only Allow on an error. */
function view (got: Got, extra: string[]): Record<string, unknown> {
  const names = got.status < 300 ? [...COMPARED, ...extra] : got.status < 400 ? ['location'] : ['allow']
  return { status: got.status, ...Object.fromEntries(names.map(n => [n, got.headers[n]])) }
}

/** Runs `wasm-serve export` through the real CLI and returns what it printed. */
async function exportWith (t: Test, args: string[]): Promise<{ code: number | null, stdout: string, stderr: string }> {
  const proc = runCli(t, ['export', ...args])
  const { code } = await proc.exited
  return { code, ...proc.out }
}

/** A site with FILES, readable by an engine's worker, and its config file. */
function siteWithConfig (t: Test, options: object): { root: string, config: string } {
  const root = makeSite(t, FILES)
  chmodSync(root, 0o755)
  const config = join(tempDir(t, 'config'), 'wasm-serve.json')
  writeFileSync(config, JSON.stringify(options))
  return { root, config }
}

const ENGINES = [
  { engine: 'nginx' as const, skip: NO_NGINX, start: startNginx, extra: ['content-length', 'x-decoded-content-length'] },
  { engine: 'caddy' as const, skip: NO_CADDY, start: startCaddy, extra: [] },
]

for (const { engine, skip, start, extra } of ENGINES) {
  t.test(`export --target ${engine}: the engine answers every request as wasm-serve does`, { skip }, async t => {
    const { root, config } = siteWithConfig(t, OPTIONS)
    const out = await exportWith(t, ['--target', engine, root, '--config', config])
    t.equal(out.code, 0, out.stderr)
    const check = validate(engine, tempDir(t, 'validate'), out.stdout)
    t.equal(check.status, 0, `${engine} accepts the output: ${check.output}`)
    const [engineUrl, reference] = await Promise.all([start(t, out.stdout), startCliApp(t, { root, ...OPTIONS })])
    for (const c of CASES) {
      const [got, want] = await Promise.all([send(engineUrl, c), send(reference.url, c)])
      const label = `${c.method ?? 'GET'} ${c.path} ${JSON.stringify(c.headers ?? {})}`
      if (engine === 'caddy' && c.path === '/sqlite3.wasm' && got.headers['content-encoding'] !== undefined) {
        // Caddy 2.6 sends precompressed files chunked: said in the output (D5); lengths compared on identity only.
        t.equal(got.headers['content-length'], undefined, `${label}: Caddy sends encoded files chunked, as the warning says`)
      }
      t.same(view(got, extra), view(want, extra), label)
    }
    // D8 is not expressible: what each engine does instead is what its warning says.
    const ranged = await send(engineUrl, { path: '/sqlite3.wasm', headers: { range: 'bytes=10-19', 'accept-encoding': 'br' } })
    t.equal(ranged.headers['content-encoding'], 'br')
    if (engine === 'nginx') t.equal(ranged.status, 200, 'nginx: the whole br file, not a range')
    else t.equal(ranged.headers['content-range'], `bytes 10-19/${BR.length}`, 'Caddy: a range of the br bytes')
  })

  t.test(`export --target ${engine}: a list of CORS origins is echoed only for allowed origins, with Vary: Origin`, { skip }, async t => {
    const options = { ...OPTIONS, cors: { origin: ['https://a.example', 'https://b.example'] } }
    const { root, config } = siteWithConfig(t, options)
    const out = await exportWith(t, ['--target', engine, root, '--config', config])
    t.equal(out.code, 0, out.stderr)
    const [engineUrl, reference] = await Promise.all([start(t, out.stdout), startCliApp(t, { root, ...options })])
    const cases: Case[] = ['https://a.example', 'https://evil.example'].flatMap(origin => [
      { path: '/sqlite3.wasm', headers: { origin, 'accept-encoding': 'br' } },
      { path: '/app.js', headers: { origin } },
      { path: '/app.js', method: 'OPTIONS' as const, headers: { origin, 'access-control-request-method': 'GET' } },
    ])
    for (const c of cases) {
      const [got, want] = await Promise.all([send(engineUrl, c), send(reference.url, c)])
      t.same(view(got, extra), view(want, extra), `${c.method ?? 'GET'} ${c.path} from ${c.headers!.origin!}`)
    }
    const allowed = await send(engineUrl, cases[0]!)
    t.equal(allowed.headers['access-control-allow-origin'], 'https://a.example', 'the allowed origin is echoed')
    t.equal(allowed.headers.vary, 'Accept-Encoding, Origin')
  })

  t.test(`export --target ${engine}: deterministic, --out FILE, warnings on stderr and in the output`, { skip: false }, async t => {
    const { root, config } = siteWithConfig(t, OPTIONS)
    const a = await exportWith(t, ['--target', engine, root, '--config', config])
    const b = await exportWith(t, ['--target', engine, root, '--config', config])
    t.equal(a.code, 0, a.stderr)
    t.equal(a.stdout, b.stdout, 'two exports of the same input are byte-identical')
    const file = join(tempDir(t, 'out'), engine === 'nginx' ? 'site.conf' : 'Caddyfile')
    const c = await exportWith(t, ['--target', engine, root, '--config', config, '--out', file])
    t.equal(c.code, 0, c.stderr)
    t.equal(c.stdout, '', 'nothing on stdout with --out')
    t.equal(readFileSync(file, 'utf8'), a.stdout, '--out writes the same bytes')
    const warnings = a.stderr.split('\n').filter(l => l.startsWith('wasm-serve export: warning: ')).map(l => l.slice('wasm-serve export: warning: '.length))
    t.ok(warnings.length >= 3, `warnings are printed: ${a.stderr}`)
    for (const w of warnings) t.ok(a.stdout.includes(`# - ${w}`), `in the output as a comment: ${w}`)
    t.match(a.stderr, /ETags are/, 'the ETag difference is said')
    if (engine === 'caddy') t.match(a.stderr, /chunked/, 'Caddy 2.6\'s chunked precompressed responses are said')
    else t.match(a.stderr, /Range request/, 'nginx\'s ranges over precompressed files are said')
  })
}
