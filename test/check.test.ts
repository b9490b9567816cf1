/**
 * `wasm-serve check` against wasm-serve itself (the server the CLI runs, over HTTP/1.1 and HTTPS with
 * a self-signed certificate): a page with a preload and isolation, a script naming its modules, a
 * module with siblings and a hashed one. No FAIL may come out, and each rule's PASS is asserted with
 * its evidence. Also: a module used by a page of another origin without CORS.
 */
import t, { type Test } from 'tap'
import { brotliCompressSync, constants } from 'node:zlib'
import { checkUrls } from '../src/check/index.js'
import { loadTls } from '../src/tls.js'
import { startBadServer, NO_FAULTS } from './helpers/bad-server.js'
import { finding } from './helpers/findings.js'
import { startCliApp } from './helpers/server.js'
import { BR, GZ, makeSite, SQLITE, TINY, WEBP } from './helpers/site.js'

const WEBP_BR = brotliCompressSync(WEBP, { params: { [constants.BROTLI_PARAM_QUALITY]: 4 } })
const HASHED = 'assets/app.3f9a1c2b.wasm'
const APP_JS = 'const a = new URL(\'../sqlite3.wasm\', import.meta.url)\nconst b = "./app.3f9a1c2b.wasm"\nconst c = \'tiny.wasm\'\n'.repeat(20)

const FILES = {
  'index.html': '<!doctype html><title>app</title><script type="module" src="/assets/app.js"></script>\n',
  'assets/app.js': APP_JS,
  'sqlite3.wasm': SQLITE,
  'sqlite3.wasm.br': BR,
  'sqlite3.wasm.gz': GZ,
  [HASHED]: WEBP,
  [`${HASHED}.br`]: WEBP_BR,
  'assets/tiny.wasm': TINY,
}

async function serve (t: Test, https: boolean): Promise<string> {
  const root = makeSite(t, FILES)
  const tls = https ? await loadTls(true) : undefined
  const server = await startCliApp(t, { root, crossOriginIsolation: 'require-corp', earlyHints: true, preload: ['/sqlite3.wasm', `/${HASHED}`, '/assets/tiny.wasm'] }, tls)
  return server.url
}

for (const https of [false, true]) {
  t.test(`wasm-serve itself passes every rule of check over ${https ? 'HTTPS (self-signed, --insecure)' : 'HTTP/1.1'}`, async t => {
    const base = await serve(t, https)
    const report = await checkUrls([`${base}/`], { insecure: https, timeoutMs: 5000 })
    t.same(report.findings.filter(f => f.status !== 'pass'), [], 'no FAIL and no WARN')
    t.equal(report.engine, 'wasm-serve', 'recognised from its content ETags')
    t.same(report.urls.map(u => new URL(u).pathname), ['/', '/assets/app.js', '/sqlite3.wasm', `/${HASHED}`, '/assets/tiny.wasm'], 'the page, its script and the three modules the script names')
    t.match(finding(report, 'content-type', '/sqlite3.wasm').evidence, /^application\/wasm$/)
    t.match(finding(report, 'encoding', '/sqlite3.wasm').evidence, /^br for gzip, deflate, br, zstd; offers br, (zstd, )?gzip$/, 'br chosen; zstd too once made on the fly (Node 22.15+)')
    t.match(finding(report, 'q-values', '/sqlite3.wasm').evidence, /^gzip for/)
    t.match(finding(report, 'content-length', '/sqlite3.wasm').evidence, `br ${BR.length} B, identity ${SQLITE.length} B, gzip ${GZ.length} B`)
    t.match(finding(report, 'vary', '/sqlite3.wasm').evidence, /Vary: Accept-Encoding/)
    t.match(finding(report, 'etag', '/sqlite3.wasm').evidence, /^br "[\w-]{27}", identity "[\w-]{27}", gzip "[\w-]{27}"$/)
    t.match(finding(report, 'not-modified', '/sqlite3.wasm').evidence, /^304 for If-None-Match/)
    t.equal(finding(report, 'range', '/sqlite3.wasm').evidence, `206, Content-Range: bytes 0-7/${SQLITE.length}, starts with 00 61 73 6d`)
    t.match(finding(report, 'head', '/sqlite3.wasm').evidence, `(br, ${BR.length})`)
    t.equal(finding(report, 'decoded-length', '/sqlite3.wasm').evidence, `X-Decoded-Content-Length: ${SQLITE.length} = identity length`)
    t.match(finding(report, 'spa-fallback', '/sqlite3.wasm').evidence, /^404 for \/wasm-serve-check-[0-9a-f]{12}\.wasm$/)
    t.equal(finding(report, 'cache-policy', `/${HASHED}`).evidence, 'hashed name, Cache-Control: public, max-age=31536000, immutable')
    t.equal(finding(report, 'cache-policy', '/sqlite3.wasm').evidence, 'plain name, Cache-Control: no-cache')
    t.equal(finding(report, 'encoding', '/assets/tiny.wasm').evidence, 'identity for gzip, deflate, br, zstd (31 B: too small to gain); offers no encoding')
    t.equal(finding(report, 'content-type', '/assets/app.js').evidence, 'module script text/javascript; charset=utf-8')
    t.equal(finding(report, 'isolation', '/').evidence, 'COOP same-origin, COEP require-corp: crossOriginIsolated possible')
    t.match(finding(report, 'preload', '/').evidence, /^preloaded with crossorigin: /)
    t.match(finding(report, 'early-hints', '/').evidence, /^103 with Link: <\/sqlite3\.wasm>; rel=preload; as=fetch; crossorigin/)
    t.equal(finding(report, 'secure-context', '/').evidence, https ? 'https' : 'http to loopback (127.0.0.1) is a secure context')
    t.equal(finding(report, 'dotfiles', '/').evidence, '/.env 404, /.git/config 404')
  })
}

t.test('HTTPS with a self-signed certificate and without --insecure: reachable FAIL naming the certificate problem', async t => {
  const base = await serve(t, true)
  const report = await checkUrls([`${base}/sqlite3.wasm`], { timeoutMs: 5000 })
  t.equal(report.findings[0]?.rule, 'reachable')
  t.equal(report.findings[0]?.status, 'fail')
  t.match(report.findings[0]?.evidence, /SELF_SIGNED|self-signed|certificate/i)
})

t.test('a module used by a page of another origin: cors FAIL without CORS, PASS with --cors', async t => {
  for (const cors of [false, true]) {
    const root = makeSite(t, { 'sqlite3.wasm': SQLITE, 'sqlite3.wasm.br': BR })
    const modules = await startCliApp(t, { root, ...(cors ? { cors: { origin: '*' } } : {}) })
    const page = await startBadServer(t, {
      'index.html': '<!doctype html><script src="/loader.js"></script>',
      'loader.js': `fetch("${modules.url}/sqlite3.wasm")`,
    }, NO_FAULTS)
    const report = await checkUrls([`${page}/`], { timeoutMs: 5000 })
    const verdict = report.findings.find(f => f.rule === 'cors' && f.url === `${modules.url}/sqlite3.wasm`)
    t.equal(verdict?.status, cors ? 'pass' : 'fail', cors ? 'Access-Control-Allow-Origin: *' : 'no CORS')
    t.match(verdict?.evidence, cors ? /^Access-Control-Allow-Origin: \*$/ : `loaded by a page of ${page}`)
  }
})

t.test('Document-Isolation-Policy counts as isolation: PASS naming the browsers, and under isolate-and-require-corp a cross-origin module without CORS or CORP is a FAIL', async t => {
  const modules = await startCliApp(t, { root: makeSite(t, { 'sqlite3.wasm': SQLITE }) })
  for (const [mode, dip, status] of [['document', 'isolate-and-require-corp', 'fail'], ['document-credentialless', 'isolate-and-credentialless', 'pass']] as const) {
    const own = await startCliApp(t, { root: makeSite(t, FILES), crossOriginIsolation: mode })
    const alone = await checkUrls([`${own.url}/`], { timeoutMs: 5000 })
    t.same(finding(alone, 'isolation', '/'), { rule: 'isolation', status: 'pass', url: `${own.url}/`, evidence: `COOP (none), COEP (none), Document-Isolation-Policy ${dip}: crossOriginIsolated possible in Chromium 137+ (other browsers ignore Document-Isolation-Policy)` }, `${mode}: the page's own modules`)
    const root = makeSite(t, { 'index.html': `<!doctype html><link rel=preload href="${modules.url}/sqlite3.wasm" as=fetch crossorigin>` })
    const page = await startCliApp(t, { root, crossOriginIsolation: mode })
    const report = await checkUrls([`${page.url}/`], { timeoutMs: 5000 })
    const verdict = finding(report, 'isolation', '/')
    t.equal(verdict.status, status, `${mode}: a module of another origin without CORS or CORP`)
    if (status === 'fail') t.match(verdict.evidence, `but ${modules.url}/sqlite3.wasm has neither CORS nor Cross-Origin-Resource-Policy`)
  }
})
