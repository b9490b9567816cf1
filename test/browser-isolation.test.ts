/**
 * D12 end to end: the real CLI with --isolate=document (Document-Isolation-Policy) serving a page of
 * our own that needs threads, next to a second server on another origin with a popup and an image,
 * all in a real headless Chromium. Under DIP the page is cross-origin isolated and runs a threaded
 * wasm module in itself and two workers over one shared memory, while a cross-origin popup keeps
 * its opener; under COOP same-origin (--isolate) the same popup loses it, which proves the popup
 * check can fail. Skipped, with the reason printed, when Chromium or the build is missing.
 */
import t, { type Test } from 'tap'
import type { BrowserContext, Page } from 'playwright-core'
import { launch, startCli, whenBrowser } from './browser/harness.js'
import { ATOMIC_ADD_WASM } from './browser/threads.js'
import { makeSite } from './helpers/site.js'

/** 1×1 transparent GIF. */
const PIXEL = Buffer.from('R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7', 'base64')

/** Atomic adds each of the page and its two workers makes to the one shared counter. */
const N = 200_000

/** The page that needs threads: it compiles add.wasm, shares one memory with two workers and adds from all three. */
const THREADS_SITE = {
  'index.html': '<!doctype html><title>threads</title><script type="module" src="main.js"></script>\n',
  'main.js': `
window.messages = []
addEventListener('message', e => window.messages.push({ origin: e.origin, data: e.data }))

/** Adds n from the page and from two workers on one shared memory; resolves with the counter. */
window.threads = async n => {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true })
  const module = await WebAssembly.compileStreaming(fetch('add.wasm'))
  const done = [0, 1].map(() => new Promise((resolve, reject) => {
    const worker = new Worker('worker.js')
    worker.onmessage = e => resolve(e.data)
    worker.onerror = e => reject(new Error(e.message))
    worker.postMessage({ module, memory, n })
  }))
  const instance = await WebAssembly.instantiate(module, { env: { memory } })
  instance.exports.add(n)
  const workers = await Promise.all(done)
  return { workers, total: new Int32Array(memory.buffer)[0] }
}

/** Whether an <img> of url loads or is blocked. */
window.loadImage = url => new Promise(resolve => {
  const img = new Image()
  img.onload = () => resolve('load')
  img.onerror = () => resolve('error')
  img.src = url
})
`,
  'worker.js': `
onmessage = async ({ data: { module, memory, n } }) => {
  const instance = await WebAssembly.instantiate(module, { env: { memory } })
  instance.exports.add(n)
  postMessage({ crossOriginIsolated: self.crossOriginIsolated, added: n })
}
`,
  'add.wasm': ATOMIC_ADD_WASM,
  'pixel.gif': PIXEL,
}

/** The other origin: a popup that greets its opener (if it still has one) and an image without CORP. */
const OTHER_SITE = {
  'index.html': '<!doctype html><title>other</title>\n',
  'popup.html': '<!doctype html><title>popup</title><script>window.opener?.postMessage("hello from the popup", "*")</script>\n',
  'pixel.gif': PIXEL,
}

await whenBrowser(t, run)

/**
 * The CLI on the threads site with `flags`, and a page of it opened in `context`. The CLI is killed
 * when `t` ends (runCli's teardown), not stopped: a clean stop waits up to its grace period for the
 * idle connections Chromium keeps open, and stopping is not what is tested here.
 */
async function openThreadsPage (t: Test, context: BrowserContext, flags: string[]): Promise<Page> {
  const server = await startCli(t, makeSite(t, THREADS_SITE), flags)
  const page = await context.newPage()
  t.teardown(() => page.close())
  await page.goto(server.url + '/')
  await page.waitForFunction(() => typeof (window as any).threads === 'function')
  return page
}

/** Opens `url` as a popup of `page`; resolves with the popup's page once it has loaded. */
async function openPopup (context: BrowserContext, page: Page, url: string): Promise<Page> {
  const [popup] = await Promise.all([
    context.waitForEvent('page'),
    page.evaluate(url => { window.open(url, '_blank') }, url),
  ])
  await popup.waitForLoadState('load')
  return popup
}

/** What the demo page concluded about its isolation (public/demo.js), once it has. */
async function demoIsolation (page: Page): Promise<{ asked: string | null, isolated: boolean, reason: string | null }> {
  await page.waitForFunction(() => (window as any).wasmDemo?.isolation !== undefined, null, { timeout: 10_000 })
  return page.evaluate(() => (window as any).wasmDemo.isolation)
}

async function run () {
  const context = await launch(t)
  // Another origin, and another site: the page is served from 127.0.0.1, the popup from localhost.
  const other = await startCli(t, makeSite(t, OTHER_SITE))
  const otherOrigin = other.url.replace('127.0.0.1', 'localhost')

  for (const [mode, image] of [['document', 'error'], ['document-credentialless', 'load']] as const) {
    t.test(`--isolate=${mode}`, async t => {
      const page = await openThreadsPage(t, context, [`--isolate=${mode}`])

      t.test('the page is cross-origin isolated and runs a threaded wasm module over a shared memory', async t => {
        t.same(await page.evaluate(() => ({ coi: crossOriginIsolated, sab: typeof SharedArrayBuffer })), { coi: true, sab: 'function' }, 'crossOriginIsolated, SharedArrayBuffer')
        const threads = await page.evaluate(n => (window as any).threads(n), N)
        t.same(threads, { workers: [{ crossOriginIsolated: true, added: N }, { crossOriginIsolated: true, added: N }], total: 3 * N }, 'page and two workers add atomically to one shared memory')
      })

      t.test('a cross-origin popup keeps its opener and can post a message back', async t => {
        const popup = await openPopup(context, page, `${otherOrigin}/popup.html`)
        t.teardown(() => popup.close())
        t.equal(await popup.evaluate(() => window.opener !== null), true, 'the popup has its opener')
        await page.waitForFunction(() => (window as any).messages.length > 0, null, { timeout: 10_000 })
        t.same(await page.evaluate(() => (window as any).messages), [{ origin: otherOrigin, data: 'hello from the popup' }], 'its message arrived')
      })

      t.test(`a cross-origin image without CORP: ${image === 'error' ? 'blocked (require-corp)' : 'loaded without credentials'}`, async t => {
        t.equal(await page.evaluate(url => (window as any).loadImage(url), `${otherOrigin}/pixel.gif`), image, 'the other origin\'s image')
        t.equal(await page.evaluate(() => (window as any).loadImage('/pixel.gif')), 'load', 'the same image from the page\'s own origin')
      })
    })
  }

  t.test('the demo page says it is isolated, and by what', async t => {
    for (const [flags, asked] of [[['--isolate=document'], 'Document-Isolation-Policy'], [['--isolate'], 'COOP + COEP']] as const) {
      const server = await startCli(t, 'public', [...flags])
      const page = await context.newPage()
      t.teardown(() => page.close())
      await page.goto(server.url + '/')
      t.same(await demoIsolation(page), { asked, isolated: true, reason: null }, flags.join(' '))
      t.match(await page.textContent('#env-note'), `isolated by ${asked}`)
    }
  })

  t.test('the demo page says why isolation asked for is off: plain HTTP to a non-loopback name, a browser without Document-Isolation-Policy', async t => {
    // demo.test resolves to the server, but a page from it over http is not a secure context; and a
    // Chromium with DocumentIsolationPolicy turned off stands for a browser that lacks it.
    const bare = await launch(t, ['--host-resolver-rules=MAP demo.test 127.0.0.1', '--disable-features=DocumentIsolationPolicy'])
    const server = await startCli(t, 'public', ['--isolate=document'])
    const insecure = await bare.newPage()
    await insecure.goto(server.url.replace('127.0.0.1', 'demo.test') + '/')
    const lan = await demoIsolation(insecure)
    t.same({ ...lan, reason: undefined }, { asked: 'Document-Isolation-Policy', isolated: false, reason: undefined }, 'asked for, not isolated')
    t.match(lan.reason, new RegExp(`^not a secure context \\(plain HTTP to demo\\.test\\).*--https, or open the page as http://localhost:${new URL(server.url).port} `), 'over plain HTTP to a LAN name: not a secure context, and the fix')
    t.match(await insecure.textContent('#env-note'), 'Isolation was asked for (Document-Isolation-Policy) but is off: not a secure context')

    const local = await bare.newPage()
    await local.goto(server.url + '/')
    const unsupported = await demoIsolation(local)
    t.equal(unsupported.isolated, false)
    t.match(unsupported.reason, /^this browser does not support Document-Isolation-Policy \(Chromium 137\+/, 'a secure context, but no DIP: the browser is why')
  })

  t.test('contrast: under --isolate (COOP same-origin) the same cross-origin popup loses its opener', async t => {
    const page = await openThreadsPage(t, context, ['--isolate'])
    t.equal(await page.evaluate(() => crossOriginIsolated), true, 'isolated by COOP and COEP')
    const popup = await openPopup(context, page, `${otherOrigin}/popup.html`)
    t.teardown(() => popup.close())
    t.equal(await popup.evaluate(() => window.opener), null, 'COOP same-origin severs the opener')
  })
}
