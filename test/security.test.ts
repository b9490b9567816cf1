// The security preset (D19): the inline-script scanner and its hashes, the headers over every
// transport (HSTS over HTTPS only, to a named host), route overrides, report-only mode, CORP beside
// isolation and CORS, and the configuration mistakes refused with their paths.
import { createHash } from 'node:crypto'
import t from 'tap'
import { request } from 'undici'
import { get } from './helpers/http.js'
import { makeSite, SITE, TINY } from './helpers/site.js'
import { startCliApp, startPlugin } from './helpers/server.js'
import { TRANSPORTS } from './helpers/transports.js'
import { inlineScripts, scriptHashes } from '../src/inline-scripts.js'
import { DEFAULT_CSP, withHashes } from '../src/security.js'
import { OptionsError, resolveOptions } from '../src/options.js'
import { parseCli } from '../src/config.js'

const INLINE = 'var Module = { canvas: document.getElementById("canvas") }'
const PAGE = `<!doctype html>\n<title>game</title>\n<script type="text/javascript">${INLINE}</script>\n<script async src="game.js"></script>\n`
const sha256 = (text: string) => `'sha256-${createHash('sha256').update(text).digest('base64')}'`
const root = makeSite(t, { ...SITE, 'index.html': PAGE, 'game.js': 'console.log(1)\n', 'tiny.wasm': TINY })

t.test('the scanner finds inline scripts where a browser\'s tokenizer does', async t => {
  const cases: Array<[string, string[], string]> = [
    ['<script>a()</script><script src="x.js"></script><SCRIPT type=module>b()</SCRIPT >', ['a()', 'b()'], 'external scripts skipped, any case, space before >'],
    ['<script>\r\nc()\r</script>', ['\nc()\n'], 'CR LF and CR read as LF (HTML §13.2.3.5)'],
    ['<div title="<script>no()</script>"></div><script data-x=\'a>b\'>d()</script>', ['d()'], 'a tag inside a quoted value is text; a > in a quoted value does not end the tag'],
    ['<!-- <script>no()</script> --><script>e()</script>', ['e()'], 'scripts in comments are not scripts'],
    ['<!--><script>f()</script>', ['f()'], '<!--> is a whole comment'],
    ['<script>if (a </scripts> b) g()</script>', ['if (a </scripts> b) g()'], '</scripts> does not end a script'],
    ['<script>var s = "<b>"</script>', ['var s = "<b>"'], 'markup inside a script is its text'],
    ['<script></script><script src=x.js>ignored()</script>', [], 'empty and external scripts give no hash'],
    ['<script>h()', ['h()'], 'a script never closed runs to the end'],
  ]
  for (const [html, scripts, why] of cases) t.same(inlineScripts(html), scripts, why)
  t.same(scriptHashes(Buffer.from('<script>x()</script><script>x()</script>')), [sha256('x()')], 'one hash per distinct script')
  t.same(scriptHashes(Buffer.from('<script>// µ</script>', 'utf8')), [sha256('// µ')], 'hashed as UTF-8 (CSP3)')
})

t.test('hashes go into script-src, never beside \'unsafe-inline\' or \'none\'', async t => {
  t.equal(withHashes("default-src 'self'; script-src 'self'", ["'sha256-A'"]), "default-src 'self'; script-src 'self' 'sha256-A'")
  t.equal(withHashes("script-src 'self' 'unsafe-inline'", ["'sha256-A'"]), "script-src 'self' 'unsafe-inline'", 'a hash would turn unsafe-inline off')
  t.equal(withHashes("script-src 'none'", ["'sha256-A'"]), "script-src 'none'")
  t.equal(withHashes("default-src 'self'", ["'sha256-A'"]), "default-src 'self'", 'no script-src: left as written')
})

for (const transport of TRANSPORTS) {
  /** A name, as browsers send it: HSTS is never sent to an IP address or localhost. */
  const named = transport.name === 'HTTP/2' ? { ':authority': 'app.example' } : { host: 'app.example' }
  const tls = transport.name !== 'HTTP/1.1'

  t.test(`the preset over ${transport.name}: nosniff, Referrer-Policy and CORP on every file, the CSP on HTML only, HSTS ${tls ? 'to a named host' : 'never'}`, async t => {
    const { get } = await transport.start(t, { root, security: true })
    const page = await get('/', named)
    t.equal(page.status, 200)
    t.equal(page.headers['content-security-policy'], DEFAULT_CSP.replace("'wasm-unsafe-eval'", `'wasm-unsafe-eval' ${sha256(INLINE)}`), 'the default policy with the page\'s inline script hash')
    const wasm = await get('/tiny.wasm', named)
    t.equal(wasm.headers['content-security-policy'], undefined, 'no CSP on a module')
    t.equal((await get('/game.js', named)).headers['content-security-policy'], undefined, 'none on a script: a worker started from it is not restricted')
    for (const res of [page, wasm]) {
      t.equal(res.headers['x-content-type-options'], 'nosniff')
      t.equal(res.headers['referrer-policy'], 'strict-origin-when-cross-origin')
      t.equal(res.headers['cross-origin-resource-policy'], 'same-origin')
      t.equal(res.headers['strict-transport-security'], tls ? 'max-age=31536000' : undefined, tls ? 'HSTS over HTTPS' : 'never over plain HTTP (RFC 6797 §7.2)')
    }
    const revalidated = await get('/tiny.wasm', { ...named, 'if-none-match': wasm.headers.etag })
    t.equal(revalidated.status, 304)
    t.equal(revalidated.headers['strict-transport-security'], tls ? 'max-age=31536000' : undefined, 'a 304 carries it too')
    t.equal((await get('/tiny.wasm')).headers['strict-transport-security'], undefined, 'not to an IP address (RFC 6797 §8.1)')
    t.equal((await get('/tiny.wasm', transport.name === 'HTTP/2' ? { ':authority': 'localhost' } : { host: 'localhost' })).headers['strict-transport-security'], undefined, 'not to localhost')
  })
}

t.test('a route overrides each preset header, and an empty value drops it', async t => {
  const server = await startCliApp(t, {
    root,
    security: true,
    routes: [
      { match: '**/*.html', headers: { 'Content-Security-Policy': "script-src 'self'", 'Referrer-Policy': '', 'X-Content-Type-Options': '' } },
      { match: '**/*.wasm', headers: { 'Cross-Origin-Resource-Policy': 'cross-origin', 'Content-Security-Policy': "default-src 'none'" } },
    ],
  })
  const page = await get(`${server.url}/`)
  t.equal(page.headers['content-security-policy'], "script-src 'self'", 'the route\'s policy, as written (no hashes added)')
  t.equal(page.headers['referrer-policy'], undefined, 'dropped')
  t.equal(page.headers['x-content-type-options'], undefined, 'dropped')
  t.equal(page.headers['cross-origin-resource-policy'], 'same-origin', 'kept')
  const wasm = await get(`${server.url}/tiny.wasm`)
  t.equal(wasm.headers['cross-origin-resource-policy'], 'cross-origin', 'one value, the route\'s')
  t.equal(wasm.headers['content-security-policy'], "default-src 'none'", 'a route may send a policy on any file')
})

t.test('the object form tunes each header; false leaves one out', async t => {
  const server = await startCliApp(t, {
    root,
    security: { contentSecurityPolicy: "default-src 'self'; script-src 'self' 'wasm-unsafe-eval' 'unsafe-inline'", referrerPolicy: 'no-referrer', nosniff: false, resourcePolicy: 'same-site', hsts: { maxAge: 600, includeSubDomains: true, preload: true } },
  })
  const page = await get(`${server.url}/`)
  t.equal(page.headers['content-security-policy'], "default-src 'self'; script-src 'self' 'wasm-unsafe-eval' 'unsafe-inline'", 'no hash beside unsafe-inline')
  t.equal(page.headers['referrer-policy'], 'no-referrer')
  t.equal(page.headers['x-content-type-options'], undefined)
  t.equal(page.headers['cross-origin-resource-policy'], 'same-site')
  const off = await startCliApp(t, { root, security: { contentSecurityPolicy: false, referrerPolicy: false, resourcePolicy: false } })
  const bare = await get(`${off.url}/`)
  t.same([bare.headers['content-security-policy'], bare.headers['referrer-policy'], bare.headers['cross-origin-resource-policy'], bare.headers['x-content-type-options']], [undefined, undefined, undefined, 'nosniff'])
})

t.test('HSTS settings, and a route\'s Strict-Transport-Security, go over HTTPS only', async t => {
  const tls = TRANSPORTS.find(tr => tr.name === 'HTTP/1.1 over TLS')!
  const plain = TRANSPORTS.find(tr => tr.name === 'HTTP/1.1')!
  const options = { root, security: { hsts: { maxAge: 600, includeSubDomains: true, preload: true } }, routes: [{ match: 'logo.png', headers: { 'Strict-Transport-Security': 'max-age=60' } }] }
  const secure = await tls.start(t, options)
  t.equal((await secure.get('/tiny.wasm', { host: 'app.example' })).headers['strict-transport-security'], 'max-age=600; includeSubDomains; preload')
  t.equal((await secure.get('/logo.png', { host: 'app.example' })).headers['strict-transport-security'], 'max-age=60', 'the route\'s value')
  const clear = await plain.start(t, options)
  t.equal((await clear.get('/logo.png', { host: 'app.example' })).headers['strict-transport-security'], undefined, 'a route\'s HSTS is not sent over plain HTTP either')
  const none = await tls.start(t, { root, security: { hsts: false } })
  t.equal((await none.get('/tiny.wasm', { host: 'app.example' })).headers['strict-transport-security'], undefined, 'hsts: false')
})

t.test('report-only: the policy as Content-Security-Policy-Report-Only, reporting to the sink under the prefix', async t => {
  const server = await startPlugin(t, { root, prefix: '/static', security: { reportOnly: true } })
  const page = await get(`${server.url}/static/`)
  t.equal(page.headers['content-security-policy'], undefined, 'nothing enforced')
  t.equal(page.headers['content-security-policy-report-only'], `${DEFAULT_CSP.replace("'wasm-unsafe-eval'", `'wasm-unsafe-eval' ${sha256(INLINE)}`)}; report-uri /static/.well-known/wasm-serve/reports`)
  t.equal((await get(`${server.url}/static/tiny.wasm`)).headers['content-security-policy-report-only'], undefined, 'only documents carry the policy')
  const sink = await request(`${server.url}/static/.well-known/wasm-serve/reports`, { method: 'POST', headers: { 'content-type': 'application/csp-report' }, body: JSON.stringify({ 'csp-report': { 'document-uri': `${server.url}/static/`, 'effective-directive': 'script-src', 'blocked-uri': 'eval', disposition: 'report' } }) })
  await sink.body.dump()
  t.equal(sink.statusCode, 204, 'the sink is served in report-only mode')
})

t.test('CORP: one value beside isolation, cross-origin with CORS', async t => {
  const isolated = await startCliApp(t, { root, security: true, crossOriginIsolation: 'require-corp' })
  const res = await get(`${isolated.url}/tiny.wasm`)
  t.equal(res.headers['cross-origin-resource-policy'], 'same-origin', 'isolation\'s, once')
  const shared = await startCliApp(t, { root, security: true, cors: true })
  t.equal((await get(`${shared.url}/tiny.wasm`)).headers['cross-origin-resource-policy'], 'cross-origin', 'a file other origins may read may be embedded by them')
})

t.test('without the preset nothing is added', async t => {
  const server = await startCliApp(t, { root })
  const page = await get(`${server.url}/`)
  t.same([page.headers['content-security-policy'], page.headers['x-content-type-options'], page.headers['referrer-policy'], page.headers['cross-origin-resource-policy']], [undefined, undefined, undefined, undefined])
})

/** The problems resolveOptions reports for `security`, as "path: message". */
function problems (security: unknown): string[] {
  try { resolveOptions({ security }) } catch (err) {
    if (err instanceof OptionsError) return err.problems.map(p => `${p.path}: ${p.message}`)
    throw err
  }
  return []
}

t.test('bad security settings are refused with their paths, one line each', async t => {
  t.same(problems('yes'), ['/security: expected false, true or { "contentSecurityPolicy", "reportOnly", "referrerPolicy", "hsts", "nosniff", "resourcePolicy" }'])
  t.match(problems({ referrerPolicy: 'never' }), [/^\/security\/referrerPolicy: expected false, no-referrer, .* or unsafe-url$/])
  t.match(problems({ contentSecurityPolicy: "script-src 'self'\r\nX-Evil: 1" }), [/^\/security\/contentSecurityPolicy: /])
  t.match(problems({ hsts: { maxAge: -1 } }), [/^\/security\/hsts\/maxAge: expected an integer of at least 0$/])
  t.same(problems({ csp: "script-src 'self'" }), problems('yes'), 'an unknown key: the keys it may have')
  t.same(problems(true), [])
})

t.test('--secure is the preset, --secure=report-only its CSP reported, any other mode a usage error', async t => {
  t.same(parseCli(['--secure', 'dist'], {}, '/tmp').options.security, {})
  t.same(parseCli(['--secure=report-only', 'dist'], {}, '/tmp').options.security, { reportOnly: true })
  t.same(parseCli(['dist'], { WASM_SERVE_SECURITY: 'true' }, '/tmp').options.security, {})
  t.equal(parseCli(['dist'], {}, '/tmp').options.security, false, 'off by default')
  t.throws(() => parseCli(['--secure=strict', 'dist'], {}, '/tmp'), { message: '--secure: expected on or report-only, got "strict"', option: '--secure' })
})
