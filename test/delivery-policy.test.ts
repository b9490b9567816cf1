// The delivery policy over real HTTP on a real site (D10–D13, D15), over every transport alike:
// cache rules by route, preload Link and 103 Early Hints, cross-origin isolation, CORS, the SPA
// fallback; then config mistakes refused at start-up with their JSON paths.
import t, { type Test } from 'tap'
import { rawRequest } from './helpers/raw-http.js'
import { get as getOnce, type Got } from './helpers/http.js'
import { BR, PAGE, SITE, SQLITE, TINY, makeSite } from './helpers/site.js'
import { startCliApp } from './helpers/server.js'
import { TRANSPORTS } from './helpers/transports.js'
import { OptionsError, resolveOptions, type WasmServeOptions } from '../src/options.js'

const IMMUTABLE = 'public, max-age=31536000, immutable'
const HASHED_WASM = 'assets/app-BxT3k9aZ.wasm'
const HASHED_JS = 'assets/index-DiwrgTda.js'
/** The Link value for a route preload of the module and a top-level preload of the script. */
const PRELOADS = '</sqlite3.wasm>; rel=preload; as=fetch; crossorigin, </app.js>; rel=modulepreload; crossorigin'

const root = makeSite(t, { ...SITE, [HASHED_WASM]: TINY, [HASHED_JS]: 'export const x = 1\n' })

const tokens = (value: string | undefined) => (value ?? '').split(',').map(s => s.trim().toLowerCase()).filter(s => s !== '')

/** The headers a policy adds, as they appear on one response. */
function policyHeaders (headers: Got['headers'], names: string[]): Record<string, string | undefined> {
  return Object.fromEntries(names.map(name => [name, headers[name]]))
}

for (const transport of TRANSPORTS) {
  t.test(`the delivery policy over ${transport.name}`, async t => {
    /** The server the CLI runs on the site, with `options`, over this transport. */
    const start = (t: Test, options: WasmServeOptions = {}) => transport.start(t, { ...options, root })

    t.test('without config, hashed names are immutable for a year and everything else revalidates', async t => {
      const { get } = await start(t)
      const cases: Array<[string, string]> = [
        [`/${HASHED_WASM}`, IMMUTABLE],
        [`/${HASHED_JS}`, IMMUTABLE],
        ['/sqlite3.wasm', 'no-cache'],
        ['/tiny.wasm', 'no-cache'],
        ['/app.js', 'no-cache'],
        ['/index.html', 'no-cache'],
        ['/', 'no-cache'],
        ['/logo.png', 'no-cache'],
      ]
      for (const [path, cacheControl] of cases) {
        const res = await get(path)
        t.equal(res.status, 200, path)
        t.equal(res.headers['cache-control'], cacheControl, `${path} → ${cacheControl}`)
      }
    })

    t.test('routes: the first match wins and sets Cache-Control and extra headers', async t => {
      const { get } = await start(t, {
        routes: [
          { match: 'assets/**', cacheControl: 'public, max-age=600', headers: { 'X-Content-Type-Options': 'nosniff', 'X-Route': 'assets' } },
          { match: '**/*.wasm', cacheControl: 'public, max-age=60, must-revalidate', headers: { 'X-Route': 'wasm' } },
          { match: '**/*.html', cacheControl: 'no-store' },
        ],
      })
      const hashed = await get(`/${HASHED_WASM}`)
      t.equal(hashed.headers['cache-control'], 'public, max-age=600', 'the route overrides the hash default')
      t.equal(hashed.headers['x-content-type-options'], 'nosniff')
      t.equal(hashed.headers['x-route'], 'assets', 'the first route wins, the second adds nothing')
      t.equal(hashed.headers['content-type'], 'application/wasm')
      const wasm = await get('/sqlite3.wasm', { 'accept-encoding': 'br' })
      t.equal(wasm.headers['cache-control'], 'public, max-age=60, must-revalidate', 'the br sibling gets the route of the file it stands for')
      t.equal(wasm.headers['x-route'], 'wasm')
      t.equal(wasm.headers['content-encoding'], 'br')
      t.ok(wasm.body.equals(BR))
      t.equal((await get('/')).headers['cache-control'], 'no-store', '"/" is matched as index.html')
      t.equal((await get('/app.js')).headers['cache-control'], 'no-cache', 'unmatched files keep the default')
    })

    t.test('policy headers are identical on 200, 206, 304 and HEAD', async t => {
      const { get } = await start(t, {
        crossOriginIsolation: 'require-corp',
        cors: { origin: '*' },
        routes: [{ match: '**/*.wasm', cacheControl: 'public, max-age=60', headers: { 'X-Policy': 'wasm' } }],
      })
      const names = ['cache-control', 'x-policy', 'cross-origin-resource-policy', 'access-control-allow-origin', 'access-control-expose-headers', 'timing-allow-origin', 'vary', 'etag']
      const full = await get('/sqlite3.wasm')
      t.equal(full.status, 200)
      t.ok(full.body.equals(SQLITE))
      const expected = policyHeaders(full.headers, names)
      t.equal(expected['x-policy'], 'wasm')
      t.equal(expected['cache-control'], 'public, max-age=60')
      const partial = await get('/sqlite3.wasm', { range: 'bytes=0-7' })
      t.equal(partial.status, 206)
      t.ok(partial.body.equals(SQLITE.subarray(0, 8)))
      t.same(policyHeaders(partial.headers, names), expected, '206 carries the same policy headers')
      const notModified = await get('/sqlite3.wasm', { 'if-none-match': full.headers.etag! })
      t.equal(notModified.status, 304)
      t.same(policyHeaders(notModified.headers, names), expected, '304 carries the same policy headers')
      const head = await get('/sqlite3.wasm', {}, 'HEAD')
      t.equal(head.status, 200)
      t.equal(head.body.length, 0)
      t.same(policyHeaders(head.headers, names), expected, 'HEAD carries the same policy headers')

      const page = await get('/index.html')
      const pageNames = ['cache-control', 'cross-origin-opener-policy', 'cross-origin-embedder-policy', 'etag']
      const page304 = await get('/index.html', { 'if-none-match': page.headers.etag! })
      t.equal(page304.status, 304)
      t.same(policyHeaders(page304.headers, pageNames), policyHeaders(page.headers, pageNames), 'a 304 for the page keeps COOP and COEP')
    })

    t.test('preload links go on matching HTML responses, from a route and from top-level preload', async t => {
      const { get } = await start(t, {
        routes: [{ match: '**/*.html', preload: ['/sqlite3.wasm'] }],
        preload: ['/app.js'],
      })
      const page = await get('/index.html')
      t.equal(page.status, 200)
      t.equal(page.headers.link, PRELOADS)
      t.equal(page.body.toString(), PAGE)
      t.equal((await get('/')).headers.link, PRELOADS, '"/" is the page too')
      t.equal((await get('/index.html', {}, 'HEAD')).headers.link, PRELOADS, 'HEAD too')
      t.equal((await get('/sqlite3.wasm')).headers.link, undefined, 'not on wasm')
      t.equal((await get('/app.js')).headers.link, undefined, 'not on scripts')
    })

    t.test('top-level preload alone applies to every page', async t => {
      const { get } = await start(t, { preload: ['/tiny.wasm'] })
      t.equal((await get('/index.html')).headers.link, '</tiny.wasm>; rel=preload; as=fetch; crossorigin')
      t.equal((await get('/logo.png')).headers.link, undefined)
    })

    t.test('without earlyHints no 103 is sent', async t => {
      const { get } = await start(t, { preload: ['/sqlite3.wasm'] })
      const res = await get('/index.html')
      t.equal(res.status, 200)
      t.same(res.informational, [])
    })

    t.test('with earlyHints a 103 carrying the same Link arrives before the 200', async t => {
      const { get } = await start(t, {
        earlyHints: true,
        routes: [{ match: '**/*.html', preload: ['/sqlite3.wasm'] }],
        preload: ['/app.js'],
      })
      const res = await get('/index.html')
      t.equal(res.status, 200)
      t.same(res.informational.map(i => i.status), [103], 'one 103, then the 200')
      t.equal(res.informational[0]?.headers.link, PRELOADS, 'the 103 carries the same links')
      t.equal(res.headers.link, PRELOADS, 'the 200 carries them too')
      t.equal(res.body.toString(), PAGE)
      t.same((await get('/sqlite3.wasm')).informational, [], 'no 103 for non-HTML')
      t.same((await get('/index.html', {}, 'HEAD')).informational, [], 'no 103 for HEAD')
    })

    t.test('with earlyHints but no preload configured no 103 is sent', async t => {
      const { get } = await start(t, { earlyHints: true })
      t.same((await get('/index.html')).informational, [])
    })

    t.test('cross-origin isolation: COOP same-origin and COEP on HTML, CORP on wasm', async t => {
      for (const mode of ['require-corp', 'credentialless'] as const) {
        const { get } = await start(t, { crossOriginIsolation: mode })
        const page = await get('/index.html')
        t.equal(page.headers['cross-origin-opener-policy'], 'same-origin', `${mode}: COOP`)
        t.equal(page.headers['cross-origin-embedder-policy'], mode, `${mode}: COEP`)
        const wasm = await get('/sqlite3.wasm', { 'accept-encoding': 'br' })
        t.equal(wasm.headers['cross-origin-resource-policy'], 'same-origin', `${mode}: CORP on the module`)
        t.equal(wasm.headers['content-type'], 'application/wasm')
        t.equal(wasm.headers['cross-origin-opener-policy'], undefined, `${mode}: no COOP on the module`)
      }
      const { get } = await start(t)
      const page = await get('/index.html')
      t.equal(page.headers['cross-origin-opener-policy'], undefined, 'off by default')
      t.equal(page.headers['cross-origin-embedder-policy'], undefined, 'off by default')
    })

    t.test('document isolation: Document-Isolation-Policy on HTML and JavaScript, no COOP or COEP; CORP alone on wasm', async t => {
      for (const [mode, dip] of [['document', 'isolate-and-require-corp'], ['document-credentialless', 'isolate-and-credentialless']] as const) {
        const { get } = await start(t, { crossOriginIsolation: mode })
        const names = ['document-isolation-policy', 'cross-origin-opener-policy', 'cross-origin-embedder-policy', 'cross-origin-resource-policy']
        const page = await get('/index.html')
        t.same(policyHeaders(page.headers, names), { 'document-isolation-policy': dip, 'cross-origin-opener-policy': undefined, 'cross-origin-embedder-policy': undefined, 'cross-origin-resource-policy': 'same-origin' }, `${mode}: the page`)
        const script = await get('/app.js')
        t.equal(script.headers['document-isolation-policy'], dip, `${mode}: the script a worker may start from`)
        const wasm = await get('/sqlite3.wasm', { 'accept-encoding': 'br' })
        t.equal(wasm.headers['content-encoding'], 'br')
        t.same(policyHeaders(wasm.headers, names), { 'document-isolation-policy': undefined, 'cross-origin-opener-policy': undefined, 'cross-origin-embedder-policy': undefined, 'cross-origin-resource-policy': 'same-origin' }, `${mode}: the module gets CORP only`)
      }
    })

    t.test('CORS "*": Allow-Origin, exposed decoded length and ETag, Timing-Allow-Origin', async t => {
      const { get } = await start(t, { cors: { origin: '*' } })
      const res = await get('/sqlite3.wasm', { origin: 'https://elsewhere.example', 'accept-encoding': 'br' })
      t.equal(res.status, 200)
      t.equal(res.headers['access-control-allow-origin'], '*')
      const exposed = tokens(res.headers['access-control-expose-headers'])
      t.ok(exposed.includes('x-decoded-content-length'), 'exposes X-Decoded-Content-Length')
      t.ok(exposed.includes('etag'), 'exposes ETag')
      t.ok(exposed.includes('content-range') && exposed.includes('accept-ranges'), 'exposes Content-Range and Accept-Ranges, for range readers on another origin')
      t.equal(res.headers['timing-allow-origin'], '*')
      const part = await get('/sqlite3.wasm', { origin: 'https://elsewhere.example', range: 'bytes=0-7' })
      t.equal(part.status, 206)
      t.equal(part.headers['content-range'], `bytes 0-7/${SQLITE.length}`)
      t.ok(tokens(part.headers['access-control-expose-headers']).includes('content-range'), 'on the 206 too')
      t.equal(res.headers['x-decoded-content-length'], String(SQLITE.length))
      t.same(tokens(res.headers.vary), ['accept-encoding'], 'no Vary: Origin for "*"')
    })

    t.test('CORS with a list of origins echoes only allowed origins and varies on Origin', async t => {
      const allowed = 'https://app.example'
      const { get } = await start(t, { cors: { origin: [allowed, 'https://other.example'] } })
      const yes = await get('/sqlite3.wasm', { origin: allowed, 'accept-encoding': 'br' })
      t.equal(yes.headers['access-control-allow-origin'], allowed)
      t.ok(tokens(yes.headers['access-control-expose-headers']).includes('x-decoded-content-length'))
      const vary = tokens(yes.headers.vary)
      t.ok(vary.includes('accept-encoding') && vary.includes('origin'), `Vary is ${yes.headers.vary}`)
      const no = await get('/sqlite3.wasm', { origin: 'https://evil.example' })
      t.equal(no.status, 200)
      t.equal(no.headers['access-control-allow-origin'], undefined, 'a foreign origin is not echoed')
      t.ok(tokens(no.headers.vary).includes('origin'), 'Vary: Origin also when not allowed')
      const none = await get('/sqlite3.wasm')
      t.equal(none.headers['access-control-allow-origin'], undefined)
      t.ok(tokens(none.headers.vary).includes('origin'), 'Vary: Origin also without an Origin header')
      const page = await get('/index.html', { origin: allowed })
      t.equal(page.headers['access-control-allow-origin'], allowed)
      t.ok(tokens(page.headers.vary).includes('origin'), 'the page varies on Origin too')
      const cached = await get('/sqlite3.wasm', { origin: allowed, 'if-none-match': yes.headers.etag!, 'accept-encoding': 'br' })
      t.equal(cached.status, 304)
      t.equal(cached.headers['access-control-allow-origin'], allowed, 'a 304 keeps Allow-Origin')
      t.same(tokens(cached.headers.vary), vary, 'a 304 keeps the same Vary')
    })

    t.test('preflight OPTIONS is answered 204 with the allowed methods', async t => {
      const star = await start(t, { cors: { origin: '*' } })
      const res = await star.get('/sqlite3.wasm', {
        origin: 'https://app.example',
        'access-control-request-method': 'GET',
        'access-control-request-headers': 'range',
      }, 'OPTIONS')
      t.equal(res.status, 204)
      t.equal(res.headers['access-control-allow-origin'], '*')
      const methods = tokens(res.headers['access-control-allow-methods'])
      t.ok(methods.includes('get') && methods.includes('head'), `Allow-Methods is ${res.headers['access-control-allow-methods']}`)
      t.ok(tokens(res.headers['access-control-allow-headers']).includes('range'), 'the asked request headers are allowed')
      t.equal(res.body.length, 0)

      const list = await start(t, { cors: { origin: ['https://app.example'] } })
      const ok = await list.get('/sqlite3.wasm', { origin: 'https://app.example', 'access-control-request-method': 'GET' }, 'OPTIONS')
      t.equal(ok.status, 204)
      t.equal(ok.headers['access-control-allow-origin'], 'https://app.example')
      t.ok(tokens(ok.headers['access-control-allow-methods']).includes('get'))
      t.ok(tokens(ok.headers.vary).includes('origin'))
      const denied = await list.get('/sqlite3.wasm', { origin: 'https://evil.example', 'access-control-request-method': 'GET' }, 'OPTIONS')
      t.equal(denied.headers['access-control-allow-origin'], undefined, 'no Allow-Origin for a foreign origin')
      t.equal(denied.headers['access-control-allow-methods'], undefined)
    })

    t.test('SPA fallback: unknown extension-less routes that accept HTML get the page with its policy', async t => {
      const { get } = await start(t, {
        spa: 'index.html',
        crossOriginIsolation: 'require-corp',
        routes: [{ match: '**/*.html', cacheControl: 'no-cache', headers: { 'X-Page': 'spa' }, preload: ['/sqlite3.wasm'] }],
      })
      const html = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8'
      for (const path of ['/some/route', '/dashboard', '/users/42/settings']) {
        const res = await get(path, { accept: html })
        t.equal(res.status, 200, path)
        t.equal(res.body.toString(), PAGE, `${path} gets the page`)
        t.match(res.headers['content-type'], /^text\/html/)
        t.equal(res.headers['x-page'], 'spa', 'the page\'s route headers')
        t.equal(res.headers['cache-control'], 'no-cache')
        t.equal(res.headers.link, '</sqlite3.wasm>; rel=preload; as=fetch; crossorigin', 'the page\'s preload')
        t.equal(res.headers['cross-origin-embedder-policy'], 'require-corp')
      }
      for (const path of ['/missing.wasm', '/app/x.js', '/data.json', '/route/file.wasm', '/assets/missing-BxT3k9aZ.js']) {
        const res = await get(path, { accept: html })
        t.equal(res.status, 404, `${path} with an extension is 404`)
        t.notMatch(res.body.toString(), /<h1>site<\/h1>/, `${path} is not the page`)
      }
      t.equal((await get('/logo.png', { accept: html })).status, 200, 'an existing file with an extension is still served')
      for (const accept of ['*/*', 'application/json', 'application/wasm']) {
        t.equal((await get('/route', { accept })).status, 404, `/route with Accept: ${accept} is 404`)
      }
      t.equal((await get('/route')).status, 404, '/route without Accept is 404')
    })

    t.test('SPA with earlyHints sends the 103 for a fallback route too', async t => {
      const { get } = await start(t, { spa: 'index.html', earlyHints: true, preload: ['/sqlite3.wasm'] })
      const res = await get('/deep/link', { accept: 'text/html' })
      t.equal(res.status, 200)
      t.same(res.informational.map(i => i.status), [103])
    })
  })
}

t.test('over HTTP/1.1 the 103 is the first thing on the wire, the 200 right after it', async t => {
  const { port } = await startCliApp(t, { root, earlyHints: true, preload: ['/sqlite3.wasm'] })
  // rawRequest reads the first response head on the wire; what follows it is left as the body.
  const raw = await rawRequest({ port, target: '/index.html' })
  t.equal(raw.status, 103, 'the 103 comes first')
  t.match(raw.headers.link, /<\/sqlite3\.wasm>; rel=preload; as=fetch; crossorigin/)
  t.match(raw.body.toString('latin1'), /^HTTP\/1\.1 200 /, 'the 200 follows it')
})

t.test('a preload that names no file is a start-up warning', async t => {
  const server = await startCliApp(t, { root, preload: ['/missing.wasm', '/sqlite3.wasm'], routes: [{ match: '**/*.html', preload: ['/nope/app.js'] }] })
  const warnings = server.logs.filter(l => l.level === 40)
  const named = warnings.map(l => l.preload)
  t.ok(named.includes('/missing.wasm'), 'warns about the top-level preload')
  t.ok(named.includes('/nope/app.js'), 'warns about the route preload')
  t.notOk(named.includes('/sqlite3.wasm'), 'no warning for a file that exists')
  t.match(String(warnings[0]?.msg), /preload/)
})

t.test('under require-corp isolation (or its report mode), a preload without crossorigin in a page or a route Link header is a start-up warning', async t => {
  const page = [
    '<!doctype html><title>preloads</title>',
    '<link rel="preload" href="sqlite3.wasm" as="fetch">', // fetch() will not reuse it
    '<link rel=preload href="https://cdn.example/font.woff2" as=font crossorigin>', // fine: CORS
    '<link rel="preload" href="https://cdn.example/big.png" as="image">', // another origin, no-cors: needs CORP
    '<link rel="preload" href="/app.css" as="style">', // same origin, matched by a no-cors stylesheet: fine
    '<link rel="modulepreload" href="/app.js">', // module scripts are fetched in CORS mode anyway
    '<!-- <link rel="preload" href="/commented.wasm" as="fetch"> -->',
  ].join('\n')
  const site = makeSite(t, { 'index.html': page, 'sub/page.html': '<link rel=preload href=../tiny.wasm as=fetch crossorigin>', 'sqlite3.wasm': TINY, 'tiny.wasm': TINY, 'app.js': 'export {}', 'app.css': '' })
  const routes = [{ match: '**/*.html', headers: { Link: '</tiny.wasm>; rel=preload; as=fetch, </app.js>; rel=modulepreload' } }]
  const warned = (logs: Array<Record<string, unknown>>) => logs.filter(l => l.level === 40 && /crossorigin/.test(String(l.msg))).map(l => [l.in, l.preload])
  for (const mode of ['require-corp', 'document', 'report'] as const) {
    const server = await startCliApp(t, { root: site, crossOriginIsolation: mode, routes })
    t.same(warned(server.logs).sort(), [
      ['index.html', '/sqlite3.wasm'],
      ['index.html', 'https://cdn.example/big.png'],
      ['route "**/*.html"', '/tiny.wasm'],
    ], `${mode}: the loose preloads, each named with where it is`)
    const line = server.logs.find(l => l.preload === 'https://cdn.example/big.png')
    const when = mode === 'report' ? 'once --isolate enforces it (report mode now)' : `under crossOriginIsolation "${mode}"`
    t.equal(String(line?.msg), `preload without crossorigin ${when}: another origin: blocked unless it sends Cross-Origin-Resource-Policy; add crossorigin`)
  }
  for (const mode of [false, 'credentialless', 'document-credentialless'] as const) {
    const server = await startCliApp(t, { root: site, crossOriginIsolation: mode, routes })
    t.same(warned(server.logs), [], `${mode === false ? 'off' : mode}: nothing to warn about (no CORP is required of no-cors loads)`)
  }
})

t.test('config mistakes are refused at start-up, every problem with its JSON path', async t => {
  const bad = {
    root,
    crossOriginIsolation: 'yes',
    cors: { origin: ['app.example'] },
    preload: ['sqlite3.wasm'],
    routes: [
      { match: '**', headers: { 'X-Split': 'a\r\nSet-Cookie: x=1', Connection: 'close', 'Transfer-Encoding': 'chunked' } },
      { match: '**/*.html', preload: ['app.js'] },
    ],
  }
  let error: unknown
  try { resolveOptions(bad) } catch (err) { error = err }
  t.ok(error instanceof OptionsError, 'throws OptionsError')
  const problems = (error as OptionsError).problems
  const paths = problems.map(p => p.path)
  for (const path of [
    '/crossOriginIsolation',
    '/cors/origin/0',
    '/preload/0',
    '/routes/0/headers/X-Split',
    '/routes/0/headers/Connection',
    '/routes/0/headers/Transfer-Encoding',
    '/routes/1/preload/0',
  ]) t.ok(paths.includes(path), `reports ${path}`)
  t.equal((error as OptionsError).code, 'WASM_SERVE_BAD_OPTIONS')
  for (const path of paths) t.match((error as Error).message, path, `the message names ${path}`)
  t.match(problems.find(p => p.path === '/routes/0/headers/X-Split')?.message, /CR|LF/)
  t.match(problems.find(p => p.path === '/crossOriginIsolation')?.message, /require-corp/)
})

t.test('a header name that is not an HTTP token is refused at start-up', async t => {
  let error: unknown
  try { resolveOptions({ routes: [{ match: '**', headers: { 'Bad Header': 'x', 'X:Colon': 'y' } }] }) } catch (err) { error = err }
  t.ok(error instanceof OptionsError, 'throws OptionsError instead of failing every response later')
  const paths = error instanceof OptionsError ? error.problems.map(p => p.path) : []
  t.ok(paths.some(p => p.startsWith('/routes/0/headers')), `names the route's headers (got ${JSON.stringify(paths)})`)
})

t.test('a Cache-Control value with CR or LF is refused at start-up', async t => {
  let error: unknown
  try { resolveOptions({ routes: [{ match: '**', cacheControl: 'no-cache\r\nSet-Cookie: x=1' }] }) } catch (err) { error = err }
  t.ok(error instanceof OptionsError, 'throws OptionsError')
  const paths = error instanceof OptionsError ? error.problems.map(p => p.path) : []
  t.ok(paths.includes('/routes/0/cacheControl'), `names /routes/0/cacheControl (got ${JSON.stringify(paths)})`)
})

t.test('hop-by-hop header names are refused in any letter case', async t => {
  let error: unknown
  try { resolveOptions({ routes: [{ match: '**', headers: { 'keep-alive': 'timeout=5', UPGRADE: 'h2c' } }] }) } catch (err) { error = err }
  t.ok(error instanceof OptionsError)
  const paths = error instanceof OptionsError ? error.problems.map(p => p.path) : []
  t.ok(paths.includes('/routes/0/headers/keep-alive'))
  t.ok(paths.includes('/routes/0/headers/UPGRADE'))
})

t.test('a route cannot set Content-Type: the type comes from the file, never a charset on wasm (D1)', async t => {
  let error: unknown
  try { resolveOptions({ routes: [{ match: '**/*.wasm', headers: { 'Content-Type': 'application/wasm; charset=utf-8' } }] }) } catch (err) { error = err }
  t.ok(error instanceof OptionsError, 'refused at start-up')
  const problems = error instanceof OptionsError ? error.problems : []
  t.ok(problems.some(p => p.path === '/routes/0/headers/Content-Type' && /set by the server/.test(p.message)), 'with its JSON path', { problems })
})

t.test('a valid config with every delivery key resolves', async t => {
  const opts = resolveOptions({
    root,
    crossOriginIsolation: 'credentialless',
    cors: { origin: ['https://app.example'] },
    earlyHints: true,
    spa: 'index.html',
    preload: ['/sqlite3.wasm'],
    routes: [{ match: '**/*.html', cacheControl: 'no-cache', preload: ['/app.js'], headers: { 'X-Frame-Options': 'DENY' } }],
  })
  t.equal(opts.crossOriginIsolation, 'credentialless')
  t.equal(opts.routes.length, 1)
})

t.test('a route that makes HTML pages immutable is a start-up warning naming the route and up to three pages (D10)', async t => {
  const site = makeSite(t, { ...SITE, ...Object.fromEntries(['a', 'b', 'c', 'd'].map(p => [`docs/${p}.html`, PAGE])) })
  const pinned = (server: { logs: Array<Record<string, unknown>> }) => server.logs.filter(l => l.level === 40 && /immutable/.test(String(l.msg)))

  const all = await startCliApp(t, { root: site, routes: [{ match: '**', cacheControl: IMMUTABLE }] })
  const [warning, ...more] = pinned(all)
  t.equal(more.length, 0, 'one warning for the route')
  t.match(warning, { route: '**', cacheControl: IMMUTABLE, pages: ['index.html', 'docs/a.html', 'docs/b.html'], htmlPages: 5 }, 'naming its match, index.html first, three pages of five')
  t.match(String(warning?.msg), /HTML pages immutable.*no-cache/)
  t.equal((await getOnce(`${all.url}/`)).headers['cache-control'], IMMUTABLE, 'the route still applies as configured')

  const safe = await startCliApp(t, { root: site, routes: [{ match: '**/*.html', cacheControl: 'no-cache' }, { match: '**', cacheControl: IMMUTABLE }, { match: 'docs/**', cacheControl: 'public, max-age=60' }] })
  t.same(pinned(safe), [], 'no warning when an earlier route gives HTML no-cache')

  const hashedOnly = await startCliApp(t, { root: site })
  t.same(pinned(hashedOnly), [], 'nor without routes (only hashed names are immutable by default)')
})

t.test('an immutable glob that takes in HTML pages is a start-up warning too, unless --no-cache takes them back (D10)', async t => {
  const site = makeSite(t, { ...SITE, 'docs/a.html': PAGE })
  const pinned = (server: { logs: Array<Record<string, unknown>> }) => server.logs.filter(l => l.level === 40 && /immutable/.test(String(l.msg)))
  const all = await startCliApp(t, { root: site, immutable: ['**'] })
  const [warning, ...more] = pinned(all)
  t.equal(more.length, 0, 'one warning for the glob')
  t.match(warning, { immutable: '**', cacheControl: IMMUTABLE, pages: ['index.html', 'docs/a.html'], htmlPages: 2 })
  t.match(String(warning?.msg), /immutable glob makes HTML pages immutable.*--no-cache/)
  t.equal((await getOnce(`${all.url}/`)).headers['cache-control'], IMMUTABLE, 'the glob still applies as configured')
  const takenBack = await startCliApp(t, { root: site, immutable: ['**'], noCache: ['**/*.html'] })
  t.same(pinned(takenBack), [], 'no warning when --no-cache keeps pages revalidated')
  const assetsOnly = await startCliApp(t, { root: site, immutable: ['*.wasm'] })
  t.same(pinned(assetsOnly), [], 'nor for a glob that takes no page')
})
