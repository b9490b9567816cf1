// The `wasm-serve` CLI, spawned for real (`node dist/cli.js`, built by `npm test`'s pretest) and
// talked to over HTTP with undici (docs/delivery.md §1 CLI, §3, §5). Servers bind 127.0.0.1.
import t, { type Test } from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { connect as http2Connect } from 'node:http2'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Agent, request } from 'undici'
import { FLAGS } from '../src/config.js'
import { cleanEnv, CLI, ROOT, runCli, serveCli, SERVING, until, type CliProcess } from './helpers/cli.js'
import { readRest } from './helpers/http.js'
import { until as poll } from './helpers/poll.js'

const SQLITE = join(ROOT, 'node_modules/@sqlite.org/sqlite-wasm/sqlite-wasm/jswasm/sqlite3.wasm')
const FFMPEG = join(ROOT, 'node_modules/@ffmpeg/core/dist/esm/ffmpeg-core.wasm')
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version

/** A site with a real wasm module (sqlite3.wasm, 856 KB); BIG holds the 32 MB ffmpeg core for slow downloads. */
const SITE = mkdtempSync(join(tmpdir(), 'wasm-serve-cli-'))
copyFileSync(SQLITE, join(SITE, 'sqlite3.wasm'))
const BIG = mkdtempSync(join(tmpdir(), 'wasm-serve-cli-big-'))
copyFileSync(FFMPEG, join(BIG, 'ffmpeg-core.wasm'))
t.teardown(() => { rmSync(SITE, { recursive: true, force: true }); rmSync(BIG, { recursive: true, force: true }) })

async function freePort (): Promise<number> {
  const server = await occupy(0)
  const port = (server.address() as { port: number }).port
  await new Promise(resolve => server.close(resolve))
  return port
}

function occupy (port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => resolve(server))
  })
}

async function isFree (port: number): Promise<boolean> {
  try { const s = await occupy(port); await new Promise(resolve => s.close(resolve)); return true } catch { return false }
}

const portOf = (url: string) => Number(new URL(url).port)
const requestLines = (stdout: string) => stdout.split('\n').filter(l => l.startsWith('{'))
  .map(l => JSON.parse(l) as Record<string, unknown>).filter(l => l.msg === 'request')
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')

t.test('serves a directory: a wasm request gets application/wasm and the exact bytes', async t => {
  const { url } = await serveCli(t, [SITE, '--port', '0'])
  const res = await request(`${url}/sqlite3.wasm`, { headers: { 'accept-encoding': 'identity' } })
  const body = Buffer.from(await res.body.arrayBuffer())
  t.equal(res.statusCode, 200)
  t.equal(res.headers['content-type'], 'application/wasm')
  t.equal(Number(res.headers['content-length']), readFileSync(SQLITE).length)
  t.ok(body.equals(readFileSync(SQLITE)), 'body is byte for byte sqlite3.wasm')
})

t.test('binds 127.0.0.1 by default', async t => {
  const { url } = await serveCli(t, [SITE, '--port', '0'])
  t.equal(new URL(url).hostname, '127.0.0.1')
})

t.test('binds 127.0.0.1:8080 when no port is given', async t => {
  if (!(await isFree(8080))) return t.skip('port 8080 is taken on this machine; the fallback test below covers this path', () => {})
  const { url, out } = await serveCli(t, [SITE])
  t.equal(url, 'http://127.0.0.1:8080')
  t.notMatch(out.stderr, /in use/)
  const res = await request(`${url}/healthz`)
  await res.body.dump()
  t.equal(res.statusCode, 200)
})

t.test('when the default port 8080 is taken it says so and serves on another one', async t => {
  // The test before may still be letting 8080 go. Whoever holds it in the end (this test, or
  // something else on the machine), the CLI must move on.
  const blocker = await poll(() => occupy(8080).catch(() => undefined), { timeout: 3000, what: 'port 8080' }).catch(() => undefined)
  t.teardown(() => new Promise(resolve => blocker === undefined ? resolve(undefined) : blocker.close(resolve)))
  const { url, out } = await serveCli(t, [SITE])
  const m = /^wasm-serve: port (\d+) is in use, using (\d+) instead$/m.exec(out.stderr)
  t.ok(m, 'stderr says the port is in use', { stderr: out.stderr })
  t.equal(Number(m?.[1]), 8080, 'names the default port')
  t.equal(portOf(url), Number(m?.[2]), 'serves on the port it says it uses')
  t.not(portOf(url), 8080)
  const res = await request(`${url}/sqlite3.wasm`)
  await res.body.dump()
  t.equal(res.statusCode, 200)
})

t.test('a port asked for that is taken is an error naming it and what asked for it, exit 1', async t => {
  // Behind a port mapping or on a PaaS only the port asked for is reachable: another one would serve nobody.
  const blocker = await occupy(0)
  t.teardown(() => new Promise(resolve => blocker.close(resolve)))
  const taken = (blocker.address() as { port: number }).port
  const dir = mkdtempSync(join(tmpdir(), 'wasm-serve-cli-port-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const config = join(dir, 'port.json')
  writeFileSync(config, JSON.stringify({ port: taken }))
  const cases: Array<[string, string[], Record<string, string>, string]> = [
    ['--port', [SITE, '--port', String(taken)], {}, '--port'],
    ['-p', [SITE, '-p', String(taken)], {}, '--port'],
    ['PORT', [SITE], { PORT: String(taken) }, 'PORT'],
    ['WASM_SERVE_PORT', [SITE], { WASM_SERVE_PORT: String(taken) }, 'WASM_SERVE_PORT'],
    ['the config file', [SITE, '--config', config], {}, `the config file ${config}`],
  ]
  await Promise.all(cases.map(async ([what, args, env, from]) => {
    const proc = runCli(t, args, { env })
    t.equal((await proc.exited).code, 1, `${what}: exit 1, a failure to bind`)
    t.equal(proc.out.stderr, `wasm-serve: port ${taken} on 127.0.0.1 is in use (asked for by ${from}): stop what holds it, or ask for another port\n`, `${what}: one line`)
    t.notMatch(proc.out.stdout, SERVING, `${what}: never served`)
  }))
})

t.test('takes the address from the HOST and PORT environment variables', async t => {
  const port = await freePort()
  // All of 127.0.0.0/8 is loopback on Linux, so 127.0.0.2 proves HOST is used, not the default.
  const { url } = await serveCli(t, [SITE], { env: { HOST: '127.0.0.2', PORT: String(port) } })
  t.equal(url, `http://127.0.0.2:${port}`)
  const res = await request(`${url}/sqlite3.wasm`)
  await res.body.dump()
  t.equal(res.statusCode, 200)
})

t.test('--host and --port beat HOST and PORT', async t => {
  const [a, b] = [await freePort(), await freePort()]
  const { url } = await serveCli(t, [SITE, '--host', '127.0.0.1', '--port', String(b)], { env: { HOST: '127.0.0.2', PORT: String(a) } })
  t.equal(url, `http://127.0.0.1:${b}`)
})

t.test('without a TTY it prints one line saying what it serves and where', async t => {
  const server = await serveCli(t, [SITE, '--port', '0'])
  const { out, url } = server
  // Everything the CLI says at start-up is written before it listens; a request's log line, written
  // after that, proves nothing more is coming from start-up.
  await (await request(`${url}/healthz`)).body.dump()
  await until(server, () => requestLines(out.stdout).length === 1, 'the request line')
  const plain = out.stdout.split('\n').filter(l => l !== '' && !l.startsWith('{'))
  t.same(plain, [`wasm-serve ${VERSION} serving ${SITE} at ${url}`], 'exactly one non-log line')
  t.equal(out.stderr, `wasm-serve: warning: no index.html in ${SITE}: / answers with a directory listing\n`, 'on stderr only the warning that the site has no index.html')
})

t.test('on a TTY it prints a banner', async t => {
  if (spawnSync('script', ['--version'], { stdio: 'ignore' }).status !== 0) return t.skip('`script` (util-linux) is not installed: no way to give the CLI a pseudo-terminal', () => {})
  const cmd = `exec '${process.execPath}' '${CLI}' '${SITE}' --port 0`
  // stdin stays an open pipe: script ends the session when its stdin reaches EOF.
  const child = spawn('script', ['-qec', cmd, '/dev/null'], { cwd: ROOT, env: cleanEnv(), stdio: ['pipe', 'pipe', 'pipe'], detached: true })
  const proc: CliProcess = { child, out: { stdout: '', stderr: '' }, exited: new Promise(resolve => child.on('exit', (code, signal) => resolve({ code, signal }))) }
  child.stdout.setEncoding('utf8').on('data', (s: string) => { proc.out.stdout += s })
  child.stderr.setEncoding('utf8').on('data', (s: string) => { proc.out.stderr += s })
  t.teardown(() => { try { process.kill(-child.pid!, 'SIGKILL') } catch { /* already gone */ } })
  await until(proc, () => proc.out.stdout.includes('Ctrl+C'), 'the banner')
  const text = proc.out.stdout.replace(/\r/g, '')
  t.match(text, `wasm-serve ${VERSION}`)
  t.match(text, new RegExp(`Serving +${SITE.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`))
  const local = /Local +(http:\/\/127\.0\.0\.1:\d+)/.exec(text)
  t.ok(local, 'banner shows the local URL')
  t.notMatch(text, SERVING, 'not the one-line form')
  const res = await request(`${local![1]}/healthz`)
  await res.body.dump()
  t.equal(res.statusCode, 200, 'the URL in the banner answers')
  process.kill(-child.pid!, 'SIGTERM')
  await proc.exited
})

t.test('logs one JSON line per request with method, url, status, encoding, bytes and ms', async t => {
  const server = await serveCli(t, [SITE, '--port', '0'])
  const { url, out } = server
  for (const [method, path] of [['GET', '/sqlite3.wasm'], ['HEAD', '/sqlite3.wasm'], ['GET', '/missing.wasm']] as const) {
    const res = await request(`${url}${path}`, { method, headers: { 'accept-encoding': 'identity' } })
    await res.body.dump()
  }
  // A fourth request's line, written after the first three's, proves no extra line came for them.
  await (await request(`${url}/healthz`)).body.dump()
  await until(server, () => requestLines(out.stdout).length >= 4, 'four request lines')
  const lines = requestLines(out.stdout)
  t.equal(lines.length, 4, 'one line per request, no more')
  t.match(lines[0], { method: 'GET', url: '/sqlite3.wasm', status: 200, encoding: 'identity', bytes: readFileSync(SQLITE).length, ms: Number })
  t.match(lines[1], { method: 'HEAD', url: '/sqlite3.wasm', status: 200 })
  t.match(lines[2], { method: 'GET', url: '/missing.wasm', status: 404 })
})

t.test('--quiet and --log-level warn log no request lines', async t => {
  for (const flags of [['--quiet'], ['-q'], ['--log-level', 'warn']]) {
    const { url, out, child, exited } = await serveCli(t, [SITE, '--port', '0', ...flags])
    for (let i = 0; i < 3; i++) {
      const res = await request(`${url}/sqlite3.wasm`)
      await res.body.dump()
    }
    // Once the process has exited, everything it would have logged is in `out`.
    child.kill('SIGTERM')
    await exited
    t.same(requestLines(out.stdout), [], `${flags.join(' ')}: no request lines`)
    t.match(out.stdout, SERVING, `${flags.join(' ')}: still says where it serves`)
  }
})

t.test('--help lists every flag and exits 0', async t => {
  const proc = runCli(t, ['--help'])
  const { code } = await proc.exited
  t.equal(code, 0)
  t.match(proc.out.stdout, /^Usage: wasm-serve/)
  for (const flag of FLAGS) t.match(proc.out.stdout, `--${flag.name}`, `mentions --${flag.name}`)
  t.match(proc.out.stdout, 'wasm-serve compress')
  t.match(proc.out.stdout, /^Exit codes: 0 stopped cleanly .*; 2 a usage, option, config file, directory or\ncertificate error, nothing served; 1 any other failure/m, 'lists the exit codes')
  const short = runCli(t, ['-h'])
  t.equal((await short.exited).code, 0)
  t.equal(short.out.stdout, proc.out.stdout, '-h is --help')
})

t.test('--version prints the version from package.json and exits 0', async t => {
  for (const flag of ['--version', '-v']) {
    const proc = runCli(t, [flag])
    const { code } = await proc.exited
    t.equal(code, 0)
    t.equal(proc.out.stdout.trim(), `wasm-serve ${VERSION}`)
  }
})

t.test('a missing directory is an error naming it, exit 2, nothing bound', async t => {
  const port = await freePort()
  const missing = join(SITE, 'no-such-dir')
  const proc = runCli(t, [missing, '--port', String(port)])
  const { code } = await proc.exited
  t.equal(code, 2)
  t.match(proc.out.stderr, missing, 'stderr names the directory')
  t.equal(proc.out.stderr.trim().split('\n').length, 1, 'one line, no stack trace')
  t.notMatch(proc.out.stdout, /listening|serving/)
  t.ok(await isFree(port), 'the port was never taken')
})

t.test('a missing directory is named as the user typed it', async t => {
  const proc = runCli(t, ['./nope-dir', '--port', '0'], { cwd: SITE })
  t.equal((await proc.exited).code, 2)
  t.match(proc.out.stderr, './nope-dir')
})

t.test('an unknown flag is a clear error with exit 2', async t => {
  const proc = runCli(t, [SITE, '--prot', '8081'])
  const { code } = await proc.exited
  t.equal(code, 2)
  t.equal(proc.out.stderr, 'wasm-serve: unknown flag --prot (did you mean --port?) (see wasm-serve --help)\n', 'names the flag and the nearest one')
  t.notMatch(proc.out.stdout, /serving/)
})

t.test('the mistakes a new user makes: each answered in one line naming the flag, the value and what is allowed, exit 2', async t => {
  const page = join(SITE, 'page.html')
  writeFileSync(page, '<!doctype html><title>page</title>\n')
  t.teardown(() => rmSync(page, { force: true }))
  const cases: Array<[string[], string | RegExp]> = [
    [[page, '-p0'], `wasm-serve: ${page} is a file, not a directory: serve its folder with \`wasm-serve ${SITE}\`\n`],
    [['--port', 'abc', SITE], 'wasm-serve: --port: expected an integer 0–65535, got "abc" (see wasm-serve --help)\n'],
    [['--log-level', 'verbose', SITE, '-p0'], 'wasm-serve: --log-level: expected fatal, error, warn, info, debug, trace or silent, got "verbose" (see wasm-serve --help)\n'],
    [['--isolate=credentialles', SITE, '-p0'], 'wasm-serve: --isolate: expected require-corp, credentialless, document, document-credentialless or report, got "credentialles" (did you mean credentialless?) (see wasm-serve --help)\n'],
    [['--bogus', SITE, '-p0'], 'wasm-serve: unknown flag --bogus (see wasm-serve --help)\n'],
    [['--isolat', SITE, '-p0'], 'wasm-serve: unknown flag --isolat (did you mean --isolate?) (see wasm-serve --help)\n'],
    [['compres', SITE], 'wasm-serve: unknown command "compres" (did you mean compress?) (see wasm-serve --help)\n'],
    // ENOTFOUND, or EAI_AGAIN where no resolver answers: either way no such host.
    [[SITE, '--host', 'localhost:3000'], /^wasm-serve: --host: cannot listen on "localhost:3000": no such host \((ENOTFOUND|EAI_AGAIN)\); give a name or an address of this machine, and the port with --port \(see wasm-serve --help\)\n$/],
    [[SITE, '--host', '192.0.2.1', '-p0'], 'wasm-serve: --host: cannot listen on "192.0.2.1": no interface of this machine has that address (EADDRNOTAVAIL); give a name or an address of this machine, and the port with --port (see wasm-serve --help)\n'],
  ]
  await Promise.all(cases.map(async ([args, stderr]) => {
    const proc = runCli(t, args)
    t.equal((await proc.exited).code, 2, `${args.join(' ')}: exit 2`)
    if (typeof stderr === 'string') t.equal(proc.out.stderr, stderr, args.join(' '))
    else t.match(proc.out.stderr, stderr, args.join(' '))
    t.notMatch(proc.out.stdout, SERVING)
  }))
  const relative = runCli(t, ['page.html', '-p0'], { cwd: SITE })
  t.equal((await relative.exited).code, 2)
  t.equal(relative.out.stderr, 'wasm-serve: page.html is a file, not a directory: serve its folder with `wasm-serve .`\n', 'named as typed')
})

t.test('--cors, --isolate and --spa take a value after a space, and leave the directory alone', async t => {
  const page = join(SITE, 'app.html')
  writeFileSync(page, '<!doctype html><title>app</title>\n')
  t.teardown(() => rmSync(page, { force: true }))
  const cases: Array<[string[], string, Record<string, string>, Record<string, string | undefined>]> = [
    [[SITE, '--cors', 'https://a.example'], '/sqlite3.wasm', { origin: 'https://a.example' }, { 'access-control-allow-origin': 'https://a.example' }],
    [['--isolate', 'credentialless', SITE], '/app.html', {}, { 'cross-origin-embedder-policy': 'credentialless' }],
    [['--isolate', SITE], '/app.html', {}, { 'cross-origin-embedder-policy': 'require-corp' }],
    [[SITE, '--spa', 'app.html'], '/some/route', { accept: 'text/html' }, { 'content-type': 'text/html; charset=utf-8' }],
  ]
  for (const [args, path, headers, want] of cases) {
    const { url, out, child, exited } = await serveCli(t, [...args, '--port', '0'])
    t.match(out.stdout, SERVING)
    const res = await request(`${url}${path}`, { headers })
    await res.body.dump()
    t.equal(res.statusCode, 200, `${args.join(' ')}: GET ${path}`)
    for (const [name, value] of Object.entries(want)) t.equal(res.headers[name], value, `${args.join(' ')}: ${name}`)
    child.kill('SIGTERM')
    await exited
  }
})

t.test('two directories are a clear error with exit 2', async t => {
  const proc = runCli(t, [SITE, SITE, '--port', '0'])
  t.equal((await proc.exited).code, 2)
  t.match(proc.out.stderr, /at most one directory/)
})

t.test('SIGTERM lets a slow in-flight download finish with every byte, then exits 0', async t => {
  // No on-the-fly compression here: this test is about the response, the next one about the encoder.
  const { url, child, out, exited } = await serveCli(t, [BIG, '--port', '0'], { env: { WASM_SERVE_COMPRESS: '{"onTheFly":false}' } })
  const expected = readFileSync(FFMPEG)
  // undici stops reading the socket while the body is not consumed, so the server's writes back up.
  const agent = new Agent({ connections: 1 })
  t.teardown(() => agent.close())
  const res = await request(`${url}/ffmpeg-core.wasm`, { dispatcher: agent, headers: { 'accept-encoding': 'identity' }, highWaterMark: 16 * 1024 })
  t.equal(res.statusCode, 200)
  t.equal(Number(res.headers['content-length']), expected.length)
  const chunks: Buffer[] = []
  const body = res.body[Symbol.asyncIterator]()
  chunks.push((await body.next()).value as Buffer)
  let exitedEarly = false
  void exited.then(() => { exitedEarly = true })
  child.kill('SIGTERM')
  // The reader is stalled: once the server has said it is shutting down and refuses new connections,
  // it must still be running, waiting for this response.
  await until({ child, out, exited }, () => out.stdout.includes('shutting down'), 'the shutdown line')
  const fresh = new Agent()
  t.teardown(() => fresh.destroy())
  let refused: unknown
  await until({ child, out, exited }, async () => {
    refused = await request(url, { dispatcher: fresh, headersTimeout: 2000 })
      .then(r => r.body.dump().then(() => r.statusCode), (err: NodeJS.ErrnoException) => err.code)
    return refused === 'ECONNREFUSED'
  }, 'new connections to be refused').catch(() => {})
  t.equal(refused, 'ECONNREFUSED', 'new connections are refused while draining')
  t.notOk(exitedEarly, 'still running while a response is in flight')
  const { received, error } = await readRest(body, chunks)
  t.equal(error, undefined, 'the response was not cut')
  t.equal(received.length, expected.length, 'every byte arrived')
  t.equal(sha(received), sha(expected), 'and they are the right bytes')
  const { code, signal } = await exited
  t.equal(code, 0, 'exit code 0')
  t.equal(signal, null)
  t.match(out.stdout, /"signal":"SIGTERM"/)
})

t.test('SIGTERM exits within a bounded time while a large file is being compressed on the fly', async t => {
  // BIG's 32 MB module has no siblings, so the server starts encoding it (brotli 11 takes minutes);
  // an empty cache dir makes sure the encoding is not simply read back from an earlier run.
  const cacheDir = mkdtempSync(join(tmpdir(), 'wasm-serve-cli-cache-'))
  t.teardown(() => rmSync(cacheDir, { recursive: true, force: true }))
  const server = await serveCli(t, [BIG, '--port', '0'], { env: { WASM_SERVE_COMPRESS: JSON.stringify({ cacheDir }) } })
  const { child, exited } = server
  // The encoder is at work once the process has burnt a second of CPU after listening (/proc on Linux).
  const cpuMs = () => { const f = readFileSync(`/proc/${child.pid!}/stat`, 'utf8').split(') ')[1]!.split(' '); return (Number(f[11]) + Number(f[12])) * 10 }
  const idle = cpuMs()
  await until(server, () => cpuMs() - idle >= 1000, 'a second of encoding', 20_000)
  const started = Date.now()
  child.kill('SIGTERM')
  const outcome = await Promise.race([exited, sleep(15_000, 'timeout' as const)])
  t.not(outcome, 'timeout', 'exited within 15 s of SIGTERM', { waitedMs: Date.now() - started })
  if (outcome !== 'timeout') t.equal(outcome.code, 0, 'exit code 0')
})

t.test('SIGINT closes gracefully and exits 0', async t => {
  const { child, exited, url } = await serveCli(t, [SITE, '--port', '0'])
  const res = await request(`${url}/sqlite3.wasm`)
  await res.body.dump()
  child.kill('SIGINT')
  const { code, signal } = await exited
  t.equal(code, 0)
  t.equal(signal, null)
})

t.test('SIGTERM with an idle keep-alive connection its client never closes: exit 0 once the client has every byte, not at the grace period', async t => {
  const { child, exited, out, url } = await serveCli(t, [SITE, '--port', '0', '--log-format', 'json'])
  const { port } = new URL(url)
  // A browser keeps its pooled connection open after the page loaded: this one reads and never
  // closes, not even its half when the server's FIN arrives.
  const socket = connect({ port: Number(port), host: '127.0.0.1', allowHalfOpen: true })
  t.teardown(() => socket.destroy())
  let received = ''
  socket.on('data', d => { received += d.toString('latin1') })
  const ended = new Promise<void>(resolve => socket.once('end', resolve))
  socket.write('GET /tiny.wasm HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n')
  await poll(() => /\r\n\r\n/.test(received) && received.length >= received.indexOf('\r\n\r\n') + 4 + Number(/content-length: (\d+)/i.exec(received)?.[1] ?? NaN), { what: 'the whole response' })
  child.kill('SIGTERM')
  await ended
  t.pass('the server ended the connection (FIN) without waiting for the client')
  const { code } = await exited
  t.equal(code, 0)
  t.equal(logLines(out.stdout).at(-1)?.msg, 'shut down', 'a clean stop, not the grace period running out')
})

t.test('the connections the kernel shows acknowledged (FIN_WAIT2) are known by their ports', async t => {
  const { acknowledgedConnections } = await import('../src/socket-drain.js')
  const header = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode'
  const tcp = [header,
    '   0: 0100007F:1F90 0100007F:C350 05 00000000:00000000 00:00000000 00000000     0        0 0 1 0000000000000000',
    '   1: 0100007F:1F90 0100007F:C351 04 00000010:00000000 00:00000000 00000000     0        0 0 1 0000000000000000',
    '   2: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 0 1 0000000000000000'].join('\n')
  const tcp6 = [header, '   0: 00000000000000000000000001000000:1F90 00000000000000000000000001000000:D431 05 00000000:00000000 00:00000000 00000000 0 0 0 1 0'].join('\n')
  t.same([...acknowledgedConnections(file => file.endsWith('tcp6') ? tcp6 : tcp)!].sort(), ['8080:50000', '8080:54321'], 'FIN_WAIT2 only: FIN_WAIT1 still has bytes in flight')
  t.equal(acknowledgedConnections(() => { throw new Error('ENOENT') }), undefined, 'no /proc: the kernel does not say')
})

t.test('SIGTERM with no requests exits 0 promptly', async t => {
  const { child, exited } = await serveCli(t, [SITE, '--port', '0'])
  const started = Date.now()
  child.kill('SIGTERM')
  t.equal((await exited).code, 0)
  t.ok(Date.now() - started < 5000, 'within 5 s')
})

t.test('GET /healthz answers 200', async t => {
  const { url } = await serveCli(t, [SITE, '--port', '0'])
  const res = await request(`${url}/healthz`)
  await res.body.dump()
  t.equal(res.statusCode, 200)
})

/** The container's HEALTHCHECK command, `node dist/healthcheck.js`, as Docker runs it. */
function healthcheck (env: Record<string, string>): { status: number | null, stdout: string } {
  const r = spawnSync(process.execPath, [join(ROOT, 'dist/healthcheck.js')], { env: cleanEnv(env), encoding: 'utf8', timeout: 10_000 })
  return { status: r.status, stdout: r.stdout }
}

t.test('the health check reads the port the server bound (any --port) from WASM_SERVE_ADDRESS_FILE, else PORT', async t => {
  const file = join(mkdtempSync(join(tmpdir(), 'wasm-serve-address-')), 'address')
  t.teardown(() => rmSync(join(file, '..'), { recursive: true, force: true }))
  const { url } = await serveCli(t, [SITE, '--port', '0'], { env: { WASM_SERVE_ADDRESS_FILE: file } })
  const port = new URL(url).port
  t.equal(readFileSync(file, 'utf8'), `http://127.0.0.1:${port}\n`)
  const ok = healthcheck({ WASM_SERVE_ADDRESS_FILE: file })
  t.equal(ok.status, 0, ok.stdout)
  t.match(ok.stdout, new RegExp(`^http://127\\.0\\.0\\.1:${port}/healthz: 200 \\{"status":"ok","files":\\d+\\}$`, 'm'))
  t.equal(healthcheck({ PORT: port }).status, 0, 'no file: PORT')
  t.equal(healthcheck({ WASM_SERVE_ADDRESS_FILE: join(file, '..', 'none'), PORT: port }).status, 0, 'a file not written yet: PORT')
})

t.test('on an empty root (a forgotten volume mount) /healthz answers 503 and the health check fails saying why', async t => {
  const empty = mkdtempSync(join(tmpdir(), 'wasm-serve-empty-'))
  t.teardown(() => rmSync(empty, { recursive: true, force: true }))
  const { url, out } = await serveCli(t, [empty, '--port', '0'])
  const res = await request(`${url}/healthz`)
  t.equal(res.statusCode, 503)
  t.same(await res.body.json(), { status: 'empty', reason: 'the root directory has no file to serve (a volume not mounted?)' })
  t.match(out.stdout + out.stderr, /GET \/healthz answers 503 until files appear/)
  const failed = healthcheck({ PORT: new URL(url).port })
  t.equal(failed.status, 1)
  t.match(failed.stdout, /: 503 \{"status":"empty","reason":"the root directory has no file to serve/)
})

t.test('other methods answer 405 with Allow, with or without a request body', async t => {
  const { url } = await serveCli(t, [SITE, '--port', '0'])
  const cases: Array<{ method: string, path: string, body?: string, type?: string }> = [
    { method: 'POST', path: '/sqlite3.wasm' },
    { method: 'DELETE', path: '/sqlite3.wasm' },
    { method: 'POST', path: '/healthz' },
    // A body must not change the answer: the method is wrong whatever the payload (D17).
    { method: 'POST', path: '/sqlite3.wasm', body: 'x' },
    { method: 'PUT', path: '/sqlite3.wasm', body: '\0asm', type: 'application/octet-stream' },
    { method: 'POST', path: '/sqlite3.wasm', body: '{bad json', type: 'application/json' },
    { method: 'PROPFIND', path: '/sqlite3.wasm' },
  ]
  for (const c of cases) {
    const name = `${c.method} ${c.path}${c.body !== undefined ? ` with a ${c.type ?? 'untyped'} body` : ''}`
    const res = await request(`${url}${c.path}`, { method: c.method, body: c.body, headers: c.type !== undefined ? { 'content-type': c.type } : {} })
    await res.body.dump()
    t.equal(res.statusCode, 405, name)
    t.match(String(res.headers.allow), /^GET, HEAD(, OPTIONS)?$/, `${name}: Allow`)
  }
})

t.test('with no directory it serves the bundled demo from public/', async t => {
  const { url, out } = await serveCli(t, ['--port', '0'])
  t.match(out.stdout, /serving the demo at/)
  const res = await request(`${url}/`)
  const body = Buffer.from(await res.body.arrayBuffer())
  t.equal(res.statusCode, 200)
  t.match(String(res.headers['content-type']), /^text\/html/)
  t.ok(body.equals(readFileSync(join(ROOT, 'public/index.html'))), 'the demo page, byte for byte')
})

t.test('every start-up error exits 2 with one message of the same shape, and nothing bound', async t => {
  const port = String(await freePort())
  const missing = join(SITE, 'missing.pem')
  // [what, args, env, what stderr names]; usage mistakes also point at --help.
  const cases: Array<[string, string[], Record<string, string>, string, boolean]> = [
    ['an unknown flag', [SITE, '--prot', '80'], {}, '--prot', true],
    ['two directories', [SITE, SITE], {}, 'at most one directory', true],
    ['--tls-cert without --tls-key', [SITE, '--tls-cert', missing], {}, '--tls-cert', true],
    ['an unreadable config file', [SITE, '--config', missing], {}, missing, true],
    ['a bad size flag', [SITE, '--memory-budget', '12 parsecs'], {}, 'wasm-serve: --memory-budget: expected', true],
    ['a bad size variable', [SITE], { WASM_SERVE_MEMORY_BUDGET: 'lots' }, 'wasm-serve: WASM_SERVE_MEMORY_BUDGET: expected', false],
    ['a file as the directory', [join(SITE, 'sqlite3.wasm')], {}, 'sqlite3.wasm is a file, not a directory', false],
    ['a missing directory', [join(SITE, 'nope')], {}, join(SITE, 'nope'), false],
    ['an unreadable TLS key', [SITE, '--tls-cert', missing, '--tls-key', missing], {}, missing, false],
    ['a cache dir inside the root (refused by the plugin)', [SITE], { WASM_SERVE_COMPRESS: JSON.stringify({ cacheDir: join(SITE, 'cache') }) }, '/compress/cacheDir', false],
  ]
  await Promise.all(cases.map(async ([what, args, env, names, usage]) => {
    const proc = runCli(t, [...args, '--port', port], { env })
    t.equal((await proc.exited).code, 2, `${what}: exit 2`)
    t.match(proc.out.stderr, /^wasm-serve: \S/, `${what}: "wasm-serve: …"`)
    t.match(proc.out.stderr, names, `${what}: names ${names}`)
    t.equal(/ \(see wasm-serve --help\)\n$/.test(proc.out.stderr), usage, `${what}: ${usage ? 'points' : 'does not point'} at --help`)
    t.notMatch(proc.out.stderr, /\n\s+at /, `${what}: no stack trace`)
    t.notMatch(proc.out.stdout, SERVING, `${what}: never served`)
  }))
  t.ok(await isFree(Number(port)), 'the port was never taken')
})

t.test('wasm-serve compress reports usage errors the same way, with the same exit code', async t => {
  const proc = runCli(t, ['compress', SITE, '--min-size', '12 parsecs'])
  t.equal((await proc.exited).code, 2)
  t.equal(proc.out.stderr, 'wasm-serve compress: --min-size: expected a byte count or a size like 64MB, 1.5MiB or "512 KB" (KB = KiB = 1024 bytes), got "12 parsecs" (see wasm-serve compress --help)\n')
  const help = runCli(t, ['compress', '--help'])
  t.equal((await help.exited).code, 0)
  t.match(help.out.stdout, /^Exit codes: 0 done; 2 a usage error, nothing written; 1 a file or directory could not be read or\nwritten; 130 interrupted/m)
})

/** The JSON log lines the CLI wrote on stdout. */
const logLines = (stdout: string) => stdout.split('\n').filter(l => l.startsWith('{')).map(l => JSON.parse(l) as Record<string, unknown>)

/** An HTTP/1.1 client that asks for a file, takes the first bytes and stops reading: the response stays under way. */
async function stalledDownload (t: Test, url: string, path: string): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port: portOf(url) })
  t.teardown(() => { socket.destroy() })
  socket.on('error', () => {})
  socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\nAccept-Encoding: identity\r\n\r\n`)
  await new Promise(resolve => socket.once('data', resolve))
  socket.pause()
  return socket
}

t.test('a second signal during the graceful stop exits at once, 130 for SIGINT and 143 for SIGTERM, saying so', async t => {
  const cases = [['SIGTERM', 'SIGINT', 130], ['SIGINT', 'SIGTERM', 143]] as const
  await Promise.all(cases.map(async ([first, second, code]) => {
    const proc = await serveCli(t, [BIG, '--port', '0'], { env: { WASM_SERVE_COMPRESS: '{"onTheFly":false}' } })
    await stalledDownload(t, proc.url, '/ffmpeg-core.wasm')
    proc.child.kill(first)
    await until(proc, () => logLines(proc.out.stdout).some(l => l.msg === 'shutting down'), 'the shutting-down line')
    t.equal(proc.child.exitCode, null, `${first}: still waiting for the stalled download`)
    const sent = Date.now()
    proc.child.kill(second)
    const outcome = await Promise.race([proc.exited, sleep(3000, 'timeout' as const)])
    if (outcome === 'timeout') return t.fail(`${first} then ${second}: still running 3 s after the second signal`)
    t.ok(Date.now() - sent < 2000, `${first} then ${second}: exited within 2 s of the second signal (${Date.now() - sent} ms)`)
    t.equal(outcome.code, code, `${first} then ${second}: exit code ${code}`)
    const line = logLines(proc.out.stdout).find(l => String(l.msg).startsWith('shut down'))
    t.match(line, { level: 40, signal: second, exitCode: code, cut: 1, msg: /at once on a second signal/ }, `${first} then ${second}: the last line says so, with the download cut`)
  }))
})

t.test('downloads cut when the grace period ends are counted in the shutdown line, over HTTP/1.1 and HTTP/2', async t => {
  // memoryBudget 0: the 32 MB module is streamed from disk; the clients take one chunk and stop reading.
  const env = { WASM_SERVE_COMPRESS: '{"onTheFly":false}' }
  const h1 = await serveCli(t, [BIG, '--port', '0', '--memory-budget', '0'], { env })
  const h2 = await serveCli(t, [BIG, '--port', '0', '--memory-budget', '0', '--https'], { env })
  await stalledDownload(t, h1.url, '/ffmpeg-core.wasm')
  await stalledDownload(t, h1.url, '/ffmpeg-core.wasm')
  const session = http2Connect(h2.url, { rejectUnauthorized: false })
  session.on('error', () => {})
  t.teardown(() => { session.destroy() })
  for (let i = 0; i < 3; i++) {
    // HTTP/2 flow control holds the server back while the client does not read.
    const stream = session.request({ ':path': '/ffmpeg-core.wasm', 'accept-encoding': 'identity' })
    stream.on('error', () => {})
    await new Promise(resolve => stream.once('data', resolve))
    stream.pause()
  }
  const started = Date.now()
  h1.child.kill('SIGTERM')
  h2.child.kill('SIGTERM')
  const [one, two] = await Promise.all([h1.exited, h2.exited])
  const waited = Date.now() - started
  t.ok(waited >= 7500 && waited < 12_000, `both waited for the 8 s grace period, no longer (${waited} ms)`)
  t.equal(one.code, 0, 'HTTP/1.1: exit 0')
  t.equal(two.code, 0, 'HTTP/2: exit 0')
  const last = (stdout: string) => logLines(stdout).find(l => String(l.msg).startsWith('shut down'))
  t.match(last(h1.out.stdout), { level: 40, cut: 2, graceMs: 8000, msg: /grace period ended/ }, 'HTTP/1.1: two responses cut')
  t.match(last(h2.out.stdout), { level: 40, cut: 3, graceMs: 8000, msg: /grace period ended/ }, 'HTTP/2: three streams cut')
})

t.test('a clean shutdown says that no download was cut', async t => {
  const { url, child, out, exited } = await serveCli(t, [SITE, '--port', '0'])
  const res = await request(`${url}/sqlite3.wasm`)
  await res.body.dump()
  child.kill('SIGTERM')
  t.equal((await exited).code, 0)
  t.match(logLines(out.stdout).find(l => String(l.msg).startsWith('shut down')), { level: 30, cut: 0, msg: 'shut down' })
})

t.test('SIGTERM lets an HTTP/2 download under way finish with every byte, then exits 0', async t => {
  const { url, child, out, exited } = await serveCli(t, [BIG, '--port', '0', '--memory-budget', '0', '--https'], { env: { WASM_SERVE_COMPRESS: '{"onTheFly":false}' } })
  const session = http2Connect(url, { rejectUnauthorized: false })
  session.on('error', () => {})
  t.teardown(() => { session.destroy() })
  const stream = session.request({ ':path': '/ffmpeg-core.wasm', 'accept-encoding': 'identity' })
  const chunks: Buffer[] = []
  const done = new Promise<{ ended: boolean, rstCode: number | undefined }>(resolve => {
    let ended = false
    stream.on('data', (chunk: Buffer) => { chunks.push(chunk) })
    stream.on('end', () => { ended = true })
    stream.on('error', () => {})
    stream.on('close', () => resolve({ ended, rstCode: stream.rstCode }))
  })
  await new Promise(resolve => stream.once('data', resolve))
  stream.pause()
  child.kill('SIGTERM')
  await until({ child, out, exited }, () => logLines(out.stdout).some(l => l.msg === 'shutting down'), 'the shutting-down line')
  t.equal(child.exitCode, null, 'still running while the stream is under way')
  stream.resume()
  const { ended, rstCode } = await done
  t.ok(ended, 'the stream ended normally')
  t.equal(rstCode, 0, 'without a reset')
  const expected = readFileSync(FFMPEG)
  t.equal(sha(Buffer.concat(chunks)), sha(expected), 'every byte arrived')
  t.equal((await exited).code, 0, 'exit 0')
  t.match(logLines(out.stdout).find(l => String(l.msg).startsWith('shut down')), { cut: 0, msg: 'shut down' })
})
