/**
 * D19 end-to-end: the real CLI with --secure and a real Chromium. A page under the preset's
 * Content-Security-Policy compiles a module (instantiateStreaming, compile, in a worker started from
 * a URL and in one started from a blob:), and its inline script runs, allowed by its hash. The same
 * page under a policy without 'wasm-unsafe-eval' gets the CompileError users see. Skipped, with the
 * reason printed, when Chromium or the build is missing.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import type { BrowserContext } from 'playwright-core'
import { launch, startCli, whenBrowser } from './browser/harness.js'
import { serveCli } from './helpers/cli.js'
import { until } from './helpers/poll.js'
import { TINY, makeSite, tempDir } from './helpers/site.js'

/** A worker that compiles the module at the URL it is sent and answers "ok" or the error. */
const WORKER = `onmessage = async e => {
  try { await WebAssembly.compile(await (await fetch(e.data)).arrayBuffer()); postMessage('ok') } catch (err) { postMessage(err.name + ': ' + err.message) }
}
`

/** Each way a page gets a module, with "ok" or the error it met. */
const MAIN = `const outcome = async run => { try { await run(); return 'ok' } catch (err) { return err.name + ': ' + err.message } }
const inWorker = worker => new Promise(resolve => {
  worker.onmessage = e => resolve(e.data)
  worker.onerror = e => { e.preventDefault(); resolve('worker error: ' + e.message) }
  worker.postMessage(new URL('tiny.wasm', location.href).href)
})
window.result = (async () => ({
  inline: window.inlineRan === true,
  instantiateStreaming: await outcome(() => WebAssembly.instantiateStreaming(fetch('tiny.wasm'))),
  compile: await outcome(async () => WebAssembly.compile(await (await fetch('tiny.wasm')).arrayBuffer())),
  urlWorker: await inWorker(new Worker('worker.js')),
  blobWorker: await outcome(async () => {
    const source = await (await fetch('worker.js')).text()
    const answer = await inWorker(new Worker(URL.createObjectURL(new Blob([source], { type: 'text/javascript' }))))
    if (answer !== 'ok') throw new Error(answer)
  }).then(r => r.replace(/^Error: /, '')),
}))()
`

/** An Emscripten-style page: the module is set up by an inline script, then the main script runs. */
const PAGE = `<!doctype html>
<title>csp</title>
<script>
  window.inlineRan = true
</script>
<script src="main.js"></script>
`

/** A strict policy that lets workers start from blob: URLs but has no 'wasm-unsafe-eval'. */
const STRICT = "default-src 'self'; script-src 'self'; worker-src 'self' blob:"

type Result = Record<'instantiateStreaming' | 'compile' | 'urlWorker' | 'blobWorker', string> & { inline: boolean }

await whenBrowser(t, run)

async function outcomeOf (context: BrowserContext, url: string): Promise<{ result: Result, csp: string | undefined }> {
  const page = await context.newPage()
  try {
    const response = await page.goto(url)
    await page.waitForFunction(() => (window as any).result !== undefined, null, { timeout: 20_000 })
    const result = await page.evaluate(async () => (window as any).result as Promise<Result>)
    return { result, csp: response?.headers()['content-security-policy'] }
  } finally {
    await page.close()
  }
}

async function run () {
  const context = await launch(t)
  const root = makeSite(t, {
    'index.html': PAGE,
    'main.js': MAIN,
    'worker.js': WORKER,
    'tiny.wasm': TINY,
    'eval.html': '<!doctype html><title>eval</title><script src="eval.js"></script>\n',
    'eval.js': 'window.evaluated = eval("1 + 1")\n',
  })

  t.test('under the --secure CSP a module compiles in the page and in workers, and the inline script runs by its hash', async t => {
    const server = await startCli(t, root, ['--secure'])
    const { result, csp } = await outcomeOf(context, `${server.url}/`)
    t.match(csp, /script-src 'self' 'wasm-unsafe-eval' 'sha256-[A-Za-z0-9+/]+=*'/, 'the page is under the preset, with its inline script\'s hash')
    t.same(result, { inline: true, instantiateStreaming: 'ok', compile: 'ok', urlWorker: 'ok', blobWorker: 'ok' })
  })

  t.test('without \'wasm-unsafe-eval\' the same page gets the CompileError users see', async t => {
    const config = join(tempDir(t, 'config'), 'strict.json')
    writeFileSync(config, JSON.stringify({ routes: [{ match: '**/*.html', headers: { 'Content-Security-Policy': STRICT } }] }))
    const server = await startCli(t, root, ['--secure', '--config', config])
    const { result, csp } = await outcomeOf(context, `${server.url}/`)
    t.equal(csp, STRICT, 'the route\'s policy replaces the preset\'s')
    // Chromium 156's words ("Refused to compile or instantiate WebAssembly module because …" before):
    // "WebAssembly.compile(): Compiling or instantiating WebAssembly module violates the following
    // Content Security policy directive because 'unsafe-eval' is not an allowed source of script in
    // the following Content Security Policy directive: "script-src 'self'"."
    const refused = /^CompileError: WebAssembly\.\w+\(\): (Refused to compile or instantiate|Compiling or instantiating) WebAssembly module .*'unsafe-eval' is not an allowed source of script .*"script-src 'self'"/
    t.match(result.instantiateStreaming, refused, 'instantiateStreaming is refused')
    t.match(result.compile, refused, 'compile is refused')
    // A blob: worker inherits the page's policy; a worker from a URL takes its own response's, and
    // JavaScript carries none.
    t.match(result.blobWorker, refused, 'a blob: worker is refused too')
    t.equal(result.urlWorker, 'ok', 'a worker started from a URL is not under the page\'s policy')
    t.equal(result.inline, false, 'the inline script is blocked: the route\'s policy has no hash for it')
  })

  t.test('--secure=report-only blocks nothing, and a violation reaches the sink over http and is logged with its fix', async t => {
    const { url, out } = await serveCli(t, [root, '--port', '0', '--quiet', '--log-format', 'json', '--secure=report-only'])
    const page = await context.newPage()
    t.teardown(() => page.close())
    const response = await page.goto(`${url}/`)
    t.match(response?.headers()['content-security-policy-report-only'], /script-src 'self' 'wasm-unsafe-eval' 'sha256-.*; report-uri \/\.well-known\/wasm-serve\/reports$/)
    await page.waitForFunction(() => (window as any).result !== undefined, null, { timeout: 20_000 })
    t.same(await page.evaluate(async () => (window as any).result as Promise<Result>), { inline: true, instantiateStreaming: 'ok', compile: 'ok', urlWorker: 'ok', blobWorker: 'ok' })
    // eval() is outside the preset: reported, not blocked.
    const evalPage = await context.newPage()
    t.teardown(() => evalPage.close())
    await evalPage.goto(`${url}/eval.html`)
    await evalPage.waitForFunction(() => (window as any).evaluated !== undefined, null, { timeout: 20_000 })
    t.equal(await evalPage.evaluate(() => (window as any).evaluated), 2, 'eval ran: report-only blocks nothing')
    const logged = () => out.stdout.split('\n').filter(l => l.startsWith('{')).map(l => JSON.parse(l) as Record<string, unknown>).find(l => l.report === 'csp-violation')
    await until(() => logged() !== undefined, { what: () => `the CSP report in the log\n${out.stdout}` })
    t.match(logged(), { blockedURL: 'eval', kind: /^script-src/, fix: /remove eval\(\) and new Function\(\).*'unsafe-eval'/ })
  })
}
