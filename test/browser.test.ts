/**
 * End-to-end: the real CLI serving the demo (public/) to a real headless Chromium, driven by
 * playwright-core. Skipped, with the reason printed, when Chromium or the build is missing.
 */
import t from 'tap'
import type { Page, Request } from 'playwright-core'
import { launch, startCli, waitForEncoding, whenBrowser } from './browser/harness.js'
import { until } from './helpers/poll.js'
import { SQLITE } from './helpers/site.js'

const SQLITE_SIZE = SQLITE.length
await whenBrowser(t, run)

interface DemoState {
  state: string
  error?: string
  maxPercent: number
  progress: Array<{ loaded: number, total?: number, done: boolean }>
  result?: { encoding?: string, decodedSize: number, total?: number, streamed: boolean, cache?: string, exports: number }
  sql?: string[]
}

async function demoOutcome (page: Page): Promise<DemoState> {
  await page.waitForFunction(() => (window as any).wasmDemo?.state !== 'loading', null, { timeout: 30_000 })
  return page.evaluate(() => {
    const d = (window as any).wasmDemo
    return { state: d.state, error: d.error, maxPercent: d.maxPercent, progress: d.progress, result: d.result, sql: d.sql }
  })
}

/** Loads a module with the loader from inside the page and reports what happened. */
async function loadInPage (page: Page, url: string) {
  return page.evaluate(async (url) => {
    const { loadWasm } = await import('/loader.js' as string)
    const events: Array<{ loaded: number, total?: number, done: boolean }> = []
    try {
      const r = await loadWasm(url, (m: WebAssembly.Module) => {
        const imports: Record<string, Record<string, unknown>> = {}
        for (const d of WebAssembly.Module.imports(m)) {
          imports[d.module] ??= {}
          imports[d.module][d.name] = d.kind === 'memory' ? new WebAssembly.Memory({ initial: 256, maximum: 32768 }) : () => 0
        }
        return imports
      }, { onProgress: (p: any) => events.push(p), retries: 0 })
      return { ok: true as const, encoding: r.encoding, streamed: r.streamed, decodedSize: r.decodedSize, exports: Object.keys(r.instance.exports).length, last: events.at(-1), over: events.some(e => e.total !== undefined && e.loaded > e.total) }
    } catch (err: any) {
      return { ok: false as const, name: err.name, message: String(err.message), status: err.status }
    }
  }, url)
}

/**
 * The page's requests for /sqlite3.wasm from now on. The page can hold its module before the events
 * for the request that brought it arrive (they come over another channel): `sizes` waits until every
 * request seen has finished, then gives the body bytes each one took over the network (-1: failed).
 */
function watchModule (page: Page): { sizes: () => Promise<number[]> } {
  const sizeOf = new Map<Request, Promise<number> | undefined>()
  page.on('request', r => { if (new URL(r.url()).pathname === '/sqlite3.wasm') sizeOf.set(r, undefined) })
  page.on('requestfinished', r => { if (sizeOf.has(r)) sizeOf.set(r, r.sizes().then(s => s.responseBodySize)) })
  page.on('requestfailed', r => { if (sizeOf.has(r)) sizeOf.set(r, Promise.resolve(-1)) })
  return {
    async sizes () {
      await until(() => [...sizeOf.values()].every(size => size !== undefined), { what: 'every request for the module to finish' })
      return Promise.all(sizeOf.values() as Iterable<Promise<number>>)
    },
  }
}

async function run () {
  const context = await launch(t)

  t.test('the demo streams sqlite3.wasm through br and its progress ends at exactly the decoded size', async t => {
    const server = await startCli(t, 'public')
    t.teardown(server.stop)
    await waitForEncoding(server.url, '/sqlite3.wasm', 'br')
    const page = await context.newPage()
    t.teardown(() => page.close())
    await page.goto(server.url + '/')
    const demo = await demoOutcome(page)
    t.equal(demo.state, 'ready', demo.error ?? 'loaded')
    t.equal(demo.result?.encoding, 'br')
    t.equal(demo.result?.streamed, true)
    t.equal(demo.result?.exports, 252)
    t.same(demo.progress.at(-1), { loaded: SQLITE_SIZE, total: SQLITE_SIZE, done: true })
    t.ok(demo.progress.every(p => p.total === undefined || p.loaded <= p.total), 'never above the total')
    t.ok(demo.maxPercent <= 100 && demo.maxPercent === 100, 'the page showed at most (and finally) 100 %')
    t.equal(demo.sql?.[1], '42', 'the instance runs SQL')
    // The page draws its bar on the next animation frame: wait for it rather than read it at once.
    const drawn = await page.waitForFunction(() => document.querySelector('#progress-pct')?.textContent?.trim() === '100 %', null, { timeout: 5000 }).then(() => true, () => false)
    t.ok(drawn, 'the page shows 100 %', { shown: await page.textContent('#progress-pct') })
  })

  for (const encoding of ['gzip', 'identity']) {
    t.test(`streaming compile and instantiate succeed through ${encoding}`, async t => {
      const server = await startCli(t, 'public')
      t.teardown(server.stop)
      await waitForEncoding(server.url, '/sqlite3.wasm', encoding)
      const page = await context.newPage()
      t.teardown(() => page.close())
      await page.goto(server.url + '/loader.js')
      await page.setExtraHTTPHeaders({ 'accept-encoding': encoding })
      const r = await loadInPage(page, `/sqlite3.wasm?${encoding}`)
      t.equal(r.ok, true, r.ok ? 'loaded' : r.message)
      if (!r.ok) return
      t.equal(r.encoding, encoding, `got ${r.encoding}`)
      t.equal(r.streamed, true)
      t.equal(r.exports, 252)
      t.same(r.last, { loaded: SQLITE_SIZE, total: SQLITE_SIZE, done: true })
      t.equal(r.over, false)
    })
  }

  t.test('cross-origin isolation: on with --isolate, off without', async t => {
    for (const [flags, expected] of [[['--isolate'], true], [[], false]] as const) {
      const server = await startCli(t, 'public', [...flags])
      const page = await context.newPage()
      await page.goto(server.url + '/')
      const seen = await page.evaluate(() => ({ coi: crossOriginIsolated, sab: typeof SharedArrayBuffer === 'function' }))
      const demo = await demoOutcome(page)
      t.same(seen, { coi: expected, sab: expected }, `${flags.join(' ') || 'no flags'}`)
      t.equal(demo.state, 'ready', 'the module still loads')
      await page.close()
      await server.stop()
    }
  })

  t.test('a module named in a preload Link header is fetched exactly once', async t => {
    const server = await startCli(t, 'public', ['--preload', '/sqlite3.wasm'])
    t.teardown(server.stop)
    const page = await context.newPage()
    t.teardown(() => page.close())
    const moduleRequests = watchModule(page)
    const response = await page.goto(server.url + '/')
    t.match(response?.headers().link ?? '', /<\/sqlite3\.wasm>; rel=preload; as=fetch; crossorigin/)
    const demo = await demoOutcome(page)
    t.equal(demo.state, 'ready')
    t.equal((await moduleRequests.sizes()).length, 1, 'one network request for the module')
  })

  t.test('a second visit gets the module from the HTTP cache or a 304, never a full 200', async t => {
    const server = await startCli(t, 'public')
    t.teardown(server.stop)
    const page = await context.newPage()
    t.teardown(() => page.close())
    await page.goto(server.url + '/')
    t.equal((await demoOutcome(page)).result?.cache, 'network', 'first visit downloads it')
    // Chrome reports a revalidated response as a 200 to the page: count the body bytes that came
    // over the network instead (0 for a 304 or a cache hit, ~340 KB for a full download).
    const moduleRequests = watchModule(page)
    await page.reload()
    const second = await demoOutcome(page)
    t.equal(second.state, 'ready')
    t.ok(['revalidated', 'cache'].includes(second.result?.cache ?? ''), `second visit: ${second.result?.cache}`)
    const sizes = await moduleRequests.sizes()
    t.ok(sizes.every(n => n === 0), `no module bytes over the network on the second visit (bodies: ${sizes.join(', ') || 'no request: served from the browser cache'})`)
  })

  t.test('a missing module gives the loader a clear error, not an HTML page compiled as wasm', async t => {
    for (const flags of [[], ['--spa']]) {
      const server = await startCli(t, 'public', flags)
      const page = await context.newPage()
      await page.goto(server.url + '/loader.js')
      const r = await loadInPage(page, '/missing.wasm')
      t.equal(r.ok, false)
      if (!r.ok) {
        t.equal(r.name, 'WasmLoadError', flags.join(' ') || 'no flags')
        t.equal(r.status, 404)
        t.match(r.message, /missing\.wasm.*HTTP 404/)
      }
      await page.close()
      await server.stop()
    }
  })
}
