// D10 as a user meets it: the --immutable and --no-cache flags and their config keys, the rule that
// decided each file's Cache-Control in the debug log, and `wasm-serve explain <path>` naming the rule
// behind every header, run as the real CLI over a real root.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { parseCli } from '../src/config.js'
import { runExplain, type Explanation } from '../src/explain.js'
import { IMMUTABLE, REVALIDATE } from '../src/policy.js'
import { runCli } from './helpers/cli.js'
import { startPlugin } from './helpers/server.js'
import { JS, makeSite, PAGE, SQLITE, tempDir } from './helpers/site.js'

const FILES = {
  'index.html': PAGE,
  'assets/app-BXaH3k2f.wasm': SQLITE,
  'assets/logo-DarkMode.svg': '<svg xmlns="http://www.w3.org/2000/svg"/>\n',
  'vendor/lib.js': JS,
  '.env': 'SECRET=1\n',
}

t.test('--immutable and --no-cache are repeatable flags and config keys; flags replace the file\'s lists', async t => {
  const dir = tempDir(t, 'conf')
  writeFileSync(join(dir, 'c.json'), JSON.stringify({ immutable: ['models/**'], noCache: ['assets/config-*.json'] }))
  const fromFile = parseCli(['--config', join(dir, 'c.json')], {}, dir).options
  t.same([fromFile.immutable, fromFile.noCache], [['models/**'], ['assets/config-*.json']])
  const fromFlags = parseCli(['--config', join(dir, 'c.json'), '--immutable', 'a/**', '--immutable', 'b/**', '--no-cache', 'c/**'], {}, dir).options
  t.same([fromFlags.immutable, fromFlags.noCache], [['a/**', 'b/**'], ['c/**']])
  t.same([parseCli([], {}, dir).options.immutable, parseCli([], {}, dir).options.noCache], [[], []], 'both empty by default')
  t.throws(() => parseCli(['--immutable'], {}, dir), { code: 'WASM_SERVE_USAGE' }, 'a glob is required')
})

t.test('each file indexed logs its Cache-Control and the rule that decided it at debug level (D10)', async t => {
  const root = makeSite(t, FILES)
  const server = await startPlugin(t, { root, immutable: ['**/*.svg'], noCache: ['vendor/**'], routes: [{ match: 'index.html', cacheControl: 'no-cache, must-revalidate' }] }, { logLevel: 'debug' })
  const decided = Object.fromEntries(server.logs.filter(l => l.msg === 'cache policy').map(l => [l.path, [l.cacheControl, l.rule]]))
  t.same(decided, {
    'index.html': ['no-cache, must-revalidate', 'D10 route 0 "index.html"'],
    'assets/app-BXaH3k2f.wasm': [IMMUTABLE, 'D10 hashed name "BXaH3k2f"'],
    'assets/logo-DarkMode.svg': [IMMUTABLE, 'D10 immutable "**/*.svg"'],
    'vendor/lib.js': [REVALIDATE, 'D10 noCache "vendor/**"'],
  }, 'one line per file; the dotfile is not indexed')
  const res = await fetch(`${server.url}/assets/logo-DarkMode.svg`)
  t.equal(res.headers.get('cache-control'), IMMUTABLE, 'the logged decision is what is sent')
  t.equal((await fetch(`${server.url}/vendor/lib.js`)).headers.get('cache-control'), REVALIDATE)
})

/** Runs the real CLI's explain and returns its exit code and output. */
async function explainCli (t: Test, args: string[]): Promise<{ code: number | null, stdout: string, stderr: string }> {
  const proc = runCli(t, ['explain', ...args])
  const { code } = await proc.exited
  return { code, ...proc.out }
}

/** The rule column of the line for a header in explain's text output. */
function ruleOf (stdout: string, header: string): string | undefined {
  const line = stdout.split('\n').find(l => l.trimStart().startsWith(header + ' '))
  return line === undefined ? undefined : /^.* {2}((?:D\d+|route \d+) .*)$/.exec(line)?.[1]
}

t.test('wasm-serve explain names the rule behind each header of a hashed module', async t => {
  const root = makeSite(t, FILES)
  const { code, stdout } = await explainCli(t, ['/assets/app-BXaH3k2f.wasm', root, '--isolate'])
  t.equal(code, 0)
  t.match(stdout, /^200 {2}\/assets\/app-BXaH3k2f\.wasm {2}the file\n/)
  t.equal(ruleOf(stdout, 'cache-control'), 'D10 hashed name "BXaH3k2f"')
  t.equal(ruleOf(stdout, 'content-type'), 'D1 type from the extension .wasm')
  t.equal(ruleOf(stdout, 'cross-origin-resource-policy'), 'D12 crossOriginIsolation require-corp')
  // On a Node that compresses with a dictionary (24) the module is also announced for delta updates.
  const deltas = /^use-as-dictionary/m.test(stdout.replace(/^ +/gm, ''))
  t.equal(ruleOf(stdout, 'vary'), `D7 Accept-Encoding: encoded on the fly when asked (D4)${deltas ? '; D18 delta updates' : ''}`)
  if (deltas) t.equal(ruleOf(stdout, 'use-as-dictionary'), 'D18 a module that stays fresh')
  t.match(stdout, /public, max-age=31536000, immutable/)
  // Columns are aligned: every header line has its value at the same offset.
  const lines = stdout.split('\n').filter(l => /^ {2}[a-z-]+ {2,}/.test(l))
  t.ok(lines.length >= 8)
  t.equal(new Set(lines.map(l => l.search(/(?<=^ {2}[a-z-]+ +)\S/))).size, 1, 'values start in one column')
})

t.test('wasm-serve explain: a page with preload, a route-matched file, a dotfile, a missing path', async t => {
  const root = makeSite(t, FILES)
  const page = await explainCli(t, ['/', root, '--preload', '/assets/app-BXaH3k2f.wasm', '--early-hints'])
  t.equal(page.code, 0)
  t.match(page.stdout, /^200 {2}\/ {2}the directory's index\.html/)
  t.equal(ruleOf(page.stdout, 'link'), 'D11 preload')
  t.equal(ruleOf(page.stdout, 'cache-control'), 'D10 default: no content hash in the name')
  t.match(page.stdout, /D11 the Link header is sent first as 103 Early Hints/)

  const config = join(tempDir(t, 'conf'), 'c.json')
  writeFileSync(config, JSON.stringify({ routes: [{ match: 'vendor/**', cacheControl: 'public, max-age=600', headers: { 'X-Frame-Options': 'DENY' } }] }))
  const routed = await explainCli(t, ['vendor/lib.js', root, '--config', config])
  t.equal(routed.code, 0)
  t.equal(ruleOf(routed.stdout, 'cache-control'), 'D10 route 0 "vendor/**"')
  t.equal(ruleOf(routed.stdout, 'x-frame-options'), 'route 0 "vendor/**" headers')

  const dotfile = await explainCli(t, ['/.env', root])
  t.equal(dotfile.code, 1)
  t.match(dotfile.stdout, /^404 {2}\/\.env {2}hidden: a dotfile/)

  const missing = await explainCli(t, ['/assets/gone-K7ZBXP5Q.js', root])
  t.equal(missing.code, 1)
  t.match(missing.stdout, /^404 {2}\/assets\/gone-K7ZBXP5Q\.js {2}not found: no file assets\/gone-K7ZBXP5Q\.js in the root/)

  const spa = await explainCli(t, ['/settings/profile', root, '--spa'])
  t.equal(spa.code, 0, 'an extension-less path is answered by the SPA page')
  t.match(spa.stdout, /^200 {2}\/settings\/profile {2}the SPA page index\.html/)

  const usage = await explainCli(t, [])
  t.equal(usage.code, 2)
  t.match(usage.stderr, /missing <path>/)
  const noRoot = await explainCli(t, ['/x', join(root, 'absent')])
  t.equal(noRoot.code, 2)
})

t.test('wasm-serve explain --json gives each header with its value and rule', async t => {
  const root = makeSite(t, FILES)
  let out = ''
  const io = { stdout: { write: (s: string) => { out += s; return true } }, stderr: { write: () => true } } as unknown as Parameters<typeof runExplain>[1]
  const code = await runExplain(['assets/logo-DarkMode.svg', root, '--json', '--immutable', 'assets/*.svg'], io, {}, root)
  t.equal(code, 0)
  const e = JSON.parse(out) as Explanation
  t.equal(e.status, 200)
  t.equal(e.file, 'assets/logo-DarkMode.svg')
  t.same(e.headers.find(h => h.name === 'cache-control'), { name: 'cache-control', value: IMMUTABLE, rule: 'D10 immutable "assets/*.svg"' })
  t.same(e.headers.find(h => h.name === 'content-type'), { name: 'content-type', value: 'image/svg+xml', rule: 'D1 type from the extension .svg' })
  out = ''
  t.equal(await runExplain(['assets/logo-DarkMode.svg', root, '--json'], io, {}, root), 0)
  t.equal((JSON.parse(out) as Explanation).headers.find(h => h.name === 'cache-control')?.rule, 'D10 default: no content hash in the name', 'without the flag a human name revalidates')
})
