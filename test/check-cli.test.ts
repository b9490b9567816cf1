/**
 * `wasm-serve check` as CI runs it (the built CLI, spawned): exit codes 0, 1 and 2, --json that parses
 * into the report checkUrls returns, --help listing every rule, a server that never answers (FAIL
 * within the timeout), and redirects: a chain followed and shown, a loop reported.
 */
import t from 'tap'
import { createServer } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { RULE_IDS, type Report } from '../src/check/index.js'
import { NO_FAULTS, startBadServer } from './helpers/bad-server.js'
import { runCli } from './helpers/cli.js'
import { startCliApp } from './helpers/server.js'
import { BR, makeSite, SQLITE } from './helpers/site.js'

async function run (t: Parameters<typeof runCli>[0], args: string[]): Promise<{ code: number | null, stdout: string, stderr: string, ms: number }> {
  const started = Date.now()
  const proc = runCli(t, ['check', ...args])
  const { code } = await proc.exited
  return { code, ...proc.out, ms: Date.now() - started }
}

/** A server for `t` whose handler is `handle`; returns its base URL. */
async function serve (t: Parameters<typeof runCli>[0], handle: Parameters<typeof createServer>[1]): Promise<string> {
  const server = createServer(handle)
  const sockets = new Set<Socket>()
  server.on('connection', s => { sockets.add(s); s.on('close', () => sockets.delete(s)) })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { for (const s of sockets) s.destroy(); server.close() })
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

t.test('exit 0 on a module wasm-serve serves, 1 when a rule FAILs, with one line per rule and a summary', async t => {
  const good = await startCliApp(t, { root: makeSite(t, { 'sqlite3.wasm': SQLITE, 'sqlite3.wasm.br': BR }) })
  const ok = await run(t, [`${good.url}/sqlite3.wasm`])
  t.equal(ok.code, 0, ok.stderr)
  t.match(ok.stdout, new RegExp(`^PASS  content-type    ${good.url}/sqlite3\\.wasm  application/wasm$`, 'm'))
  t.match(ok.stdout, /^\d+ pass, 0 warn, 0 fail \(1 URL audited, server: wasm-serve\)$/m)
  const bad = await startBadServer(t, { 'mod.wasm': SQLITE }, { ...NO_FAULTS, wasmCharset: true })
  const failed = await run(t, [`${bad}/mod.wasm`])
  t.equal(failed.code, 1)
  t.match(failed.stdout, new RegExp(`^FAIL  content-type    ${bad}/mod\\.wasm  Content-Type: application/wasm; charset=utf-8: .*\\n      fix: serve \\.wasm as exactly "application/wasm"`, 'm'))
  t.match(failed.stdout, /^\d+ pass, 0 warn, 1 fail \(1 URL audited\)$/m)
})

t.test('--json prints the report: findings, urls, engine', async t => {
  const good = await startCliApp(t, { root: makeSite(t, { 'sqlite3.wasm': SQLITE, 'sqlite3.wasm.br': BR }) })
  const out = await run(t, ['--json', `${good.url}/sqlite3.wasm`])
  t.equal(out.code, 0, out.stderr)
  const report = JSON.parse(out.stdout) as Report
  t.same(report.urls, [`${good.url}/sqlite3.wasm`])
  t.equal(report.engine, 'wasm-serve')
  t.same(report.findings.filter(f => f.url !== `${good.url}/`).map(f => f.rule), ['reachable', 'content-type', 'encoding', 'q-values', 'content-length', 'vary', 'etag', 'not-modified', 'range', 'head', 'cache-policy', 'cors', 'decoded-length', 'spa-fallback'], 'every module rule, in order')
  t.match(report.findings.find(f => f.rule === 'dotfiles'), { status: 'pass', url: `${good.url}/` })
  t.ok(report.findings.every(f => f.status === 'pass'))
})

t.test('usage errors exit 2 with one line; --help lists every rule and exits 0', async t => {
  for (const [args, message] of [
    [[], /missing <url>/],
    [['ftp://example.com/a.wasm'], /not an http\(s\) URL: ftp:\/\/example\.com\/a\.wasm/],
    [['not a url'], /not an http\(s\) URL/],
    [['--timeout', 'soon', 'http://127.0.0.1:1/'], /--timeout: expected a duration like 10s or 5000ms, got "soon"/],
    [['--timeout', 'http://127.0.0.1:1/'], /--timeout: expected a duration like 10s or 5000ms, got "http:\/\/127\.0\.0\.1:1\/"/],
    [['--bogus', 'http://127.0.0.1:1/'], /^wasm-serve check: unknown flag --bogus \(see wasm-serve check --help\)$/m],
    [['--timeot', '3s', 'http://127.0.0.1:1/'], /^wasm-serve check: unknown flag --timeot \(did you mean --timeout\?\) \(see wasm-serve check --help\)$/m],
  ] as Array<[string[], RegExp]>) {
    const out = await run(t, args)
    t.equal(out.code, 2, args.join(' '))
    t.match(out.stderr, message)
    t.equal(out.stderr.trim().split('\n').length, 1, 'one line')
    t.equal(out.stdout, '')
  }
  const help = await run(t, ['--help'])
  t.equal(help.code, 0)
  for (const id of RULE_IDS) t.match(help.stdout, new RegExp(`^  ${id} `, 'm'), id)
})

t.test('a server that never answers: reachable FAILs within the timeout', async t => {
  const silent = await serve(t, () => {})
  const out = await run(t, ['--timeout', '300ms', `${silent}/app.wasm`])
  t.equal(out.code, 1)
  t.match(out.stdout, new RegExp(`^FAIL  reachable       ${silent}/app\\.wasm  no response within 300 ms$`, 'm'))
  t.ok(out.ms < 5000, `done in ${out.ms} ms`)
})

t.test('redirects: a chain is followed and shown; a loop is a FAIL naming it', async t => {
  const target = await startBadServer(t, { 'mod.wasm': SQLITE }, NO_FAULTS)
  const hops = await serve(t, (req, res) => {
    const next: Record<string, string> = { '/a.wasm': '/b.wasm', '/b.wasm': `${target}/mod.wasm`, '/loop1.wasm': '/loop2.wasm', '/loop2.wasm': '/loop1.wasm' }
    res.writeHead(next[req.url!] !== undefined ? 302 : 404, next[req.url!] !== undefined ? { location: next[req.url!] } : {}).end()
  })
  const out = await run(t, ['--json', `${hops}/a.wasm`, `${hops}/loop1.wasm`])
  const report = JSON.parse(out.stdout) as Report
  t.equal(out.code, 1, 'the loop fails')
  t.match(report.findings.find(f => f.rule === 'reachable' && f.url === `${hops}/a.wasm`), { status: 'pass', evidence: `200 via ${hops}/a.wasm → ${hops}/b.wasm → ${target}/mod.wasm` })
  t.match(report.findings.find(f => f.url === `${hops}/a.wasm` && f.rule === 'range'), { status: 'pass' }, 'the module at the end is audited')
  t.match(report.findings.find(f => f.rule === 'reachable' && f.url === `${hops}/loop1.wasm`), { status: 'fail', evidence: `redirect loop: ${hops}/loop1.wasm → ${hops}/loop2.wasm → ${hops}/loop1.wasm` })
})
