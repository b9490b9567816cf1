/**
 * End-to-end for `--isolate=report` (D12): a real Chromium loads a page from the CLI that embeds an
 * image from a second server on another origin (another port) that sends no CORP, starts a worker
 * and opens a cross-origin popup. Report-only enforces nothing, so the image loads; the reports
 * Chromium posts to the built-in sink come out of the CLI's JSON log as one warning each, with the
 * URL and the fix. `--short-reporting-delay` makes Chromium post within 100 ms instead of a minute.
 * Both servers speak HTTPS with the same development certificate, which Chromium is told to trust.
 */
import t from 'tap'
import { launch, trustCertificateOf, whenBrowser } from './browser/harness.js'
import { serveCli } from './helpers/cli.js'
import { until } from './helpers/poll.js'
import { makeSite } from './helpers/site.js'

const SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="30"><rect width="40" height="30" fill="teal"/></svg>\n'

await whenBrowser(t, run)

/** The CLI's JSON log lines so far (stdout also has its serving line, which is not JSON). */
function records (stdout: string): Array<Record<string, unknown>> {
  return stdout.split('\n').flatMap(line => {
    if (!line.startsWith('{')) return []
    try { return [JSON.parse(line) as Record<string, unknown>] } catch { return [] }
  })
}

async function run (): Promise<void> {
  t.test('--isolate=report: a cross-origin image without CORP still loads, and its report is logged with the fix', async t => {
    const images = makeSite(t, { 'photo.svg': SVG, 'popup.html': '<!doctype html><title>popup</title>' })
    // The other origin: a plain wasm-serve, which sends no Cross-Origin-Resource-Policy without --isolate.
    // HTTPS, as the page must be: Chromium keeps no report endpoint of an http: page (the endpoint
    // must be https, net/reporting/reporting_header_parser.cc), and upgrades an http: image on it.
    const other = await serveCli(t, [images, '--port', '0', '--quiet', '--https'])
    const image = `${other.url}/photo.svg`
    const popup = `${other.url}/popup.html`
    const page = `<!doctype html><title>threads</title>
<img id="photo" src="${image}">
<script>
  window.worker = new Worker('worker.js')
  window.worker.onmessage = e => { window.workerSaid = e.data }
</script>\n`
    const site = makeSite(t, { 'index.html': page, 'worker.js': 'postMessage("ready")\n' })
    const server = await serveCli(t, [site, '--port', '0', '--isolate=report', '--https', '--log-format', 'json', '--log-level', 'debug'])
    const context = await launch(t, ['--short-reporting-delay', await trustCertificateOf(server.url)])
    const tab = await context.newPage()
    await tab.goto(server.url + '/')
    await tab.waitForFunction(() => (document.getElementById('photo') as HTMLImageElement).complete)
    t.equal(await tab.evaluate(() => (document.getElementById('photo') as HTMLImageElement).naturalWidth), 40, 'report-only blocks nothing: the image loaded')
    t.equal(await tab.evaluate(() => crossOriginIsolated), false, 'and the page is not isolated')
    await tab.waitForFunction(() => (window as unknown as { workerSaid?: string }).workerSaid === 'ready')
    // A cross-origin popup: COOP same-origin would put it in another browsing context group.
    const opened = context.waitForEvent('page')
    await tab.evaluate(url => { (window as unknown as { popup: Window | null }).popup = window.open(url) }, popup)
    await (await opened).waitForLoadState()

    const logs = () => records(server.out.stdout)
    const corp = await until(() => logs().find(r => r.level === 40 && r.blockedURL === image), {
      timeout: 20_000, what: () => `the image's report in the log\n${server.out.stdout}`,
    })
    t.match(corp, { report: 'coep', kind: 'corp', destination: 'image', documentURL: `${server.url}/` })
    t.equal(corp.fix, `add Cross-Origin-Resource-Policy: cross-origin to ${image} on its server, or load it with crossorigin from a server that sends CORS, or use --isolate=credentialless (or document-credentialless)`)
    t.match(corp.msg, `cross-origin isolation would block the image ${image}`)
    t.ok(logs().some(r => r.msg === 'request' && r.method === 'POST' && r.url === '/.well-known/wasm-serve/reports' && r.status === 204), 'Chromium posted to the sink and got 204')

    const coop = await until(() => logs().find(r => r.level === 40 && r.report === 'coop'), {
      timeout: 20_000, what: () => `the popup's COOP report in the log\n${server.out.stdout}`,
    })
    t.match(coop, { blockedURL: popup })
    t.match(coop.msg, 'would sever the link between this page and the other window')
    t.match(coop.fix, /^use --isolate=document /)

    // Chromium reports every dedicated worker of a report-only page (its script enforces no COEP);
    // this one is served here, so --isolate would send COEP on it: noted, not warned.
    const worker = await until(() => logs().find(r => r.kind === 'worker initialization'), {
      timeout: 20_000, what: () => `the worker's report in the log\n${server.out.stdout}`,
    })
    t.match(worker, { level: 20, blockedURL: `${server.url}/worker.js` })
    t.equal(logs().filter(r => r.level === 40 && r.blockedURL === image).length, 1, 'the image is logged once')
  })
}
