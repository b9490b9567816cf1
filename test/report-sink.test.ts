/**
 * The report sink of `--isolate=report` (D12): what browsers post is logged once per violation with
 * the fix, and the endpoint holds up against anyone else posting to it (415, 413, 400, 429, bounded
 * memory). Real servers on loopback, their pino logs captured.
 */
import t from 'tap'
import { request } from 'undici'
import { startWarnings } from '../src/banner.js'
import { MAX_LOGGED_PER_CLIENT, RATE_BURST, RateLimit, REPORT_BODY_LIMIT, ReportLog, type Violation } from '../src/report-sink.js'
import { get } from './helpers/http.js'
import { startCliApp, startPlugin } from './helpers/server.js'
import { makeSite } from './helpers/site.js'

const root = makeSite(t)
const SINK = '/.well-known/wasm-serve/reports'
const PAGE = 'https://app.example/index.html'
const IMAGE = 'https://cdn.example/photo.png'

/** A COEP report as Chromium sends it for a subresource without CORP (report-only). */
const corp = (blockedURL: string, destination = 'image') => ({
  type: 'coep', url: PAGE, age: 10, user_agent: 'Chromium', body: { type: 'corp', blockedURL, destination, disposition: 'reporting' },
})

async function post (url: string, body: string, contentType: string | null = 'application/reports+json') {
  const res = await request(url, { method: 'POST', body, headers: contentType === null ? {} : { 'content-type': contentType } })
  return { status: res.statusCode, headers: res.headers, body: await res.body.text() }
}

const warnings = (logs: Array<Record<string, unknown>>) => logs.filter(l => l.level === 40)

t.test('report mode: documents name the sink in Reporting-Endpoints and enforce nothing', async t => {
  const server = await startCliApp(t, { root, crossOriginIsolation: 'report' })
  const page = await get(`${server.url}/`)
  t.equal(page.headers['reporting-endpoints'], `wasm-serve="${SINK}"`)
  t.equal(page.headers['cross-origin-embedder-policy-report-only'], 'require-corp; report-to="wasm-serve"')
  t.equal(page.headers['cross-origin-opener-policy-report-only'], 'same-origin; report-to="wasm-serve"')
  t.equal(page.headers['cross-origin-embedder-policy'], undefined, 'no COEP enforced')
  t.equal(page.headers['cross-origin-opener-policy'], undefined, 'no COOP enforced')
})

t.test('report sink: a batch is answered 204 and each violation logged once with its URL and fix', async t => {
  const server = await startCliApp(t, { root, crossOriginIsolation: 'report' })
  const batch = [
    corp(IMAGE),
    corp(IMAGE), // the same image again in the batch
    { type: 'coop', url: PAGE, age: 5, body: { type: 'navigation-from-response', disposition: 'reporting', effectivePolicy: 'same-origin-plus-coep', nextResponseURL: 'https://login.example/oauth' } },
    { type: 'coep', url: PAGE, age: 5, body: { type: 'worker initialization', blockedURL: 'https://app.example/worker.js', disposition: 'reporting' } },
    { type: 'deprecation', url: PAGE, age: 1, body: { id: 'x', message: 'y' } },
    'not a report',
  ]
  const res = await post(`${server.url}${SINK}`, JSON.stringify(batch))
  t.equal(res.status, 204)
  t.equal(res.body, '')
  const logged = warnings(server.logs)
  t.equal(logged.length, 2, 'the image and the popup; the same-origin worker and the deprecation are not warnings')
  t.match(logged[0], {
    report: 'coep',
    kind: 'corp',
    blockedURL: IMAGE,
    destination: 'image',
    documentURL: PAGE,
    fix: `add Cross-Origin-Resource-Policy: cross-origin to ${IMAGE} on its server, or load it with crossorigin from a server that sends CORS, or use --isolate=credentialless (or document-credentialless)`,
  })
  t.match(logged[0]!.msg, `cross-origin isolation would block the image ${IMAGE}`)
  t.match(logged[1], { report: 'coop', kind: 'navigation-from-response', blockedURL: 'https://login.example/oauth' })
  t.match(logged[1]!.msg, /would sever .*https:\/\/login\.example\/oauth/)
  t.match(logged[1]!.fix, /^use --isolate=document \(Document-Isolation-Policy/)

  t.equal((await post(`${server.url}${SINK}`, JSON.stringify([corp(IMAGE)]))).status, 204)
  t.equal(warnings(server.logs).length, 2, 'a violation already logged is not logged again')
  t.equal((await post(`${server.url}${SINK}`, JSON.stringify([corp(IMAGE, 'script')]))).status, 204)
  t.equal(warnings(server.logs).length, 3, 'the same URL as another destination is another violation')
})

t.test('report sink: a worker script from another origin is a warning, with its fix', async t => {
  const server = await startCliApp(t, { root, crossOriginIsolation: 'report' })
  const worker = 'https://cdn.example/worker.js'
  await post(`${server.url}${SINK}`, JSON.stringify([{ type: 'coep', url: PAGE, age: 0, body: { type: 'worker initialization', blockedURL: worker, disposition: 'reporting' } }]))
  t.match(warnings(server.logs), [{ kind: 'worker initialization', blockedURL: worker, fix: `serve ${worker} with Cross-Origin-Embedder-Policy: require-corp (or credentialless), or serve the worker script from this server` }])
})

t.test('report sink: CSP violations, legacy and Reporting API, name the directive and the fix', async t => {
  const server = await startCliApp(t, { root, crossOriginIsolation: 'report' })
  const legacy = { 'csp-report': { 'document-uri': PAGE, 'blocked-uri': 'wasm-eval', 'effective-directive': 'script-src', 'violated-directive': 'script-src', 'original-policy': "script-src 'self'", disposition: 'report' } }
  t.equal((await post(`${server.url}${SINK}`, JSON.stringify(legacy), 'application/csp-report')).status, 204)
  const modern = [
    { type: 'csp-violation', url: PAGE, age: 0, body: { documentURL: PAGE, blockedURL: 'blob:https://app.example/1234', effectiveDirective: 'worker-src', disposition: 'report' } },
    { type: 'csp-violation', url: PAGE, age: 0, body: { documentURL: PAGE, blockedURL: 'https://cdn.example/lib.js', effectiveDirective: 'script-src-elem', disposition: 'report' } },
  ]
  t.equal((await post(`${server.url}${SINK}`, JSON.stringify(modern), 'application/reports+json; charset=utf-8')).status, 204)
  t.match(warnings(server.logs), [
    { report: 'csp-violation', kind: 'script-src', blockedURL: 'wasm-eval', fix: "add 'wasm-unsafe-eval' to script-src: WebAssembly compilation needs it" },
    { kind: 'worker-src', fix: 'add blob: to worker-src (Emscripten starts pthread workers from blob: URLs)' },
    { kind: 'script-src-elem', fix: 'add https://cdn.example to script-src-elem' },
  ])
})

t.test('report sink: other content types 415, an oversized body 413, a malformed one 400, never a crash', async t => {
  const server = await startCliApp(t, { root, crossOriginIsolation: 'report' })
  const at = `${server.url}${SINK}`
  const ok = JSON.stringify([corp(IMAGE)])
  t.equal((await post(at, ok, 'application/json')).status, 415)
  t.equal((await post(at, ok, 'text/plain')).status, 415)
  t.equal((await post(at, ok, null)).status, 415, 'no content type')
  const huge = await post(at, JSON.stringify([corp(IMAGE + '?' + 'x'.repeat(REPORT_BODY_LIMIT))]))
  t.equal(huge.status, 413)
  t.equal(huge.body, 'Content Too Large\n')
  t.equal((await post(at, '[{"type": "coep",')).status, 400, 'truncated JSON')
  t.equal((await post(at, '')).status, 400, 'an empty body')
  t.equal((await post(at, '{"type":"coep"}')).status, 400, 'a Reporting API body is an array')
  t.equal((await post(at, '[{"__proto__": {"polluted": 1}}]')).status, 400, 'a prototype key')
  t.equal((await post(at, '{"not-a-csp-report": {}}', 'application/csp-report')).status, 400)
  t.equal(({} as Record<string, unknown>).polluted, undefined)
  t.same(warnings(server.logs), [], 'nothing was logged')
  t.equal((await post(at, ok)).status, 204, 'the sink still answers')
})

t.test('report sink: past the burst a client gets 429 with Retry-After', async t => {
  const server = await startCliApp(t, { root, crossOriginIsolation: 'report' })
  const statuses: number[] = []
  for (let i = 0; i <= RATE_BURST; i++) statuses.push((await post(`${server.url}${SINK}`, '[]')).status)
  t.same(statuses.slice(0, RATE_BURST), Array(RATE_BURST).fill(204))
  const limited = await post(`${server.url}${SINK}`, '[]')
  t.equal(limited.status, 429)
  t.equal(limited.headers['retry-after'], '1')
  t.equal((await get(`${server.url}/`)).status, 200, 'the files are not rate limited')
})

t.test('the rate limiter refills over time and tracks a bounded number of clients', async t => {
  const limit = new RateLimit(2, 1, 3)
  t.ok(limit.take('a', 0))
  t.ok(limit.take('a', 0))
  t.notOk(limit.take('a', 0), 'the burst is spent')
  t.ok(limit.take('a', 1000), 'a token a second')
  for (const client of ['b', 'c', 'd', 'e']) limit.take(client, 1000)
  t.equal(limit.clients, 3, 'the least recently seen clients are forgotten')
})

t.test('the report log stops at its bound with one line saying so', async t => {
  const lines: Array<{ level: string, msg: string }> = []
  const logger = { info: () => {}, debug: () => {}, warn: (_o: object, msg: string) => lines.push({ level: 'warn', msg }) }
  const log = new ReportLog(logger, 2)
  const v = (url: string): Violation => ({ type: 'coep', kind: 'corp', blockedURL: url, destination: 'image', documentURL: PAGE, disposition: 'reporting' })
  for (const url of ['https://a.example/1', 'https://a.example/2', 'https://a.example/3', 'https://a.example/4']) log.add(v(url))
  t.equal(lines.length, 3)
  t.match(lines[2]!.msg, '2 distinct reports were logged; later ones are not')
})

t.test('one client cannot use up the log: its share is bounded, and another client\'s report is still logged', async t => {
  const lines: Array<{ msg: string, blockedURL?: string }> = []
  const logger = { info: () => {}, debug: () => {}, warn: (o: { blockedURL?: string }, msg: string) => lines.push({ msg, blockedURL: o.blockedURL }) }
  const log = new ReportLog(logger, 10, 3)
  const v = (url: string): Violation => ({ type: 'coep', kind: 'corp', blockedURL: url, destination: 'image', documentURL: PAGE, disposition: 'reporting' })
  for (let i = 0; i < 20; i++) log.add(v(`https://forged.example/${i}`), '192.0.2.1')
  log.add(v('https://cdn.example/real.png'), '198.51.100.7')
  t.same(lines.filter(l => l.blockedURL?.startsWith('https://forged.example/')).length, 3, 'the flooding client: its share, no more')
  t.match(lines.find(l => l.msg.includes('192.0.2.1'))?.msg, '3 distinct reports were logged from 192.0.2.1; its later ones are not')
  t.ok(lines.some(l => l.blockedURL === 'https://cdn.example/real.png'), 'another client\'s report is logged')
})

t.test('over HTTP: two forged batches of 400 reports from one address log at most its share', async t => {
  const server = await startCliApp(t, { root, crossOriginIsolation: 'report', logLevel: 'warn' })
  const forged = (from: number) => JSON.stringify(Array.from({ length: 400 }, (_, i) => ({ type: 'coep', url: `${server.url}/`, age: 0, user_agent: 'x', body: { type: 'corp', blockedURL: `https://forged.example/${from + i}`, destination: 'image', disposition: 'reporting' } })))
  t.equal((await post(`${server.url}${SINK}`, forged(0))).status, 204)
  t.equal((await post(`${server.url}${SINK}`, forged(400))).status, 204)
  const logged = () => server.logs.filter(l => typeof l.blockedURL === 'string' && l.blockedURL.startsWith('https://forged.example/')).length
  t.equal(logged(), MAX_LOGGED_PER_CLIENT, 'at most its share, and at most 100 reports read from one post')
  t.equal(server.logs.filter(l => String(l.msg).includes('distinct reports were logged; later ones are not')).length, 0, 'the log is not full')
})

t.test('the sink is absent unless the report mode is on; other methods on it get 405 Allow: POST', async t => {
  const isolated = await startCliApp(t, { root, crossOriginIsolation: 'require-corp' })
  const absent = await post(`${isolated.url}${SINK}`, '[]')
  t.equal(absent.status, 405, 'the CLI answers POST on a static path 405 (D17)')
  t.equal(absent.headers.allow, 'GET, HEAD')
  t.equal((await get(`${isolated.url}/`)).headers['reporting-endpoints'], undefined)

  const plugin = await startPlugin(t, { root, prefix: '/static' })
  t.equal((await post(`${plugin.url}/static${SINK}`, '[]')).status, 404, 'the plugin leaves the path to the app')

  const reporting = await startCliApp(t, { root, crossOriginIsolation: 'report' })
  const got = await get(`${reporting.url}${SINK}`)
  t.equal(got.status, 405)
  t.equal(got.headers.allow, 'POST')
  const put = await request(`${reporting.url}${SINK}`, { method: 'PUT', body: '{}', headers: { 'content-type': 'application/json' } })
  await put.body.dump()
  t.equal(put.statusCode, 405, 'before any body is read')
})

t.test('under a prefix the sink is served under it, and Reporting-Endpoints names it there', async t => {
  const server = await startPlugin(t, { root, prefix: '/static', crossOriginIsolation: 'report' }, { logLevel: 'warn' })
  t.equal((await get(`${server.url}/static/`)).headers['reporting-endpoints'], `wasm-serve="/static${SINK}"`)
  t.equal((await post(`${server.url}/static${SINK}`, JSON.stringify([corp(IMAGE)]))).status, 204)
  t.equal((await post(`${server.url}${SINK}`, '[]')).status, 404, 'not outside the prefix')
  t.match(warnings(server.logs), [{ blockedURL: IMAGE }])
})

t.test('the CLI warns that over http Chromium sends the report sink nothing', async t => {
  const base = { label: 'dist', files: 3, hasIndex: true, listing: true, hasBrSiblings: false, network: [] }
  t.match(startWarnings({ ...base, isolation: 'report', tls: false }), [/^--isolate=report: Chromium posts reports only from https:\/\/ pages/])
  t.same(startWarnings({ ...base, isolation: 'report', tls: true }), [])
  t.same(startWarnings({ ...base, isolation: 'require-corp', tls: false }), [])
})
