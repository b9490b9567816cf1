// Directory listings (docs/delivery.md §1 CLI): a directory URL without index.html lists what the
// server would serve there (HTML, or JSON on Accept: application/json), dotfiles never; on in the CLI,
// off in the plugin by default, in the Docker image (WASM_SERVE_LISTING=false) and with --no-listing.
import t from 'tap'
import { get } from './helpers/http.js'
import { startCliApp, startPlugin } from './helpers/server.js'
import { makeSite, PAGE } from './helpers/site.js'
import { serveCli } from './helpers/cli.js'

const FILES = {
  'b.wasm': 'x'.repeat(1234),
  'a.js': 'export {}\n',
  'a.js.br': 'br bytes',
  '<img src=x onerror=alert(1)>.txt': 'hi',
  '.env': 'SECRET=1',
  '.git/config': '[core]',
  'zdir/inner.wasm': 'y',
  'adir/deep/file.txt': 'z',
  'site/index.html': PAGE,
}

t.test('the CLI lists a directory without index.html: directories first, sorted, sizes, names escaped, no dotfiles', async t => {
  const root = makeSite(t, FILES)
  const { url } = await startCliApp(t, { root, listing: true })
  const res = await get(`${url}/`)
  t.equal(res.status, 200)
  t.equal(res.headers['content-type'], 'text/html; charset=utf-8')
  t.equal(res.headers['cache-control'], 'no-cache')
  t.equal(res.headers.vary, 'Accept')
  t.match(res.headers['content-security-policy'], /default-src 'none'/)
  const html = res.body.toString()
  const links = [...html.matchAll(/<a href="([^"]*)">([^<]*)<\/a>/g)].map(m => [m[1], m[2]])
  t.same(links, [
    ['adir/', 'adir/'],
    ['site/', 'site/'],
    ['zdir/', 'zdir/'],
    ['%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E.txt', '&lt;img src=x onerror=alert(1)&gt;.txt'],
    ['a.js', 'a.js'],
    ['a.js.br', 'a.js.br'],
    ['b.wasm', 'b.wasm'],
  ], 'the siblings are listed, they are servable; the dotfiles are not')
  t.match(html, '<td>1,234</td>')
  t.notMatch(html, '<img', 'no markup from a file name')
  t.notMatch(html, '../', 'no parent link at the root')
})

t.test('JSON on Accept: application/json; subdirectories get a parent link; /dir redirects to /dir/', async t => {
  const root = makeSite(t, FILES)
  const { url } = await startCliApp(t, { root, listing: true })
  const json = await get(`${url}/`, { accept: 'application/json' })
  t.equal(json.headers['content-type'], 'application/json; charset=utf-8')
  t.same(JSON.parse(json.body.toString()), [
    { name: 'adir', type: 'directory', size: null },
    { name: 'site', type: 'directory', size: null },
    { name: 'zdir', type: 'directory', size: null },
    { name: '<img src=x onerror=alert(1)>.txt', type: 'file', size: 2 },
    { name: 'a.js', type: 'file', size: 10 },
    { name: 'a.js.br', type: 'file', size: 8 },
    { name: 'b.wasm', type: 'file', size: 1234 },
  ])
  t.same(JSON.parse((await get(`${url}/adir/`, { accept: 'application/json' })).body.toString()), [{ name: 'deep', type: 'directory', size: null }])
  const sub = await get(`${url}/zdir/`)
  t.match(sub.body.toString(), '<a href="../">../</a>')
  t.match(sub.body.toString(), '<title>Index of /zdir/</title>')
  const redirect = await get(`${url}/zdir?x=1`)
  t.equal(redirect.status, 301)
  t.equal(redirect.headers.location, '/zdir/?x=1')
  const page = await get(`${url}/site/`)
  t.equal(page.body.toString(), PAGE, 'a directory with index.html gets its page, not a listing')
  t.equal((await get(`${url}/.git/`)).status, 404, 'a dot-directory is never listed')
  t.equal((await get(`${url}/nothing/`)).status, 404, 'a directory that does not exist is 404')
})

t.test('dotfiles allowed are served but still never listed', async t => {
  const root = makeSite(t, FILES)
  const { url } = await startCliApp(t, { root, listing: true, dotfiles: 'allow' })
  t.equal((await get(`${url}/.env`)).status, 200)
  const names = (JSON.parse((await get(`${url}/`, { accept: 'application/json' })).body.toString()) as Array<{ name: string }>).map(e => e.name)
  t.notOk(names.some(n => n.startsWith('.')), `no dotfile in ${names.join(', ')}`)
  t.equal((await get(`${url}/.git/`)).status, 404)
})

t.test('off: the plugin by default, and the CLI\'s server without listing: true; on: the plugin with listing: true under a prefix', async t => {
  const root = makeSite(t, FILES)
  const plugin = await startPlugin(t, { root })
  t.equal((await get(`${plugin.url}/`)).status, 404, 'plugin default')
  t.equal((await get(`${plugin.url}/zdir`)).status, 404, 'no redirect to a listing either')
  const off = await startCliApp(t, { root })
  t.equal((await get(`${off.url}/`)).status, 404, 'the server the CLI runs leaves it to the CLI to turn them on')
  const on = await startPlugin(t, { root, prefix: '/static', listing: true })
  const res = await get(`${on.url}/static/zdir/`, { accept: 'application/json' })
  t.same(JSON.parse(res.body.toString()), [{ name: 'inner.wasm', type: 'file', size: 1 }])
  t.match((await get(`${on.url}/static/`)).body.toString(), '<title>Index of /static/</title>')
  t.equal((await get(`${on.url}/static/zdir`)).headers.location, '/static/zdir/')
})

t.test('the CLI: --no-listing and WASM_SERVE_LISTING=false (the Docker image\'s setting) answer 404', async t => {
  const root = makeSite(t, FILES)
  const listed = await serveCli(t, [root, '--port', '0'])
  t.equal((await get(`${listed.url}/`)).status, 200)
  const flag = await serveCli(t, [root, '--port', '0', '--no-listing'])
  t.equal((await get(`${flag.url}/`)).status, 404)
  const env = await serveCli(t, [root, '--port', '0'], { env: { WASM_SERVE_LISTING: 'false' } })
  t.equal((await get(`${env.url}/`)).status, 404)
})
