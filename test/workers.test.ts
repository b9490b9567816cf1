// `--workers N|auto` (src/workers.ts): the real CLI (`node dist/cli.js`) with a primary and two
// workers on one port, over loopback. Which worker answered is read from its request log line (`pid`).
import t from 'tap'
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { copyFileSync, readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { Agent, request } from 'undici'
import { reusePortAvailable, workerCount } from '../src/workers.js'
import { cleanEnv, CLI, ROOT, runCli, serveCli, SERVING, until, type CliProcess } from './helpers/cli.js'
import { readRest } from './helpers/http.js'
import { JS, makeSite, PAGE, tempDir } from './helpers/site.js'

const FFMPEG = join(ROOT, 'node_modules/@ffmpeg/core/dist/esm/ffmpeg-core.wasm')

interface Line { msg?: string, pid?: number, role?: string, url?: string, encoding?: string, path?: string, [key: string]: unknown }

function logLines (stdout: string): Line[] {
  return stdout.split('\n').filter(l => l.startsWith('{')).map(l => JSON.parse(l) as Line)
}

/** The primary's "workers listening" line: the workers' pids, slot 0 (the encoder) first. */
function workerPids (proc: CliProcess): number[] {
  const line = logLines(proc.out.stdout).find(l => l.msg === 'workers listening')
  return (line?.pids as number[] | undefined) ?? []
}

/** A request on a connection of its own, so the kernel (or cluster's round robin) picks a worker for each. */
async function fresh (url: string, headers: Record<string, string> = {}): Promise<{ status: number, encoding: string | undefined, body: Buffer }> {
  const agent = new Agent()
  try {
    const res = await request(url, { dispatcher: agent, headers, headersTimeout: 5000, bodyTimeout: 5000 })
    const body = Buffer.from(await res.body.arrayBuffer())
    return { status: res.statusCode, encoding: res.headers['content-encoding'] as string | undefined, body }
  } finally {
    await agent.close()
  }
}

/** Asks until requests for `path` have been answered by every pid in `pids` (per the request log lines). */
async function answeredByAll (proc: CliProcess & { url: string }, path: string, pids: number[], headers: Record<string, string> = {}, encoding?: string): Promise<void> {
  const answered = () => new Set(logLines(proc.out.stdout).filter(l => l.msg === 'request' && l.url === path && (encoding === undefined || l.encoding === encoding)).map(l => l.pid))
  await until(proc, async () => {
    await fresh(proc.url + path, headers)
    return pids.every(pid => answered().has(pid))
  }, `${path} answered by workers ${pids.join(', ')}${encoding !== undefined ? ` with ${encoding}` : ''}`, 30_000)
}

function isJson (line: string): boolean {
  try { return typeof JSON.parse(line) === 'object' } catch { return false }
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

t.test('workerCount and reusePortAvailable', async t => {
  t.equal(workerCount('auto'), availableParallelism(), 'auto is one per core this process may use')
  t.equal(workerCount(3), 3)
  t.equal(reusePortAvailable('22.12.0', 'linux'), true)
  t.equal(reusePortAvailable('22.11.0', 'linux'), false, 'before nodejs/node#55408 reached 22.x')
  t.equal(reusePortAvailable('23.0.0', 'linux'), false)
  t.equal(reusePortAvailable('23.1.0', 'linux'), true)
  t.equal(reusePortAvailable('24.0.0', 'freebsd'), true)
  t.equal(reusePortAvailable('20.19.0', 'linux'), false, 'Node 20: round robin through cluster')
  t.equal(reusePortAvailable('24.0.0', 'darwin'), false, 'macOS does not balance SO_REUSEPORT sockets')
  t.equal(reusePortAvailable('24.0.0', 'win32'), false)
})

t.test('two workers answer on one port; the serving line and the address file come once, from the primary', async t => {
  const root = makeSite(t, { 'index.html': PAGE })
  const addressFile = join(tempDir(t, 'address'), 'address')
  const proc = await serveCli(t, [root, '--port', '0', '--workers', '2'], { env: { WASM_SERVE_ADDRESS_FILE: addressFile } })
  const pids = workerPids(proc)
  t.equal(pids.length, 2, 'two workers')
  t.notOk(pids.includes(proc.child.pid!), 'the workers are not the process started')
  t.equal(proc.out.stdout.match(new RegExp(SERVING.source, 'gm'))?.length, 1, 'one serving line')
  t.equal(readFileSync(addressFile, 'utf8').trim(), proc.url, 'the address file names the URL')
  const primary = logLines(proc.out.stdout).find(l => l.msg === 'workers listening')!
  t.equal(primary.pid, proc.child.pid, 'the primary says which workers listen')
  t.equal(primary.balancing, reusePortAvailable() ? 'SO_REUSEPORT (the kernel)' : 'round-robin (the primary)')
  await answeredByAll(proc, '/index.html', pids)
  t.pass(`both workers answered (Node ${process.versions.node})`)
  // Busy logs: two workers writing request lines at once to one pipe; none is cut or mixed with another.
  const statuses = await Promise.all(Array.from({ length: 200 }, () => fresh(proc.url + '/index.html').then(r => r.status)))
  t.same(new Set(statuses), new Set([200]))
  await until(proc, () => logLines(proc.out.stdout).filter(l => l.msg === 'request').length >= 200, 'the request lines')
  const broken = proc.out.stdout.split('\n').filter(line => line !== '' && !SERVING.test(line) && !isJson(line))
  t.same(broken, [], 'every log line whole')
  const res = await fresh(proc.url + '/index.html')
  t.equal(res.status, 200)
  t.equal(res.body.toString(), PAGE)
})

t.test('an encoding made on the fly is made once, by one worker, and both serve it', async t => {
  const root = makeSite(t, { 'index.html': PAGE, 'app.js': JS })
  const cacheDir = join(tempDir(t, 'cache'), 'encodings')
  const proc = await serveCli(t, [root, '--port', '0', '--workers', '2'], { env: { WASM_SERVE_COMPRESS: JSON.stringify({ cacheDir }) } })
  const pids = workerPids(proc)
  await answeredByAll(proc, '/app.js', pids, { 'accept-encoding': 'br' }, 'br')
  const made = logLines(proc.out.stdout).filter(l => l.msg === 'compressed on the fly' && l.path === 'app.js')
  t.equal(made.length, 1, 'compressed once')
  t.equal(made[0]!.pid, pids[0], 'by the encoder (worker 1)')
  const res = await fresh(proc.url + '/app.js', { 'accept-encoding': 'br' })
  t.equal(res.encoding, 'br')
  t.equal((await import('node:zlib')).brotliDecompressSync(res.body).toString(), JS.toString(), 'the encoding decodes to the file')
})

t.test('a worker killed with SIGKILL is replaced and logged; the server keeps answering', async t => {
  const root = makeSite(t, { 'index.html': PAGE })
  const proc = await serveCli(t, [root, '--port', '0', '--workers', '2'])
  const [encoder, other] = workerPids(proc)
  process.kill(encoder!, 'SIGKILL')
  await until(proc, () => logLines(proc.out.stdout).some(l => l.msg === 'worker started in place of the one that exited'), 'the replacement')
  const lines = logLines(proc.out.stdout)
  const exit = lines.find(l => l.msg === 'worker exited unexpectedly; starting another')
  t.match(exit, { pid: proc.child.pid, worker: encoder, signal: 'SIGKILL', code: null, slot: 0, restartInMs: 0 }, 'the exit is logged with the signal')
  const started = lines.find(l => l.msg === 'worker started in place of the one that exited')!
  t.match(started, { slot: 0, encoder: true }, 'the replacement takes the encoder\'s place')
  t.not(started.worker, encoder)
  t.equal(proc.child.exitCode, null, 'the primary is still running')
  await answeredByAll(proc, '/index.html', [started.worker as number, other!])
  t.pass('the replacement and the other worker answer')
})

t.test('SIGTERM drains every worker: a slow download under way finishes with every byte, then exit 0', async t => {
  const root = tempDir(t, 'big')
  copyFileSync(FFMPEG, join(root, 'ffmpeg-core.wasm'))
  const proc = await serveCli(t, [root, '--port', '0', '--workers', '2'], { env: { WASM_SERVE_COMPRESS: '{"onTheFly":false}' } })
  const pids = workerPids(proc)
  const expected = readFileSync(FFMPEG)
  // undici stops reading the socket while the body is not consumed: the server's writes back up.
  const agent = new Agent({ connections: 1 })
  t.teardown(() => agent.close())
  const res = await request(`${proc.url}/ffmpeg-core.wasm`, { dispatcher: agent, headers: { 'accept-encoding': 'identity' }, highWaterMark: 16 * 1024 })
  t.equal(res.statusCode, 200)
  const body = res.body[Symbol.asyncIterator]()
  const chunks: Buffer[] = [(await body.next()).value as Buffer]
  let exited = false
  void proc.exited.then(() => { exited = true })
  proc.child.kill('SIGTERM')
  const draining = () => logLines(proc.out.stdout).filter(l => l.msg === 'shutting down' && l.signal === 'SIGTERM' && pids.includes(l.pid!)).length
  await until(proc, () => draining() === 2, 'both workers shutting down')
  t.notOk(exited, 'still running while a response is in flight')
  const { received, error } = await readRest(body, chunks)
  t.equal(error, undefined, 'the response was not cut')
  t.equal(sha(received), sha(expected), 'every byte arrived')
  t.same(await proc.exited, { code: 0, signal: null }, 'exit code 0')
  const primary = logLines(proc.out.stdout).filter(l => l.pid === proc.child.pid).map(l => l.msg)
  t.same(primary.slice(-2), ['shutting down', 'shut down'], 'the primary says so, and is last')
  for (const pid of pids) t.throws(() => process.kill(pid, 0), { code: 'ESRCH' }, `worker ${pid} is gone`)
})

t.test('SIGINT from a terminal (the whole process group) drains every worker once and exits 0', async t => {
  const root = makeSite(t, { 'index.html': PAGE })
  // Ctrl+C signals the foreground process group: the workers get SIGINT directly, and the primary's word.
  const child = spawn(process.execPath, [CLI, root, '--port', '0', '--workers', '2'], { cwd: ROOT, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  t.teardown(() => { try { process.kill(-child.pid!, 'SIGKILL') } catch {} })
  const out = { stdout: '', stderr: '' }
  child.stdout.setEncoding('utf8').on('data', (s: string) => { out.stdout += s })
  child.stderr.setEncoding('utf8').on('data', (s: string) => { out.stderr += s })
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>(resolve => child.on('exit', (code, signal) => resolve({ code, signal })))
  const proc = { child, out, exited }
  await until(proc, () => SERVING.test(out.stdout), 'the serving line')
  const pids = workerPids(proc)
  process.kill(-child.pid!, 'SIGINT')
  t.same(await exited, { code: 0, signal: null }, 'exit code 0, not 130: the primary\'s word is not a second signal')
  const lines = logLines(out.stdout)
  for (const pid of pids) {
    t.same(lines.filter(l => l.pid === pid && /^shut/.test(l.msg ?? '')).map(l => [l.msg, l.signal]), [['shutting down', 'SIGINT'], ['shut down', undefined]], `worker ${pid} drained once`)
  }
  t.notMatch(out.stdout, /second signal/)
})

t.test('--workers 1 is the single process, as without the flag', async t => {
  const root = makeSite(t, { 'index.html': PAGE })
  const proc = await serveCli(t, [root, '--port', '0', '--workers', '1'])
  t.equal((await fresh(proc.url + '/index.html')).status, 200)
  await until(proc, () => logLines(proc.out.stdout).some(l => l.msg === 'request'), 'the request line')
  const lines = logLines(proc.out.stdout)
  t.same([...new Set(lines.map(l => l.pid))], [proc.child.pid], 'every line from the process started')
  t.notOk(lines.some(l => l.role === 'primary'), 'no primary')
})

t.test('a bad worker count is a usage error: exit 2, nothing served', async t => {
  const cases: Array<[string[], Record<string, string>]> = [
    [['--workers', '0'], {}],
    [['--workers', 'x'], {}],
    [['--workers', '1.5'], {}],
    [['--workers'], {}],
    [[], { WASM_SERVE_WORKERS: '0' }],
  ]
  for (const [args, env] of cases) {
    const proc = runCli(t, [...args, '--port', '0'], { env })
    const { code } = await proc.exited
    const what = args.join(' ') || JSON.stringify(env)
    t.equal(code, 2, `${what}: exit 2`)
    t.match(proc.out.stderr, /WORKERS|--workers/, `${what}: the message names it`)
    t.notMatch(proc.out.stdout, SERVING, `${what}: not served`)
  }
})
