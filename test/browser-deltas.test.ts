/**
 * Delta updates in a real browser (RFC 9842; docs/delivery.md, "Delta updates"). The real CLI serves
 * release 1 of a site made of the demo page, whose <meta name="wasm-module"> names a hashed module;
 * headless Chromium visits it and keeps the module as a dictionary (its response says
 * Use-As-Dictionary). Then release 2 goes live (a new hashed name, the module slightly changed) and
 * the next visit must get the module as dcz or dcb: Chromium offers release 1's SHA-256 in
 * Available-Dictionary, the body is a fraction of br's, instantiateStreaming compiles it, the
 * loader's progress ends at exactly 100 % of X-Decoded-Content-Length, the new module runs, and the
 * page says "delta from <release 1's module>".
 *
 * Chromium flags: the harness's only (no sandbox, GPU, QUIC or background traffic). Nothing turns
 * dictionaries on: Chrome has had them on by default since 130, headless included (Chromium 156
 * here). Over HTTPS the CLI's self-signed certificate is trusted with
 * --ignore-certificate-errors-spki-list (see trustCertificateOf): with --ignore-certificate-errors
 * alone, the state of a user who clicked through the warning, Chromium 156 stores no dictionary at
 * all (checked by hand: chrome://net-internals/#sharedDictionary stays empty, and no request carries
 * Available-Dictionary).
 *
 * Deltas need a Node that compresses with a dictionary (24; not 20): elsewhere this file is skipped,
 * saying so.
 */
import t, { type Test } from 'tap'
import { createHash } from 'node:crypto'
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { BrowserContext, CDPSession, Page } from 'playwright-core'
import { Agent } from 'undici'
import { dictionarySupport } from '../src/dictionary.js'
import { launch, skipReason, startCli, trustCertificateOf } from './browser/harness.js'
import { ROOT } from './helpers/cli.js'
import { getWith, type Got, type RequestHeaders } from './helpers/http.js'
import { until } from './helpers/poll.js'
import { SQLITE, tempDir } from './helpers/site.js'

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('base64')

/** The SQLite version string in the module's data (what `SELECT sqlite_version()` answers). */
const VERSION = /3\.\d+\.\d+(?=\0)/.exec(SQLITE.toString('latin1'))
/** What an earlier build of the same module differs by: another patch version, and a build id. */
function earlierRelease (): { bytes: Buffer, version: string } {
  const at = VERSION!.index
  const version = VERSION![0].replace(/\d$/, d => String((Number(d) + 9) % 10))
  const bytes = Buffer.from(SQLITE)
  bytes.write(version, at, 'latin1')
  return { bytes: Buffer.concat([bytes, customSection('build-id', 'release 1, built from an older tree')]), version }
}

/** A wasm custom section (id 0): tools add them freely and engines ignore their contents. */
function customSection (name: string, payload: string): Buffer {
  const body = Buffer.concat([Buffer.from([name.length]), Buffer.from(name), Buffer.from(payload)])
  return Buffer.concat([Buffer.from([0, body.length]), body]) // both lengths < 128: one LEB128 byte
}

const OLD = VERSION === null ? undefined : earlierRelease()
const NEW = { bytes: SQLITE, version: VERSION?.[0] ?? '' }
const V1 = 'assets/sqlite3.1a2b3c4d.wasm'
const V2 = 'assets/sqlite3.5e6f7a8b.wasm'

const reason = skipReason() ??
  (dictionarySupport.dcz || dictionarySupport.dcb ? undefined : `Node ${process.version} cannot compress with a dictionary (Node 24 can), so the server makes no deltas`) ??
  (OLD === undefined ? 'no SQLite version string found in sqlite3.wasm to make an earlier release of it' : undefined)

/** A release of the demo site: the demo's files, its page naming `module`, which holds `bytes`. */
function writeRelease (dir: string, module: string, bytes: Buffer): void {
  const page = readFileSync(join(ROOT, 'public/index.html'), 'utf8')
  const named = page.replace('<meta name="wasm-module" content="sqlite3.wasm">', `<meta name="wasm-module" content="${module}">`)
  if (named === page) throw new Error('public/index.html has no <meta name="wasm-module" content="sqlite3.wasm"> to point at a release\'s module')
  mkdirSync(join(dir, 'assets'), { recursive: true })
  for (const file of ['demo.js', 'demo.css', 'loader.js']) writeFileSync(join(dir, file), readFileSync(join(ROOT, 'public', file)))
  writeFileSync(join(dir, module), bytes)
  // The page last, renamed into place as a deploy does: it never names a module not yet there.
  writeFileSync(join(dir, '.index.html.tmp'), named)
  renameSync(join(dir, '.index.html.tmp'), join(dir, 'index.html'))
}

/** HTTP requests to the server from the test itself (polling, warming up), trusting its certificate. */
function client (t: Test, base: string): (path: string, headers?: RequestHeaders) => Promise<Got> {
  const dispatcher = new Agent({ connect: { rejectUnauthorized: false } })
  t.teardown(() => dispatcher.close())
  return (path, headers = {}) => getWith(base + path, { headers, dispatcher })
}

interface Exchange {
  url: string
  request?: Record<string, string>
  response?: Record<string, string>
  status?: number
  /** Bytes Chromium received for it, headers included (Network.loadingFinished). */
  received?: number
}

/** What Chromium sent and got, by request, from its own network stack (CDP), and the issues it raised. */
async function recordNetwork (context: BrowserContext, page: Page): Promise<{ exchanges: Map<string, Exchange>, issues: unknown[] }> {
  const cdp: CDPSession = await context.newCDPSession(page)
  const exchanges = new Map<string, Exchange>()
  const issues: unknown[] = []
  const of = (id: string) => exchanges.get(id) ?? exchanges.set(id, { url: '' }).get(id)!
  const lower = (h: Record<string, string>) => Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), v]))
  cdp.on('Network.requestWillBeSent', e => { of(e.requestId).url = e.request.url })
  cdp.on('Network.requestWillBeSentExtraInfo', e => { of(e.requestId).request = lower(e.headers as Record<string, string>) })
  cdp.on('Network.responseReceivedExtraInfo', e => { Object.assign(of(e.requestId), { response: lower(e.headers as Record<string, string>), status: e.statusCode }) })
  cdp.on('Network.loadingFinished', e => { of(e.requestId).received = e.encodedDataLength })
  cdp.on('Audits.issueAdded', e => issues.push(e.issue))
  await cdp.send('Network.enable')
  await cdp.send('Audits.enable')
  return { exchanges, issues }
}

/** The finished exchange for `path`: its events arrive on their own channel, maybe after the page is done. */
async function exchangeFor (exchanges: Map<string, Exchange>, path: string): Promise<Exchange> {
  return until(() => [...exchanges.values()].find(x => x.url !== '' && new URL(x.url).pathname === path && x.request !== undefined && x.response !== undefined && x.received !== undefined),
    { timeout: 10_000, what: `Chromium's request for ${path} to finish` })
}

interface DemoState {
  state: string
  error?: string
  maxPercent: number
  progress: Array<{ loaded: number, total?: number, done: boolean }>
  result?: {
    encoding?: string
    streamed: boolean
    encodedSize?: number
    cache?: string
    delta?: { coding: string, fresh: boolean, from?: string, fromVersion?: string, dictionary?: string, encoded?: number, decoded: number, saved?: number }
  }
  sql?: string[]
  sha256?: string
}

async function visit (page: Page, url: string): Promise<DemoState> {
  await page.goto(url)
  await page.waitForFunction(() => (window as any).wasmDemo?.state !== 'loading', null, { timeout: 30_000 })
  return page.evaluate(() => {
    const d = (window as any).wasmDemo
    return { state: d.state, error: d.error, maxPercent: d.maxPercent, progress: d.progress, result: d.result, sql: d.sql, sha256: d.sha256 }
  })
}

/** How the second release goes live, and what the server is started with. */
interface Variant {
  name: string
  https: boolean
  /** Starts serving release 1; `next` puts release 2 live and returns the base URL it is served at. */
  start: (t: Test) => Promise<{ url: string, next: () => Promise<string> }>
}

const VARIANTS: Variant[] = [
  {
    name: 'http://localhost, a deploy that keeps release 1\'s files in the root',
    https: false,
    start: inPlace([]),
  },
  {
    name: 'https://localhost (--https, HTTP/2), a deploy that keeps release 1\'s files in the root',
    https: true,
    start: inPlace(['--https']),
  },
  {
    name: 'http://localhost, restarted on release 2 with release 1 as --dictionaries',
    https: false,
    async start (t) {
      const one = tempDir(t, 'release-1')
      const two = tempDir(t, 'release-2')
      writeRelease(one, V1, OLD!.bytes)
      writeRelease(two, V2, NEW.bytes)
      const first = await startCli(t, one)
      return {
        url: first.url,
        async next () {
          await first.stop()
          // The same port: a browser keeps dictionaries per origin.
          const second = await startCli(t, two, ['--port', new URL(first.url).port, '--dictionaries', one])
          t.teardown(second.stop)
          t.equal(second.url, first.url, 'release 2 is served at the same origin')
          return second.url
        },
      }
    },
  },
]

/** One root; release 2 is written into it while the server runs (D16), release 1's module left there. */
function inPlace (flags: string[]): Variant['start'] {
  return async t => {
    const root = tempDir(t, 'deploy')
    writeRelease(root, V1, OLD!.bytes)
    const server = await startCli(t, root, flags)
    t.teardown(server.stop)
    return { url: server.url, next: async () => { writeRelease(root, V2, NEW.bytes); return server.url } }
  }
}

function run () {
  for (const variant of VARIANTS) {
    t.test(`a returning visitor gets release 2's module as a delta from release 1: ${variant.name}`, async t => {
      const { url, next } = await variant.start(t)
      const context = await launch(t, variant.https ? [await trustCertificateOf(url)] : [])
      const page = await context.newPage()
      t.teardown(() => page.close())
      const { exchanges, issues } = await recordNetwork(context, page)
      // localhost, not 127.0.0.1: both are secure contexts, and localhost is what a developer types.
      const origin = url.replace('127.0.0.1', 'localhost')

      // Release 1, once br is ready (what a module is sent as without a dictionary).
      const http = client(t, url)
      await until(async () => (await http(`/${V1}`, { 'accept-encoding': 'br' })).headers['content-encoding'] === 'br', { timeout: 20_000, what: `${V1} in br` })
      const first = await visit(page, origin + '/')
      t.equal(first.state, 'ready', first.error ?? 'release 1 loads')
      t.equal(first.result?.encoding, 'br')
      t.equal(first.sql?.[0], OLD!.version, 'release 1 runs')
      t.equal(first.sha256, sha256(OLD!.bytes), 'the page hashed release 1 as the server has it')
      const one = await exchangeFor(exchanges, `/${V1}`)
      t.equal(one.request?.['available-dictionary'], undefined, 'a fresh profile has no dictionary to offer')
      t.equal(one.response?.['use-as-dictionary'], 'match="/assets/sqlite3.*.wasm"', 'release 1 is announced as a dictionary')
      t.match(one.response?.['cache-control'], /max-age=[1-9]/, 'in a response Chromium may keep (a dictionary lives as long as its freshness)')
      const aboutModule = (issue: unknown) => JSON.stringify(issue).includes('/assets/')
      t.same(issues.filter(aboutModule), [], 'Chromium raised no issue about the module (a dictionary it refuses to store is reported as one)')

      // Release 2 goes live; the server makes the delta on the first request naming release 1, so
      // ask for it the way Chromium will, until it is made.
      const base = await next()
      const http2 = client(t, base)
      await until(async () => (await http2('/')).body.includes(V2), { timeout: 10_000, what: 'release 2\'s page' })
      await until(async () => (await http2(`/${V2}`, { 'accept-encoding': 'br' })).headers['content-encoding'] === 'br', { timeout: 20_000, what: `${V2} in br` })
      const offer = { 'accept-encoding': 'gzip, deflate, br, zstd, dcb, dcz', 'available-dictionary': `:${sha256(OLD!.bytes)}:` }
      let warm: Got | undefined
      await until(async () => { warm = await http2(`/${V2}`, offer); return /^dc[zb]$/.test(warm.headers['content-encoding'] ?? '') }, { timeout: 30_000, what: 'the server to answer with a delta' })
      const br = await http2(`/${V2}`, { 'accept-encoding': 'br' })

      const second = await visit(page, origin + '/')
      t.equal(second.state, 'ready', second.error ?? 'release 2 loads')
      const two = await exchangeFor(exchanges, `/${V2}`)
      t.equal(two.request?.['available-dictionary'], `:${sha256(OLD!.bytes)}:`, 'Chromium offered release 1 (its SHA-256) as the dictionary')
      t.match(two.request?.['accept-encoding'], /\bdcb\b/, 'and accepted dcb')
      t.match(two.request?.['accept-encoding'], /\bdcz\b/, 'and dcz')
      if (variant.https) t.ok(two.request?.[':authority'] !== undefined, 'over HTTP/2')
      const coding = warm!.headers['content-encoding']!
      t.equal(two.response?.['content-encoding'], coding, `the module came as ${coding}`)
      t.equal(second.result?.encoding, coding, 'and the page saw it so')
      const body = Number(two.response?.['content-length'])
      t.equal(second.result?.encodedSize, body, 'Resource Timing counts the Content-Length on the wire')
      t.ok(body * 4 < br.body.length, `a fraction of br's bytes: ${body} B against ${br.body.length} B`)
      t.equal(second.result?.streamed, true, 'instantiateStreaming compiled it')
      t.equal(second.sql?.[0], NEW.version, 'release 2 runs')
      t.equal(second.sha256, sha256(NEW.bytes), 'decoded, it is release 2 byte for byte (same SHA-256)')
      const decoded = NEW.bytes.length
      t.same(second.progress.at(-1), { loaded: decoded, total: decoded, done: true }, 'progress ends at the decoded size')
      t.ok(second.progress.some(p => !p.done && p.total === decoded), 'with X-Decoded-Content-Length as the total while downloading')
      t.ok(second.progress.every(p => p.total === undefined || p.loaded <= p.total), 'never above the total')
      t.equal(second.maxPercent, 100, 'the bar reached exactly 100 %')
      // The page draws its bar on the next animation frame: wait for it rather than read it at once.
      const drawn = await page.waitForFunction(() => document.querySelector('#progress-pct')?.textContent?.trim() === '100 %', null, { timeout: 5000 }).then(() => true, () => false)
      t.ok(drawn, 'the page shows 100 %', { shown: await page.textContent('#progress-pct') })

      t.same(second.result?.delta, { coding, fresh: true, from: 'sqlite3.1a2b3c4d.wasm', fromVersion: OLD!.version, dictionary: sha256(OLD!.bytes), encoded: body, decoded, saved: decoded - body })
      t.equal(await page.isVisible('#delta'), true, 'the page shows the delta')
      t.equal(await page.textContent('#delta-from'), `delta from sqlite3.1a2b3c4d.wasm (SQLite ${OLD!.version})`)
      t.match(await page.textContent('#delta-saving'), /^[\d.]+ K?B instead of \d+ KB: \d+ KB saved \(99\.\d\d % smaller than the module\)$/)
      t.match(await page.textContent('#delta-dictionary'), sha256(OLD!.bytes), 'naming the dictionary by its hash')
      t.comment(`Chromium sent Accept-Encoding "${two.request?.['accept-encoding']}" and Available-Dictionary ${two.request?.['available-dictionary']}; ` +
        `release 2's module came as ${two.response?.['content-encoding'] ?? 'identity'}: ${body} B body, ${two.received} B received in all, against ${br.body.length} B in br and ${decoded} B decoded`)

      // Once more: the module is immutable, so it comes from the HTTP cache, still labelled dcz.
      const third = await visit(page, origin + '/')
      t.equal(third.state, 'ready', third.error ?? 'release 2 loads from the cache')
      t.equal(third.result?.cache, 'cache', 'no request for the module')
      t.equal(third.sha256, sha256(NEW.bytes))
      t.match(third.result?.delta, { coding, fresh: false, from: 'sqlite3.1a2b3c4d.wasm' })
      t.equal(await page.textContent('#delta-from'), `from the HTTP cache: it arrived as a delta from sqlite3.1a2b3c4d.wasm (SQLite ${OLD!.version})`)

      const others = issues.filter(issue => !aboutModule(issue)).map(issue => JSON.stringify(issue))
      if (others.length > 0) t.comment(`other issues Chromium raised: ${others.join('; ')}`)
    })
  }
}

if (reason) {
  console.log(`# skipping browser delta tests: ${reason}`)
  t.plan(0, reason)
} else {
  run()
}
