// What the CLI shows a person at a terminal and a script on a pipe (docs/delivery.md §1 CLI, §5):
// the formatter of human log lines, the banner, the start-up warnings, the browser opener, as
// functions; then the real CLI spawned without a terminal (and under `script` for a pseudo-terminal).
import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { chmodSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { request } from 'undici'
import { bannerText, isLoopback, localUrl, networkUrls, openerFor, servingLine, startWarnings, type WarningInput } from '../src/banner.js'
import { chooseFormat, formatBytes, formatRecord, prettyStream, useColour } from '../src/log-format.js'
import { resolveOptions } from '../src/options.js'
import { makeSite } from './helpers/site.js'
import { cleanEnv, CLI, ROOT, runCli, serveCli, SERVING, until, type CliProcess } from './helpers/cli.js'
import { until as poll } from './helpers/poll.js'

const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version
const REQUEST = { level: 30, time: 1, pid: 7, hostname: 'h', reqId: 'req-1', method: 'GET', url: '/app.wasm', status: 200, encoding: 'br', bytes: 339551, ms: 2, msg: 'request' }

t.test('a request record becomes one human line: method, url, status, encoding, bytes, time', async t => {
  t.equal(formatRecord(REQUEST, false), 'GET /app.wasm 200 br 339,551 B 2 ms')
  t.equal(formatRecord({ ...REQUEST, method: 'HEAD', url: '/a', encoding: 'identity', bytes: 0, ms: 0.4 }, false), 'HEAD /a 200 0 B 0.4 ms', 'identity is not named')
  t.equal(formatBytes(1234567890), '1,234,567,890 B')
})

t.test('the status is coloured by class only when colour is on', async t => {
  const cases: Array<[number, number]> = [[200, 32], [304, 36], [404, 33], [503, 31]]
  for (const [status, code] of cases) {
    t.equal(formatRecord({ ...REQUEST, status }, true), `GET /app.wasm \x1b[${code}m${status}\x1b[0m br 339,551 B 2 ms`, `${status}`)
  }
  t.notMatch(formatRecord({ ...REQUEST, status: 500 }, false), '\x1b', 'no escape codes without colour')
})

t.test('other records: the message, the level unless info, fields sorted; Fastify\'s listening line is dropped', async t => {
  t.equal(formatRecord({ level: 30, time: 1, pid: 1, hostname: 'h', msg: 'Server listening at http://127.0.0.1:8080' }, false), undefined)
  t.equal(formatRecord({ level: 40, time: 1, pid: 1, hostname: 'h', preload: '/x.wasm', msg: 'preload names no file' }, false), 'warn: preload names no file (preload=/x.wasm)')
  t.equal(formatRecord({ level: 30, time: 1, msg: 'shut down', signal: 'SIGTERM', cut: 0 }, false), 'shut down (cut=0, signal=SIGTERM)')
  t.equal(formatRecord({ level: 50, msg: 'request failed', err: { type: 'Error', message: 'boom' } }, false), 'error: request failed (err=boom)')
  t.equal(formatRecord({ level: 40, msg: 'bad\u001b[2Jname' }, false), 'warn: bad\\u001b[2Jname', 'control characters from a record never reach the terminal raw')
})

t.test('pretty on a terminal, JSON otherwise; colour only on a terminal without NO_COLOR', async t => {
  t.equal(chooseFormat('auto', { isTTY: true }), 'pretty')
  t.equal(chooseFormat('auto', {}), 'json')
  t.equal(chooseFormat('json', { isTTY: true }), 'json')
  t.equal(chooseFormat('pretty', {}), 'pretty')
  t.equal(useColour({ isTTY: true }, {}), true)
  t.equal(useColour({ isTTY: true }, { NO_COLOR: '1' }), false)
  t.equal(useColour({ isTTY: true }, { NO_COLOR: '' }), true, 'an empty NO_COLOR does not count (no-color.org)')
  t.equal(useColour({}, {}), false)
})

t.test('the pretty stream formats whole lines, also when a record arrives in two writes', async t => {
  const out = new PassThrough()
  let text = ''
  out.setEncoding('utf8').on('data', (s: string) => { text += s })
  const stream = prettyStream(out, false)
  const line = JSON.stringify(REQUEST) + '\n'
  stream.write(line.slice(0, 20))
  stream.write(line.slice(20) + JSON.stringify({ level: 30, msg: 'Server listening at http://x' }) + '\n')
  await poll(() => text.length > 0, { timeout: 2000, what: 'the formatted line' })
  t.equal(text, 'GET /app.wasm 200 br 339,551 B 2 ms\n')
})

t.test('URLs: localhost for a wildcard bind, every external IPv4 as a network URL, none on loopback', async t => {
  const interfaces = {
    lo: [{ address: '127.0.0.1', family: 'IPv4', internal: true }],
    eth0: [{ address: '192.168.1.20', family: 'IPv4', internal: false }, { address: 'fe80::1', family: 'IPv6', internal: false }],
    wlan0: [{ address: '10.0.0.5', family: 'IPv4', internal: false }],
  } as unknown as Parameters<typeof networkUrls>[3]
  t.same(networkUrls('0.0.0.0', 8080, 'http', interfaces), ['http://192.168.1.20:8080', 'http://10.0.0.5:8080'])
  t.same(networkUrls('::', 8443, 'https', interfaces), ['https://192.168.1.20:8443', 'https://10.0.0.5:8443'])
  t.same(networkUrls('127.0.0.1', 8080, 'http', interfaces), [])
  t.same(networkUrls('192.168.1.20', 8080, 'http', interfaces), ['http://192.168.1.20:8080'], 'a specific address is its own network URL')
  t.equal(localUrl('http://127.0.0.1:8080', '0.0.0.0'), 'http://localhost:8080')
  t.equal(localUrl('http://[::]:8080', '::'), 'http://localhost:8080')
  t.equal(localUrl('https://[::1]:8443', '::1'), 'https://localhost:8443')
  t.equal(localUrl('http://127.0.0.1:8080', '127.0.0.1'), 'http://127.0.0.1:8080')
  for (const host of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost']) t.ok(isLoopback(host), host)
  for (const host of ['0.0.0.0', '::', '192.168.1.20']) t.notOk(isLoopback(host), host)
})

t.test('the banner: URLs first, then every feature on or off, the memory budget and the file count', async t => {
  const features = { ...resolveOptions({}), listing: true }
  const plain = bannerText({ version: '1.2.3', label: './dist', local: 'http://localhost:8080', network: ['http://192.168.1.20:8080'], tls: undefined, features, files: 3 })
  t.equal(plain, [
    '',
    '  wasm-serve 1.2.3',
    '',
    '  Serving      ./dist (3 files)',
    '  Local        http://localhost:8080',
    '  Network      http://192.168.1.20:8080',
    '  HTTPS        off (HTTP/1.1)',
    '  Isolation    off',
    '  CORS         off',
    '  SPA          off',
    '  Early hints  off',
    '  Listing      on for directories without index.html',
    '  Memory       256 MB budget',
    '',
    '  Ctrl+C to stop',
    '',
    '',
  ].join('\n'))
  const on = { ...resolveOptions({ crossOriginIsolation: 'credentialless', cors: { origin: ['https://a.example'] }, spa: 'app.html', earlyHints: true, memoryBudget: '64MB' }), listing: false }
  const tls = { cert: '', key: '', fingerprint256: 'AB:CD', selfSigned: false }
  const text = bannerText({ version: '1.2.3', label: 'site\nfake', local: 'https://localhost:8443', network: [], tls, features: on, files: 1 })
  t.match(text, '  Serving      site\\nfake (1 file)\n', 'the label printed safely, one file')
  t.notMatch(text, 'Network', 'no network row on loopback')
  t.match(text, '  HTTPS        on, HTTP/2 with HTTP/1.1 fallback; certificate SHA-256 AB:CD\n')
  t.match(text, '  Isolation    on (COOP same-origin, COEP credentialless)\n')
  t.match(text, '  CORS         on, https://a.example\n')
  t.match(text, '  SPA          on, unknown pages get app.html\n')
  t.match(text, '  Early hints  on (103)\n')
  t.match(text, '  Listing      off\n')
  t.match(text, '  Memory       64 MB budget\n')
  t.equal(servingLine('1.2.3', 'dist', 'http://127.0.0.1:8080', false), 'wasm-serve 1.2.3 serving dist at http://127.0.0.1:8080\n')
  t.match(servingLine('1.2.3', 'dist', 'https://127.0.0.1:8443', true), SERVING)
})

t.test('start-up warnings: empty root, no index.html, features a LAN page over plain HTTP loses', async t => {
  const base: WarningInput = { label: 'dist', files: 4, hasIndex: true, listing: true, isolation: false, hasBrSiblings: false, tls: false, network: [] }
  t.same(startWarnings(base), [], 'a plain local site: nothing to say')
  t.same(startWarnings({ ...base, files: 0, hasIndex: false }), ['no files to serve in dist: is a volume mounted?'])
  t.same(startWarnings({ ...base, hasIndex: false }), ['no index.html in dist: / answers with a directory listing'])
  t.same(startWarnings({ ...base, hasIndex: false, listing: false }), ['no index.html in dist: / answers 404'])
  const lan = { ...base, network: ['http://192.168.1.20:8080', 'http://10.0.0.5:8080'] }
  t.same(startWarnings({ ...lan, isolation: 'require-corp', hasBrSiblings: true }), ['not a secure context for http://192.168.1.20:8080: crossOriginIsolated stays false and browsers do not offer br; use --https'])
  for (const isolation of ['credentialless', 'document', 'document-credentialless'] as const) {
    t.same(startWarnings({ ...lan, isolation }), ['not a secure context for http://192.168.1.20:8080: crossOriginIsolated stays false; use --https'], `${isolation} is ignored too`)
  }
  t.same(startWarnings({ ...lan, isolation: 'report' }), ['--isolate=report: Chromium posts reports only from https:// pages, so none reach the report sink over http (even on localhost); use --https, or serve behind HTTPS (DevTools\' Issues panel lists them meanwhile)'], 'report mode: one warning, LAN or not')
  t.same(startWarnings({ ...lan, isolation: 'document', local: 'http://localhost:8080' }), ['not a secure context for http://192.168.1.20:8080: crossOriginIsolated stays false; use --https, or open http://localhost:8080 on this machine'], 'a wildcard bind: localhost is the fix on this machine')
  t.same(startWarnings({ ...lan, isolation: 'document', local: 'http://192.168.1.20:8080' }), ['not a secure context for http://192.168.1.20:8080: crossOriginIsolated stays false; use --https'], 'bound to the LAN address alone: localhost would not answer')
  t.same(startWarnings({ ...lan, hasBrSiblings: true }), ['not a secure context for http://192.168.1.20:8080: browsers do not offer br; use --https'])
  t.same(startWarnings(lan), [], 'nothing lost without isolation or br siblings')
  t.same(startWarnings({ ...base, isolation: 'require-corp', hasBrSiblings: true }), [], 'loopback is a secure context')
  t.same(startWarnings({ ...lan, isolation: 'require-corp', tls: true }), [], 'HTTPS is a secure context')
})

t.test('the browser opener per platform, or the one WASM_SERVE_OPENER names', async t => {
  t.same(openerFor('linux', {}), { command: 'xdg-open', args: [] })
  t.same(openerFor('darwin', {}), { command: 'open', args: [] })
  t.same(openerFor('win32', {}), { command: 'cmd', args: ['/c', 'start', '""'] })
  t.same(openerFor('linux', { WASM_SERVE_OPENER: '/usr/bin/firefox' }), { command: '/usr/bin/firefox', args: [] })
})

/** The lines the CLI wrote to stderr once it has exited. */
async function stderrLines (proc: CliProcess): Promise<string[]> {
  proc.child.kill('SIGTERM')
  await proc.exited
  return proc.out.stderr.split('\n').filter(l => l !== '')
}

t.test('the CLI without a terminal: JSON request lines by default, human ones with --log-format pretty', async t => {
  const site = makeSite(t, { 'index.html': '<!doctype html><title>x</title>', 'app.wasm': 'x'.repeat(100) })
  const json = await serveCli(t, [site, '--port', '0'])
  await (await request(`${json.url}/app.wasm`, { headers: { 'accept-encoding': 'identity' } })).body.dump()
  await until(json, () => json.out.stdout.includes('"msg":"request"'), 'a JSON request line')
  t.match(json.out.stdout, /^\{.*"url":"\/app\.wasm","status":200,"encoding":"identity","bytes":100,.*\}$/m)
  t.same(await stderrLines(json), [], 'a site with index.html on loopback: no warning')

  const pretty = await serveCli(t, [site, '--port', '0', '--log-format', 'pretty'])
  await (await request(`${pretty.url}/app.wasm`, { headers: { 'accept-encoding': 'identity' } })).body.dump()
  await until(pretty, () => /GET \/app\.wasm/.test(pretty.out.stdout), 'a human request line')
  t.match(pretty.out.stdout, /^GET \/app\.wasm 200 100 B [\d.]+ ms$/m, 'no colour on a pipe')
  t.notMatch(pretty.out.stdout, /^\{/m, 'no JSON line')
  t.notMatch(pretty.out.stdout, 'Server listening', 'Fastify\'s listening line is left to the banner')
})

t.test('the CLI warns on stderr about an empty root and a root without index.html', async t => {
  const empty = makeSite(t, {})
  const proc = await serveCli(t, [empty, '--port', '0'])
  t.same(await stderrLines(proc), [`wasm-serve: warning: no files to serve in ${empty}: is a volume mounted?`])
  const noIndex = makeSite(t, { 'app.wasm': 'x' })
  const listed = await serveCli(t, [noIndex, '--port', '0'])
  t.same(await stderrLines(listed), [`wasm-serve: warning: no index.html in ${noIndex}: / answers with a directory listing`])
  const unlisted = await serveCli(t, [noIndex, '--port', '0', '--no-listing'])
  t.same(await stderrLines(unlisted), [`wasm-serve: warning: no index.html in ${noIndex}: / answers 404`])
})

t.test('--isolate and br siblings over plain HTTP on every address: a warning that names a LAN URL and --https', async t => {
  const lan = networkUrls('0.0.0.0', 1, 'http')
  if (lan.length === 0) return t.skip('this machine has no external IPv4 address: nothing but loopback to warn about', () => {})
  const site = makeSite(t, { 'index.html': '<!doctype html>', 'app.wasm': 'x', 'app.wasm.br': 'y' })
  const proc = await serveCli(t, [site, '--port', '0', '--host', '0.0.0.0', '--isolate'])
  const port = new URL(proc.url).port
  t.same(await stderrLines(proc), [`wasm-serve: warning: not a secure context for ${lan[0]!.replace(':1', `:${port}`)}: crossOriginIsolated stays false and browsers do not offer br; use --https, or open http://localhost:${port} on this machine`])
  const local = await serveCli(t, [site, '--port', '0', '--isolate'])
  t.same(await stderrLines(local), [], 'on loopback: a secure context, no warning')
})

t.test('--open runs the opener with the local URL, and a missing opener is a one-line note', async t => {
  const dir = makeSite(t, { 'index.html': '<!doctype html>' })
  const opened = join(dir, 'opened.txt')
  const opener = join(dir, 'opener.sh')
  writeFileSync(opener, `#!/bin/sh\nprintf '%s' "$1" > '${opened}'\n`)
  chmodSync(opener, 0o755)
  const proc = await serveCli(t, [dir, '--port', '0', '--open'], { env: { WASM_SERVE_OPENER: opener } })
  await poll(() => { try { return readFileSync(opened, 'utf8') !== '' } catch { return false } }, { timeout: 10_000, what: 'the opener to run' })
  t.equal(readFileSync(opened, 'utf8'), proc.url, 'the opener got the local URL')
  const missing = await serveCli(t, [dir, '--port', '0', '--open'], { env: { WASM_SERVE_OPENER: join(dir, 'no-such-browser') } })
  await until(missing, () => missing.out.stderr.includes('could not open'), 'the note')
  t.same(await stderrLines(missing), [`wasm-serve: could not open a browser (${join(dir, 'no-such-browser')}: ENOENT); open ${missing.url}`])
  t.equal(missing.child.exitCode, 0, 'the server ran on and stopped cleanly')
})

t.test('on a pseudo-terminal: the banner first, no JSON, human request lines', async t => {
  if (spawnSync('script', ['--version'], { stdio: 'ignore' }).status !== 0) return t.skip('`script` (util-linux) is not installed: no way to give the CLI a pseudo-terminal', () => {})
  const site = makeSite(t, { 'index.html': '<!doctype html>', 'app.wasm': 'x'.repeat(10) })
  const cmd = `exec '${process.execPath}' '${CLI}' '${site}' --port 0 --spa`
  // stdin stays an open pipe: script ends the session when its stdin reaches EOF.
  const child = spawn('script', ['-qec', cmd, '/dev/null'], { cwd: ROOT, env: cleanEnv({ NO_COLOR: '1' }), stdio: ['pipe', 'pipe', 'pipe'], detached: true })
  const proc: CliProcess = { child, out: { stdout: '', stderr: '' }, exited: new Promise(resolve => child.on('exit', (code, signal) => resolve({ code, signal }))) }
  child.stdout.setEncoding('utf8').on('data', (s: string) => { proc.out.stdout += s })
  t.teardown(() => { try { process.kill(-child.pid!, 'SIGKILL') } catch { /* already gone */ } })
  await until(proc, () => proc.out.stdout.includes('Ctrl+C'), 'the banner')
  const local = /Local +(http:\/\/127\.0\.0\.1:\d+)/.exec(proc.out.stdout)![1]!
  await (await request(`${local}/app.wasm`, { headers: { 'accept-encoding': 'identity' } })).body.dump()
  await until(proc, () => proc.out.stdout.includes('GET /app.wasm'), 'the request line')
  const text = proc.out.stdout.replace(/\r/g, '')
  t.ok(text.trimStart().startsWith(`wasm-serve ${VERSION}`), 'the banner is the first thing printed')
  t.match(text, /Serving +\S+ \(2 files\)/)
  t.match(text, /SPA +on, unknown pages get index\.html/)
  t.match(text, /Memory +256 MB budget/)
  t.notMatch(text, /^\{/m, 'no JSON line')
  t.match(text, /^GET \/app\.wasm 200 10 B [\d.]+ ms$/m, 'a human request line, uncoloured under NO_COLOR')
  process.kill(-child.pid!, 'SIGTERM')
  await proc.exited
})

t.test('--log-format takes pretty, json or auto and nothing else', async t => {
  const proc = runCli(t, ['--log-format', 'xml'])
  t.equal((await proc.exited).code, 2)
  t.match(proc.out.stderr, /--log-format: expected auto, pretty or json, got "xml"/)
})
