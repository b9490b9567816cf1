/**
 * `wasm-serve export --target netlify | cloudflare-pages | vercel | s3`: the output parses by each
 * format's documented grammar and limits (test/helpers/export-formats.ts), and, read with the
 * platform's documented matching, gives every path exactly the headers wasm-serve sends for it.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { runCli, type CliProcess } from './helpers/cli.js'
import {
  cloudflareHeaders, netlifyHeaders, netlifyRewrite, parseHeaders, parseRedirects, parseS3, parseVercel,
  splitFiles, vercelHeaders, vercelRewrite, type Headers,
} from './helpers/export-formats.js'
import { get } from './helpers/http.js'
import { startCliApp } from './helpers/server.js'
import { BR, GZ, makeSite, PAGE, SQLITE, JS, TINY, tempDir, type Files } from './helpers/site.js'

const FILES: Files = {
  'sqlite3.wasm': SQLITE,
  'sqlite3.wasm.br': BR,
  'sqlite3.wasm.gz': GZ,
  'assets/mod.3f2a1b9c.wasm': TINY,
  'index.html': PAGE,
  'docs/index.html': PAGE,
  'docs/guide.html': PAGE,
  'app.js': JS,
  'Build/game.wasm.br': BR,
  '.env': 'SECRET=1\n',
  'my file.js': JS,
  'café 100%.txt': 'text\n',
  'a:b.txt': 'text\n',
}

const ISOLATED = {
  crossOriginIsolation: 'require-corp',
  cors: { origin: '*' },
  preload: ['/sqlite3.wasm'],
  spa: 'index.html',
  routes: [{ match: 'docs/**', cacheControl: 'public, max-age=60', headers: { 'X-Route': 'docs' } }],
} as const
const LISTED = { cors: { origin: ['https://a.example', 'https://b.example'] }, preload: ['/app.js'] } as const

/** The headers the exports must reproduce: policy, route and CORS headers, and the type where the export sets one. */
const POLICY = /^(cache-control|cross-origin-|access-control-|timing-allow-origin|link|x-route)/
function policy (headers: Record<string, string | undefined>, withType: boolean): Headers {
  const out: Headers = {}
  for (const [name, value] of Object.entries(headers)) if (value !== undefined && (POLICY.test(name) || (withType && name === 'content-type'))) out[name] = value
  return out
}

/** Headers as one comparable string: 240 files compared with one assertion each would flood the output. */
const sorted = (headers: Headers) => JSON.stringify(Object.entries(headers).sort())

async function exportWith (t: Test, target: string, root: string, config: string): Promise<{ stdout: string, stderr: string }> {
  const proc: CliProcess = runCli(t, ['export', '--target', target, root, '--config', config])
  const { code } = await proc.exited
  t.equal(code, 0, `export --target ${target} exits 0 (${proc.out.stderr.trim().split('\n').at(-1) ?? ''})`)
  return proc.out
}

interface Served { url: string, headers: Record<string, string | undefined> }

/** Every URL wasm-serve serves a file at (a directory's URL for its index.html too), with its headers. */
async function served (base: string, urls: string[], request: Record<string, string>): Promise<Served[]> {
  const out: Served[] = []
  for (const url of urls) {
    const res = await get(base + url, { 'accept-encoding': 'br, gzip', accept: 'text/html,*/*', ...request })
    if (res.status !== 200) throw new Error(`${url}: ${res.status}`)
    out.push({ url, headers: res.headers })
  }
  return out
}

const URLS = ['/sqlite3.wasm', '/sqlite3.wasm.br', '/assets/mod.3f2a1b9c.wasm', '/index.html', '/', '/docs/index.html', '/docs/', '/docs/guide.html', '/app.js', '/Build/game.wasm.br', '/my%20file.js', '/caf%C3%A9%20100%25.txt', '/a%3Ab.txt']

/** Where Cloudflare Pages answers a URL: pages at their extension-less URL (serving-pages). */
const cloudflarePath = (url: string) => url.replace(/index\.html$/, '').replace(/\.html$/, '')

async function setUp (t: Test, options: typeof ISOLATED | typeof LISTED) {
  const root = makeSite(t, FILES)
  const config = join(tempDir(t, 'config'), 'config.json')
  writeFileSync(config, JSON.stringify(options))
  const server = await startCliApp(t, { ...structuredClone(options) as object, root })
  return { root, config, base: server.url }
}

t.test('netlify: _headers and _redirects parse, and every path gets exactly wasm-serve\'s headers from rules that never set one header twice', async t => {
  const { root, config, base } = await setUp(t, ISOLATED)
  const { stdout, stderr } = await exportWith(t, 'netlify', root, config)
  const files = splitFiles(stdout)
  t.same(Object.keys(files), ['_headers', '_redirects'])
  const rules = parseHeaders(files._headers!, { detach: false })
  for (const { url, headers } of await served(base, URLS, {})) {
    const got = netlifyHeaders(rules, url)
    t.same(got.conflicts, [], `${url}: no header set by two rules`)
    t.same(got.headers, policy(headers, got.headers['content-type'] !== undefined), `${url}: the headers wasm-serve sends`)
  }
  t.notOk(rules.some(r => r.path.includes('.env')), 'no rule names the dotfile')
  const redirects = parseRedirects(files._redirects!)
  const exists = (path: string) => URLS.includes(path)
  t.same(netlifyRewrite(redirects, '/settings/profile', exists), { from: '/*', to: '/index.html', status: 200, force: false }, 'a deep link gets the SPA page')
  t.equal(netlifyRewrite(redirects, '/sqlite3.wasm', exists), undefined, 'a file that exists shadows the rewrite')
  t.equal((await get(base + '/settings/profile', { accept: 'text/html' })).status, 200, 'wasm-serve answers the deep link with the page')
  t.match(stderr, /Netlify cannot limit the SPA fallback to extension-less paths .*\/missing\.wasm/, 'the missing-module case is a warning')
  t.match(stderr, /Netlify cannot send Content-Encoding .*Build\/game\.wasm\.br/, 'the Unity sibling is a warning')
  t.match(files._headers!, /^# warning: Netlify cannot send Content-Encoding/m, 'and a comment in _headers')
})

t.test('cloudflare-pages: within 100 rules and 2,000 characters a line, and every path and deep link gets exactly wasm-serve\'s headers', async t => {
  const { root, config, base } = await setUp(t, ISOLATED)
  const { stdout, stderr } = await exportWith(t, 'cloudflare-pages', root, config)
  const files = splitFiles(stdout)
  const rules = parseHeaders(files._headers!, { detach: true, maxRules: 100, maxLine: 2000 })
  t.equal(parseRedirects(files._redirects!, 2100).length, 0, '_redirects has no rule: Pages\' own single-page mode is the fallback')
  for (const { url, headers } of await served(base, URLS, {})) {
    const got = cloudflareHeaders(rules, cloudflarePath(url))
    t.same(got, policy(headers, got['content-type'] !== undefined), `${cloudflarePath(url)}: the headers wasm-serve sends for ${url}`)
  }
  const deep = await get(base + '/settings/profile', { accept: 'text/html' })
  t.equal(deep.status, 200)
  t.same(cloudflareHeaders(rules, '/settings/profile'), policy(deep.headers, true), 'a deep link gets the page\'s headers, as wasm-serve sends them on the fallback')
  t.match(stderr, /single-page mode answers every unknown path .*\/missing\.wasm/, 'the missing-module case is a warning')
})

t.test('vercel: vercel.json obeys the schema and path-to-regexp, headers match per path, and the SPA rewrite takes only extension-less paths that accept HTML', async t => {
  const { root, config, base } = await setUp(t, ISOLATED)
  const { stdout, stderr } = await exportWith(t, 'vercel', root, config)
  const vercel = parseVercel(stdout)
  for (const { url, headers } of await served(base, URLS, {})) {
    const got = vercelHeaders(vercel, url)
    t.same(got, policy(headers, got['content-type'] !== undefined), `${url}: the headers wasm-serve sends`)
  }
  const deep = await get(base + '/settings/profile', { accept: 'text/html' })
  t.equal(vercelRewrite(vercel, '/settings/profile', { accept: 'text/html' }), '/index.html', 'a deep link gets the page')
  t.same(vercelHeaders(vercel, '/settings/profile'), policy(deep.headers, true), 'with the page\'s headers')
  t.equal((await get(base + '/missing.wasm', { accept: 'text/html' })).status, 404, 'wasm-serve: a missing module is 404')
  t.equal(vercelRewrite(vercel, '/missing.wasm', { accept: 'text/html' }), undefined, 'vercel: no rewrite for a missing module')
  t.equal((await get(base + '/settings', { accept: '*/*' })).status, 404, 'wasm-serve: no fallback without HTML in Accept')
  t.equal(vercelRewrite(vercel, '/settings', { accept: '*/*' }), undefined, 'vercel: the same')
  t.match(stderr, /Vercel cannot send X-Decoded-Content-Length/, 'warnings go to stderr (JSON has no comments)')
})

t.test('s3: the manifest validates, and metadata, CORS rules and CDN headers add up to wasm-serve\'s headers for every file, siblings labelled', async t => {
  for (const [name, options] of [['cors *', ISOLATED], ['a list of origins', LISTED]] as const) {
    await t.test(name, async t => {
      const { root, config, base } = await setUp(t, options)
      const { stdout } = await exportWith(t, 's3', root, config)
      const manifest = parseS3(stdout)
      t.notOk(manifest.objects.some(o => o.key.includes('.env')), 'no dotfile is uploaded')
      const origin = 'https://a.example'
      for (const { url, headers } of await served(base, URLS.filter(u => !u.endsWith('/')), { origin })) {
        const key = decodeURIComponent(url.slice(1))
        const object = manifest.objects.find(o => o.key === key)
        if (object === undefined) { t.fail(`no object for ${key}`); continue }
        t.ok(readFileSync(join(root, object.file)).length > 0, `${key}: its file is in the directory`)
        t.equal(object.contentEncoding, headers['content-encoding'] === 'br' && url.endsWith('.br') ? 'br' : undefined, `${key}: Content-Encoding only on a sibling asked for by name`)
        const rule = manifest.cors?.CORSRules[0]
        const cors: Headers = rule === undefined
          ? {}
          : { 'access-control-allow-origin': rule.AllowedOrigins.includes('*') ? '*' : rule.AllowedOrigins.includes(origin) ? origin : '', 'access-control-expose-headers': rule.ExposeHeaders?.join(', ') ?? '' }
        const cdn = Object.fromEntries(Object.entries(object.cdnHeaders ?? {}).map(([n, v]) => [n.toLowerCase(), v]))
        t.same({ 'content-type': object.contentType, 'cache-control': object.cacheControl, ...cors, ...cdn }, policy(headers, true), `${key}: the headers wasm-serve sends`)
      }
    })
  }
})

t.test('a list of CORS origins: the CDNs are told what is static and warn about the echo; Cloudflare without a 404.html warns of its SPA default', async t => {
  const { root, config, base } = await setUp(t, LISTED)
  const { stdout, stderr } = await exportWith(t, 'cloudflare-pages', root, config)
  const rules = parseHeaders(splitFiles(stdout)._headers!, { detach: true, maxRules: 100, maxLine: 2000 })
  for (const { url, headers } of await served(base, URLS, {})) {
    const got = cloudflareHeaders(rules, cloudflarePath(url))
    t.same(got, policy(headers, got['content-type'] !== undefined), `${url}: the headers wasm-serve sends to a request without Origin`)
  }
  t.match(stderr, /cannot echo one of a list of CORS origins/)
  t.match(stderr, /the root has no 404\.html: Cloudflare Pages then answers every unknown path with index\.html/)
  t.notOk(splitFiles(stdout)._redirects, 'no _redirects without the SPA')
})

t.test('Cloudflare\'s 100 rules: directories whose files share a policy share one rule and stay exact; past the limit the files left over are named', async t => {
  const files: Files = { 'index.html': PAGE }
  for (let i = 0; i < 120; i++) files[`assets/chunk-f${i.toString(16).padStart(7, '0')}.js`] = JS
  for (let i = 0; i < 120; i++) files[`data/d${i}.json`] = '{"a":1}\n'
  const root = makeSite(t, files)
  const config = join(tempDir(t, 'config'), 'config.json')
  writeFileSync(config, JSON.stringify({ crossOriginIsolation: 'require-corp' }))
  const server = await startCliApp(t, { crossOriginIsolation: 'require-corp', root })
  const { stdout, stderr } = await exportWith(t, 'cloudflare-pages', root, config)
  const rules = parseHeaders(splitFiles(stdout)._headers!, { detach: true, maxRules: 100, maxLine: 2000 })
  t.ok(rules.some(r => r.path === '/assets/*'), 'one rule for assets/')
  t.notMatch(stderr, /allows 100 header rules/, 'nothing is lost')
  for (const url of Object.keys(files).map(p => '/' + p.split('/').map(encodeURIComponent).join('/'))) {
    const sent = (await get(server.url + url, { accept: '*/*' })).headers
    const got = cloudflareHeaders(rules, cloudflarePath(url))
    if (sorted(got) !== sorted(policy(sent, got['content-type'] !== undefined))) t.fail(`${url}: ${sorted(got)}`)
  }
  t.pass('all 241 paths get exactly the headers wasm-serve sends')

  const distinct: Files = { 'index.html': PAGE }
  const routes = []
  for (let i = 0; i < 120; i++) { distinct[`f${i}.txt`] = 'x\n'; routes.push({ match: `f${i}.txt`, cacheControl: `public, max-age=${i + 1}` }) }
  const root2 = makeSite(t, distinct)
  const config2 = join(tempDir(t, 'config'), 'config.json')
  writeFileSync(config2, JSON.stringify({ routes }))
  const out2 = await exportWith(t, 'cloudflare-pages', root2, config2)
  t.equal(parseHeaders(splitFiles(out2.stdout)._headers!, { detach: true, maxRules: 100, maxLine: 2000 }).length, 100, 'exactly 100 rules')
  t.match(out2.stderr, /Cloudflare Pages allows 100 header rules: \d+ path\(s\) keep only the headers of "\/\*" \(\/f\d+\.txt/, 'the files left over are named')
})

t.test('names the rule grammar cannot hold are skipped with a warning naming them', async t => {
  const root = makeSite(t, { 'index.html': PAGE, 'star*.js': JS })
  const config = join(tempDir(t, 'config'), 'config.json')
  writeFileSync(config, '{}')
  const { stdout, stderr } = await exportWith(t, 'netlify', root, config)
  t.notMatch(stdout, /^\/star/m, 'no rule for it')
  t.match(stderr, /have a "\*" in their name.*star\*\.js/)
})

t.test('the same input gives the same bytes; --out DIR writes _headers and _redirects', async t => {
  const { root, config } = await setUp(t, ISOLATED)
  for (const target of ['netlify', 'cloudflare-pages', 'vercel', 's3']) {
    const [a, b] = [await exportWith(t, target, root, config), await exportWith(t, target, root, config)]
    t.equal(a.stdout, b.stdout, `${target}: two exports are byte-identical`)
  }
  const out = tempDir(t, 'out')
  const proc = runCli(t, ['export', '--target', 'netlify', root, '--config', config, '--out', out])
  t.equal((await proc.exited).code, 0)
  const printed = splitFiles((await exportWith(t, 'netlify', root, config)).stdout)
  t.equal(readFileSync(join(out, '_headers'), 'utf8') + '\n', printed._headers, '_headers as printed')
  t.equal(readFileSync(join(out, '_redirects'), 'utf8'), printed._redirects, '_redirects as printed')
})
