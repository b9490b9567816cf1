/**
 * `wasm-serve check` against test/helpers/bad-server.ts: with every fault at once, each rule's FAIL
 * or WARN is asserted with its evidence; then each fault alone on an otherwise correct server must
 * produce exactly its own findings and nothing else (no rule may blame another rule's break).
 */
import t from 'tap'
import { checkUrls, type Report } from '../src/check/index.js'
import { ALL_FAULTS, NO_FAULTS, startBadServer, type Faults } from './helpers/bad-server.js'
import { finding } from './helpers/findings.js'
import { WEBP } from './helpers/site.js'

const HASHED = '/app.3f9a1c2b.wasm'
const FILES = {
  'index.html': '<!doctype html><title>bad</title><script src="/app.js"></script>\n',
  'app.js': 'fetch("mod.wasm").then(r => WebAssembly.instantiateStreaming(r)); fetch(new URL("/app.3f9a1c2b.wasm", location.href))\n',
  'mod.wasm': WEBP,
  'app.3f9a1c2b.wasm': WEBP,
  '.env': 'API_SECRET=hunter2\n',
}

const check = async (base: string): Promise<Report> => checkUrls([`${base}/`], { timeoutMs: 5000 })

t.test('a server that gets everything wrong: each rule reports its break', async t => {
  const base = await startBadServer(t, FILES)
  const report = await check(base)
  const at = (rule: Parameters<typeof finding>[1], path: string) => finding(report, rule, path)
  t.same(report.urls, [`${base}/`, `${base}/app.js`, `${base}/mod.wasm`, `${base}${HASHED}`], 'the page, its script and the modules the script names')
  t.match(at('content-type', '/mod.wasm'), { status: 'fail', evidence: /^Content-Type: application\/wasm; charset=utf-8: instantiateStreaming rejects/ }, 'charset on wasm')
  t.match(at('encoding', '/mod.wasm'), { status: 'fail', evidence: /^gzip sent to a request without Accept-Encoding/ }, 'encoded without being asked')
  t.match(at('q-values', '/mod.wasm'), { status: 'fail', evidence: 'br sent for gzip;q=1, br;q=0, zstd;q=0' }, 'br despite q=0')
  t.match(at('content-length', '/mod.wasm'), { status: 'warn', evidence: /^no Content-Length \(chunked\): no Accept-Encoding → gzip/ }, 'chunked gzip without length')
  t.match(at('vary', '/mod.wasm'), { status: 'fail', evidence: /^no Vary: Accept-Encoding on Chrome → br, no Accept-Encoding → gzip/ }, 'no Vary')
  t.match(at('etag', '/mod.wasm'), { status: 'fail', evidence: `one strong ETag "${WEBP.length}-1" for br and gzip` }, 'one strong ETag for all')
  t.match(at('not-modified', '/mod.wasm'), { status: 'pass', evidence: /^304/ }, 'it does revalidate')
  t.match(at('range', '/mod.wasm'), { status: 'warn', evidence: /^200 for Range: bytes=0-7 \(no ranges; body dropped after 8 bytes\)/ }, 'no ranges')
  t.match(at('head', '/mod.wasm'), { status: 'fail', evidence: 'content-type application/wasm; charset=utf-8 on GET, application/octet-stream on HEAD' }, 'HEAD disagrees')
  t.match(at('cache-policy', '/mod.wasm'), { status: 'pass', evidence: 'plain name, Cache-Control: no-cache' })
  t.match(at('cache-policy', HASHED), { status: 'warn', evidence: /^hashed name, Cache-Control: no-cache: revalidated on every load/ }, 'hashed no-cache')
  t.match(at('cache-policy', '/'), { status: 'fail', evidence: /^page Cache-Control: public, max-age=31536000, immutable: a new deploy is not seen/ }, 'HTML immutable')
  t.match(at('decoded-length', '/mod.wasm'), { status: 'fail', evidence: `X-Decoded-Content-Length: ${WEBP.length + 1}, identity is ${WEBP.length} B: progress ends short of 100 %` }, 'X-Decoded-Content-Length wrong')
  t.match(at('spa-fallback', '/mod.wasm'), { status: 'fail', evidence: /^200 text\/html; charset=utf-8 for the missing \/wasm-serve-check-[0-9a-f]{12}\.wasm: an HTML page/ }, 'SPA HTML for a missing .wasm')
  t.match(at('cors', '/mod.wasm'), { status: 'pass', evidence: 'same-origin only (no Access-Control-Allow-Origin)' })
  t.match(at('dotfiles', '/'), { status: 'fail', evidence: '/.env 200 (content), /.git/config 200 (an HTML page): secrets in dotfiles are public' }, 'dotfiles served')
  t.match(at('preload', '/'), { status: 'fail', evidence: `preload without crossorigin (${base}/mod.wasm in Link, ${base}${HASHED} in Link): fetch() downloads the module a second time` }, 'preload without crossorigin')
  t.match(at('early-hints', '/'), { status: 'warn', evidence: 'the page has preload links but no 103 Early Hints carried them' })
  t.match(at('isolation', '/'), { status: 'warn', evidence: /^COOP \(none\), COEP \(none\): crossOriginIsolated is false/ })
  t.match(at('secure-context', '/'), { status: 'pass' })
  t.match(at('content-type', '/app.js'), { status: 'pass', evidence: 'script text/javascript; charset=utf-8' })
  t.ok(report.findings.filter(f => f.status !== 'pass').every(f => typeof f.fix === 'string' && f.fix.length > 10), 'every WARN and FAIL has a fix')
  t.ok(report.findings.filter(f => f.status === 'pass').every(f => f.fix === undefined), 'no PASS has one')
  t.equal(report.engine, undefined, 'no Server header: no engine named')
})

/** What each fault alone adds to a correct server's findings, as `status rule path`. */
const ALONE: Record<Exclude<keyof Faults, 'server'>, string[]> = {
  wasmCharset: ['fail content-type /mod.wasm', `fail content-type ${HASHED}`],
  substringBr: ['fail q-values /mod.wasm', `fail q-values ${HASHED}`],
  encodesUnasked: ['fail encoding /mod.wasm', `fail encoding ${HASHED}`],
  chunkedGzip: ['warn content-length /mod.wasm', `warn content-length ${HASHED}`],
  chunkedIdentity: ['warn content-length /mod.wasm', `warn content-length ${HASHED}`],
  noVary: ['fail vary /mod.wasm', `fail vary ${HASHED}`],
  sharedEtag: ['fail etag /mod.wasm', `fail etag ${HASHED}`],
  noRanges: ['warn range /mod.wasm', `warn range ${HASHED}`],
  wrongDecodedLength: ['fail decoded-length /mod.wasm', `fail decoded-length ${HASHED}`],
  immutableHtml: ['fail cache-policy /'],
  hashedNoCache: [`warn cache-policy ${HASHED}`],
  dotfiles: ['fail dotfiles /'],
  // The fallback also answers /.env with the page: a WARN on dotfiles, not a FAIL.
  spaFallback: ['fail spa-fallback /mod.wasm', `fail spa-fallback ${HASHED}`, 'warn dotfiles /'],
  // The page's Link preloads are now there (so not WARNed as missing) but wrong, and no 103 carries them.
  preloadNoCrossorigin: ['fail preload /', 'warn early-hints /'],
  headType: ['fail head /mod.wasm', `fail head ${HASHED}`],
}

/** A correct server without isolation or preloads: those two WARN on the page, nothing else. */
const BASELINE = ['warn preload /', 'warn isolation /']

const problems = (report: Report): string[] => report.findings.filter(f => f.status !== 'pass').map(f => `${f.status} ${f.rule} ${new URL(f.url).pathname}`).sort()

t.test('each fault alone gives exactly its own findings', async t => {
  t.same(Object.keys(ALONE).sort(), Object.keys(ALL_FAULTS).sort(), 'every fault of the bad server is covered')
  const base = await startBadServer(t, FILES, NO_FAULTS)
  t.same(problems(await check(base)), [...BASELINE].sort(), 'the correct server: only no isolation and no preload')
  for (const [fault, expected] of Object.entries(ALONE)) {
    const broken = await startBadServer(t, FILES, { ...NO_FAULTS, [fault]: true })
    const baseline = fault === 'preloadNoCrossorigin' ? BASELINE.filter(b => !b.includes('preload')) : BASELINE
    t.same(problems(await check(broken)), [...baseline, ...expected].sort(), fault)
  }
})

t.test('a missing module answered with the SPA page: wrong type, and the bytes are not wasm', async t => {
  const base = await startBadServer(t, FILES, { ...NO_FAULTS, spaFallback: true })
  const report = await checkUrls([`${base}/gone.wasm`], { timeoutMs: 5000 })
  t.match(finding(report, 'content-type', '/gone.wasm'), { status: 'fail', evidence: /^Content-Type: text\/html; charset=utf-8/ })
  t.match(finding(report, 'range', '/gone.wasm'), { status: 'fail', evidence: '206, the bytes are not a wasm module: 3c 21 64 6f ("<!do")' })
})

t.test('the fix is given in the terms of the engine named by Server, with its export target', async t => {
  const base = await startBadServer(t, FILES, { ...NO_FAULTS, wasmCharset: true, server: 'nginx/1.26.2' })
  const report = await checkUrls([`${base}/mod.wasm`], { timeoutMs: 5000 })
  t.equal(report.engine, 'nginx')
  t.equal(finding(report, 'content-type', '/mod.wasm').fix, 'nginx: types { application/wasm wasm; } and no charset for it (charset_types must not list application/wasm) (or: wasm-serve export --target nginx <dir>)')
})

t.test('the export is not offered as the fix for what the engine\'s exported configuration cannot do either', async t => {
  const base = await startBadServer(t, FILES, { ...NO_FAULTS, chunkedGzip: true, server: 'Caddy' })
  const report = await checkUrls([`${base}/mod.wasm`], { timeoutMs: 5000 })
  t.equal(report.engine, 'caddy')
  const fix = finding(report, 'content-length', '/mod.wasm').fix ?? ''
  t.match(fix, /^caddy: file_server \{ precompressed br zstd gzip \}.*caddyserver\/caddy#7251/)
  t.notMatch(fix, /wasm-serve export/, 'Caddy 2.6 sends precompressed files chunked whatever the export says')
})

t.test('a big module whose length only a full download tells is read once, with progress by quarters', async t => {
  const big = Buffer.concat([Buffer.from('0061736d01000000', 'hex'), Buffer.alloc(5 * 1024 * 1024)])
  const base = await startBadServer(t, { 'big.wasm': big }, { ...NO_FAULTS, chunkedIdentity: true, noRanges: true })
  const lines: string[] = []
  const report = await checkUrls([`${base}/big.wasm`], { timeoutMs: 5000, progress: line => lines.push(line) })
  t.match(finding(report, 'decoded-length', '/big.wasm'), { status: 'pass', evidence: `X-Decoded-Content-Length: ${big.length} = identity length` })
  t.same(lines.map(l => /: (\d+) %/.exec(l)?.[1]), ['25', '50', '75', '100'], 'one line per quarter')
  t.match(lines[0], `downloading ${base}/big.wasm: 25 %`)
})
