/**
 * The two commands together, as a user runs them: `wasm-serve check` audits nginx and Caddy serving a
 * site with the configuration people write for an SPA (what goes wrong is found, rule by rule), then
 * with the configuration `wasm-serve export` writes for the same site (nothing fails, and each rule
 * the first audit failed now passes).
 */
import { chmodSync } from 'node:fs'
import t, { type Test } from 'tap'
import { checkUrls, type Report, type RuleId } from '../src/check/run.js'
import { runCli } from './helpers/cli.js'
import { NO_CADDY, NO_NGINX, startCaddy, startNginx } from './helpers/engines.js'
import { finding } from './helpers/findings.js'
import { BR, GZ, SQLITE, WEBP, makeSite } from './helpers/site.js'

const PAGE = '<!doctype html><title>game</title><script type="module" src="/assets/main-K7ZBXP5Q.js"></script>\n'
const SCRIPT = 'const url = new URL("./sqlite3-5e6f7a8b.wasm", import.meta.url)\nawait WebAssembly.instantiateStreaming(fetch(url))\n'

/** A Vite-style build, compressed by `wasm-serve compress`-like siblings, with a secret left in it. */
const FILES = {
  'index.html': PAGE,
  'assets/main-K7ZBXP5Q.js': SCRIPT,
  'assets/sqlite3-5e6f7a8b.wasm': SQLITE,
  'assets/sqlite3-5e6f7a8b.wasm.br': BR,
  'assets/sqlite3-5e6f7a8b.wasm.gz': GZ,
  'engine.wasm': WEBP,
  '.env': 'API_KEY=secret\n',
}

/** What people write for an SPA: the distribution's types, gzip on, every miss answered with the page. */
const HANDWRITTEN = {
  nginx: (root: string) => `include /etc/nginx/mime.types;\ngzip on;\nserver {\n  listen 8080;\n  root ${root};\n  location / { try_files $uri $uri/ /index.html; }\n}\n`,
  caddy: (root: string) => `{$SITE_ADDRESS} {\n\troot * ${root}\n\tencode gzip\n\ttry_files {path} /index.html\n\tfile_server\n}\n`,
}

const ENGINES = [
  { engine: 'nginx' as const, skip: NO_NGINX, start: startNginx },
  { engine: 'caddy' as const, skip: NO_CADDY, start: startCaddy },
]

async function audit (base: string): Promise<Report> {
  return checkUrls([`${base}/`, `${base}/engine.wasm`], { timeoutMs: 5000 })
}

function statuses (report: Report, path: string, rules: RuleId[]): Record<string, string> {
  return Object.fromEntries(rules.map(rule => [rule, finding(report, rule, path).status]))
}

async function exported (t: Test, engine: string, root: string): Promise<string> {
  const proc = runCli(t, ['export', '--target', engine, root, '--isolate', '--spa'])
  const { code } = await proc.exited
  t.equal(code, 0, proc.out.stderr)
  return proc.out.stdout
}

for (const { engine, skip, start } of ENGINES) {
  t.test(`${engine}: check finds what a hand-written SPA configuration gets wrong, and nothing fails with the exported one`, { skip }, async t => {
    const root = makeSite(t, FILES)
    chmodSync(root, 0o755)
    const module = '/assets/sqlite3-5e6f7a8b.wasm'

    const before = await audit(await start(t, HANDWRITTEN[engine](root)))
    t.equal(before.engine, engine, 'recognised from Server')
    t.same(before.urls.map(u => new URL(u).pathname).sort(), ['/', '/assets/main-K7ZBXP5Q.js', module, '/engine.wasm'].sort(), 'the page is followed to its script and the module the script names')
    t.same(statuses(before, '/', ['isolation', 'dotfiles']), { isolation: 'warn', dotfiles: 'fail' }, 'no isolation; /.env is served')
    t.same(statuses(before, module, ['content-type', 'spa-fallback', 'cache-policy']), { 'content-type': 'pass', 'spa-fallback': 'fail', 'cache-policy': 'warn' },
      'a missing module gets the page; the hashed module is not cached for long')
    t.equal(finding(before, 'encoding', '/engine.wasm').status, 'warn', 'the module goes uncompressed')
    t.match(finding(before, 'spa-fallback', module).fix, engine === 'nginx' ? /try_files \$uri =404/ : /try_files \{path\} \/index\.html only for paths without a dot/)

    const config = await exported(t, engine, root)
    const after = await audit(await start(t, config))
    t.same(after.findings.filter(f => f.status === 'fail'), [], 'no rule fails')
    t.same(statuses(after, '/', ['isolation', 'dotfiles']), { isolation: 'pass', dotfiles: 'pass' })
    t.same(statuses(after, module, ['content-type', 'encoding', 'vary', 'spa-fallback', 'cache-policy', 'range']), { 'content-type': 'pass', encoding: 'pass', vary: 'pass', 'spa-fallback': 'pass', 'cache-policy': 'pass', range: 'pass' })
    t.match(finding(after, 'encoding', module).evidence, /^br for gzip, deflate, br, zstd/, 'the br sibling is served')
    t.equal(finding(after, 'decoded-length', module).status, engine === 'nginx' ? 'pass' : 'warn', 'nginx sends the decoded length; Caddy cannot (the export warns)')
  })
}
