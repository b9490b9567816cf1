#!/usr/bin/env node
/**
 * The reliability suite (docs/reliability.md): the CLI as shipped (`node dist/cli.js`; `npm run
 * soak` builds it first) attacked from outside over loopback — slowloris, readers and HTTP/2 streams
 * that stall, descriptor exhaustion, a module rewritten and directories replaced under it, a file
 * over 2 GiB, signals under load — and one table of figures. Exits 1 when a figure is outside its
 * bound (the "must be" column), 2 on a usage error.
 *
 *   node bench/soak.mjs [--quick] [--only slowloris,stalled-h1,...]
 *
 * Every loop is bounded in count and time and every scenario by a deadline; the processes it starts
 * are killed and its temporary directories removed whichever way it ends.
 */
import { spawn, spawnSync } from 'node:child_process'
import { createCipheriv, createHash, randomBytes } from 'node:crypto'
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs'
import { mkdir, rename, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { request as httpRequest } from 'node:http'
import { connect as connectHttp2 } from 'node:http2'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads'

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cli.js')
const HOST = '127.0.0.1'
const MiB = 1024 * 1024
/** The CLI's shutdown grace period (src/cli.ts): connections still open after it are closed. */
const GRACE_S = 8
/** The default `revalidate` (docs/delivery.md, D16): nothing served is staler than this. */
const REVALIDATE_S = 2
const now = () => performance.now()

// ---------------------------------------------------------------------------------------------
// Bookkeeping: whatever happens (a failed check, a deadline, Ctrl+C), no process or directory stays.

/** Every process and temporary directory the soak made, for the last-resort cleanup at exit. */
const live = { children: new Set(), dirs: new Set() }
const running = child => child.exitCode === null && child.signalCode === null

function cleanupAll () {
  for (const child of live.children) if (running(child)) child.kill('SIGKILL')
  for (const dir of live.dirs) rmSync(dir, { recursive: true, force: true })
  live.dirs.clear()
}

function guardProcess () {
  process.on('exit', cleanupAll)
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => { cleanupAll(); process.exit(130) })
  // A scenario abandoned at its deadline may still have promises under way; they must not end the run.
  process.on('unhandledRejection', err => { process.stderr.write(`soak: unhandled rejection: ${err?.stack ?? err}\n`) })
}

/** What one scenario started: killed, destroyed and removed when it ends, passed, failed or out of time. */
class Scope {
  children = new Set()
  dirs = new Set()
  closers = []

  tmp (name) {
    const dir = mkdtempSync(join(tmpdir(), `wasm-serve-soak-${name}-`))
    this.dirs.add(dir)
    live.dirs.add(dir)
    return dir
  }

  /** Anything with destroy() (a socket, an HTTP/2 session) is destroyed when the scenario ends. */
  track (handle) {
    this.closers.push(() => handle.destroy())
    return handle
  }

  defer (fn) { this.closers.push(fn) }

  async close () {
    for (const fn of this.closers.splice(0)) { try { fn() } catch {} }
    await Promise.all([...this.children].map(cli => killCli(cli)))
    for (const dir of this.dirs) {
      rmSync(dir, { recursive: true, force: true })
      live.dirs.delete(dir)
    }
  }
}

/** Asks `check` every `every` ms until it answers something truthy; rejects after `ms`. */
async function until (check, { ms, every = 20, what = 'a condition' }) {
  const deadline = now() + ms
  for (;;) {
    const value = await check()
    if (value) return value
    if (now() > deadline) throw new Error(`timed out after ${ms / 1000} s waiting for ${what}`)
    await sleep(every)
  }
}

/** `until`, resolving with undefined instead of rejecting when the time is up. */
const within = (check, opts) => until(check, opts).catch(() => undefined)

function withDeadline (promise, ms, what) {
  let timer
  const deadline = new Promise((resolve, reject) => { timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms / 1000} s`)), ms) })
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer))
}

// ---------------------------------------------------------------------------------------------
// The CLI under test.

/** The soak's environment without anything that would configure the CLI (or load a test runner's hooks into it). */
function cliEnv (extra) {
  const env = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (!(key === 'PORT' || key === 'HOST' || key === 'NODE_OPTIONS' || key.startsWith('WASM_SERVE_'))) env[key] = value
  }
  return { ...env, ...extra }
}

const SERVING = /^wasm-serve \S+ serving .+ at (https?:\/\/127\.0\.0\.1:(\d+))/m

/**
 * Starts `node dist/cli.js root --port 0 ...args` (under `prlimit --nofile=N:N` when `nofile` is
 * given: prlimit execs node, so the pid is the server's) and resolves once it prints where it
 * listens, with the time that took.
 */
async function startCli (scope, { root, args = [], env = {}, nofile }) {
  const argv = [CLI, root, '--port', '0', ...args]
  const [command, commandArgs] = nofile === undefined ? [process.execPath, argv] : ['prlimit', [`--nofile=${nofile}:${nofile}`, process.execPath, ...argv]]
  const started = now()
  const child = spawn(command, commandArgs, { env: cliEnv(env), stdio: ['ignore', 'pipe', 'pipe'] })
  live.children.add(child)
  const out = { stdout: '', stderr: '' }
  child.stdout.setEncoding('utf8').on('data', s => { out.stdout += s })
  child.stderr.setEncoding('utf8').on('data', s => { out.stderr += s })
  const exited = new Promise(resolve => {
    child.once('error', err => resolve({ code: null, signal: null, error: err, at: now() }))
    child.once('exit', (code, signal) => resolve({ code, signal, at: now() }))
  }).then(result => { live.children.delete(child); return result })
  const cli = { child, pid: child.pid, out, exited }
  scope.children.add(cli)
  let gone = false
  void exited.then(() => { gone = true })
  const match = await until(() => SERVING.exec(out.stdout) ?? gone, { ms: 60_000, what: 'the CLI to print where it listens' })
  if (match === true) throw new Error(`the CLI exited before listening: ${out.stderr.trim().slice(0, 300)}`)
  return Object.assign(cli, { url: match[1], port: Number(match[2]), startMs: now() - started })
}

/** SIGKILL (a scenario that ended needs no graceful stop), waiting up to 5 s for the exit. */
async function killCli (cli) {
  if (running(cli.child)) cli.child.kill('SIGKILL')
  await withDeadline(cli.exited, 5000, 'the CLI killed').catch(() => {})
}

/** Open descriptors of a process (sockets, files, watchers, pipes); NaN once it is gone. */
function fdCount (pid) {
  try { return readdirSync(`/proc/${pid}/fd`).length } catch { return NaN }
}

/** Samples a process's descriptors every 50 ms until the scenario ends; `peak` is the highest seen. */
function fdSampler (scope, pid) {
  const sampler = { peak: fdCount(pid) }
  const timer = setInterval(() => { sampler.peak = Math.max(sampler.peak, fdCount(pid) || 0) }, 50)
  scope.defer(() => clearInterval(timer))
  sampler.stop = () => clearInterval(timer)
  return sampler
}

/** The descriptor count once it no longer moves (three equal samples 100 ms apart): the baseline. */
async function settledFds (pid) {
  let last = -1
  let same = 0
  await within(() => {
    const n = fdCount(pid)
    same = n === last ? same + 1 : 0
    last = n
    return same >= 2
  }, { ms: 5000, every: 100 })
  return last
}

const hasCommand = name => spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0

/** Runs a command (cp, touch) with a deadline; rejects if it fails. */
function run (command, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: 'ignore' })
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
    child.once('error', reject)
    child.once('exit', code => { clearTimeout(timer); code === 0 ? resolve() : reject(new Error(`${command} ${args.join(' ')} exited ${code}`)) })
  })
}

// ---------------------------------------------------------------------------------------------
// Clients.

/**
 * One HTTP/1.1 request on its own connection. Never rejects: resolves with the status (undefined
 * when no response came), headers, body, whether the body came whole, and the error if any.
 */
function get (url, { method = 'GET', headers = {}, timeoutMs = 10_000 } = {}) {
  return new Promise(resolve => {
    const chunks = []
    let response
    const finish = extra => {
      clearTimeout(timer)
      resolve({ status: response?.statusCode, headers: response?.headers ?? {}, body: Buffer.concat(chunks), complete: false, ...extra })
    }
    const req = httpRequest(url, { method, headers, agent: false }, res => {
      response = res
      res.on('data', chunk => chunks.push(chunk))
      res.on('end', () => finish({ complete: res.complete }))
      res.on('error', err => finish({ error: err.code ?? err.message }))
      res.on('close', () => finish({ complete: res.complete }))
    })
    req.on('error', err => finish({ error: err.code ?? err.message }))
    const timer = setTimeout(() => req.destroy(Object.assign(new Error('timeout'), { code: 'timeout' })), timeoutMs)
    req.end()
  })
}

const describe = res => res.status === undefined ? `no response (${res.error})` : res.status === 200 ? 'body cut or wrong' : `status ${res.status}`
const bump = (map, key, n = 1) => map.set(key, (map.get(key) ?? 0) + n)
const listOf = map => map.size === 0 ? '' : ` (${[...map].map(([k, v]) => `${k}: ${v}`).join(', ')})`

/** A well-behaved client asking for `url` every 100 ms while an attack goes on: every answer must be 200 with `expected`. */
function normalClient (scope, url, expected) {
  const state = { stopped: false }
  const counts = { ok: 0, failed: 0, reasons: new Map() }
  const loop = (async () => {
    while (!state.stopped) {
      const res = await get(url)
      if (res.status === 200 && res.complete && res.body.equals(expected)) counts.ok++
      else { counts.failed++; bump(counts.reasons, describe(res)) }
      await sleep(100)
    }
    return counts
  })()
  const stop = () => { state.stopped = true; return loop }
  scope.defer(stop)
  return { stop }
}

// ---------------------------------------------------------------------------------------------
// Fixtures.

const WASM = Buffer.concat([Buffer.from('0061736d01000000', 'hex'), randomBytes(4096)])
const HTML = Buffer.from('<!doctype html><title>soak</title>')
let big
/** 32 MiB of random bytes: larger than any socket buffer, so a reader that stops holds the response. */
const bigFile = () => (big ??= randomBytes(32 * MiB))
const sha256 = buf => createHash('sha256').update(buf).digest()
/** The server's ETag for a body (D6): sha256, base64url, first 27 characters, quoted. */
const etagOf = buf => `"${sha256(buf).toString('base64url').slice(0, 27)}"`

function makeRoot (scope, name, files) {
  const root = scope.tmp(name)
  for (const [path, bytes] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true })
    writeFileSync(join(root, path), bytes)
  }
  return root
}

const limitsEnv = limits => ({ WASM_SERVE_LIMITS: JSON.stringify(limits) })

// ---------------------------------------------------------------------------------------------
// The table.

const rows = []
const notes = []
const seconds = ms => ms === undefined || Number.isNaN(ms) ? 'n/a' : `${(ms / 1000).toFixed(1)} s`
const median = xs => xs.length === 0 ? NaN : [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const max = xs => xs.length === 0 ? NaN : Math.max(...xs)

/** Rows for one scenario: `info` has no bound, `check` has one ("must be") and fails the run when outside it. */
function reporter (scenario) {
  const add = (figure, value, must = '', pass = true) => rows.push({ scenario, figure, value: String(value), must, pass })
  return {
    info: (figure, value) => add(figure, value),
    check: (figure, value, { must, pass }) => add(figure, value, must, pass),
    zero: (figure, n, detail = '') => add(figure, `${n}${n === 0 ? '' : detail}`, '0', n === 0),
    yes: (figure, ok, detail = '') => add(figure, `${ok ? 'yes' : 'no'}${detail}`, 'yes', ok),
    note: text => notes.push(`${scenario}: ${text}`),
  }
}

function printTable () {
  const cell = s => String(s).replace(/\|/g, '\\|')
  const lines = ['| scenario | figure | value | must be |', '|---|---|--:|---|']
  for (const row of rows) lines.push(`| ${row.scenario} | ${cell(row.figure)} | ${cell(row.value)} | ${row.pass ? cell(row.must) : `**${cell(row.must)} — FAILED**`} |`)
  process.stdout.write(`\n${lines.join('\n')}\n`)
  if (notes.length > 0) process.stdout.write(`\n${notes.map(n => `- ${n}`).join('\n')}\n`)
  const failed = rows.filter(row => !row.pass).length
  process.stdout.write(`\n${failed === 0 ? 'every figure within its bound' : `${failed} figure(s) outside their bounds`}\n`)
}

// ---------------------------------------------------------------------------------------------
// 1. Slowloris.

/**
 * One slowloris connection: request headers a byte a second, never finished. Resolves when the
 * server closes it (with the time since it connected and the status it answered), or at `capMs`
 * with `held`.
 */
function dripRequest (scope, port, capMs) {
  const text = 'GET /index.html HTTP/1.1\r\nHost: 127.0.0.1\r\n' + 'X-Slow: 1\r\n'.repeat(100)
  return new Promise(resolve => {
    const socket = scope.track(connect({ host: HOST, port }))
    let opened = now()
    let sent = 0
    let head = ''
    let drip
    const cap = setTimeout(() => finish(true), capMs)
    const finish = held => {
      clearInterval(drip)
      clearTimeout(cap)
      socket.destroy()
      resolve({ held, ms: now() - opened, status: /^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] })
    }
    socket.setEncoding('latin1')
    socket.on('data', d => { head += d })
    socket.on('error', () => {})
    socket.on('close', () => finish(false))
    socket.on('connect', () => {
      opened = now()
      socket.write(text[sent++])
      drip = setInterval(() => { if (sent < text.length) socket.write(text[sent++]) }, 1000)
    })
  })
}

async function slowloris (r, scope) {
  const headersTimeout = 5
  const count = 500
  const root = makeRoot(scope, 'slowloris', { 'index.html': HTML, 'app.wasm': WASM })
  const cli = await startCli(scope, { root, args: ['--quiet'], env: limitsEnv({ headersTimeout }) })
  const normal = normalClient(scope, `${cli.url}/app.wasm`, WASM)
  const capMs = (headersTimeout + 2 + 10) * 1000
  const pending = []
  for (let i = 0; i < count; i += 50) {
    for (let j = i; j < Math.min(count, i + 50); j++) pending.push(dripRequest(scope, cli.port, capMs))
    await sleep(20) // connect in batches: the listen backlog is not what is being measured
  }
  const results = await Promise.all(pending)
  const counts = await normal.stop()
  const cut = results.filter(x => !x.held).map(x => x.ms)
  const boundMs = (headersTimeout + 2) * 1000
  r.info('connections sending headers a byte a second', count)
  r.info('limits.headersTimeout', `${headersTimeout} s`)
  r.check('time until cut, max', seconds(max(cut)), { must: `≤ ${headersTimeout + 2} s (timeout + 2 s check) + 0.5 s`, pass: max(cut) <= boundMs + 500 })
  r.info('time until cut, median', seconds(median(cut)))
  const answered408 = results.filter(x => x.status === '408').length
  r.check('answered 408 before the cut', answered408, { must: String(count), pass: answered408 === count })
  r.zero(`still open after ${capMs / 1000} s`, results.filter(x => x.held).length)
  r.info('normal requests meanwhile (200, right bytes)', counts.ok)
  r.zero('normal requests failed', counts.failed, listOf(counts.reasons))
}

// ---------------------------------------------------------------------------------------------
// 2. Stalled readers, HTTP/1.1.

/** Sends `GET path` and never reads a byte of the answer (the socket is paused before it connects). */
function stalledGet (scope, port, path) {
  return new Promise(resolve => {
    const socket = scope.track(connect({ host: HOST, port }))
    socket.pause()
    socket.on('error', () => {})
    socket.on('connect', () => socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`, () => resolve(socket)))
    socket.on('close', () => resolve(socket))
  })
}

async function stalledHttp1 (r, scope) {
  const sendTimeout = 5
  const count = 200
  const root = makeRoot(scope, 'stalled-h1', { 'big.bin': bigFile(), 'app.wasm': WASM })
  const cli = await startCli(scope, { root, args: ['--quiet', '--memory-budget', '0'], env: limitsEnv({ sendTimeout }) })
  const warm = await get(`${cli.url}/big.bin`, { timeoutMs: 30_000 })
  if (warm.status !== 200 || !warm.body.equals(bigFile())) throw new Error(`GET /big.bin: ${describe(warm)}`)
  const baseline = await settledFds(cli.pid)
  const sampler = fdSampler(scope, cli.pid)
  const normal = normalClient(scope, `${cli.url}/app.wasm`, WASM)
  await Promise.all(Array.from({ length: count }, () => stalledGet(scope, cli.port, '/big.bin')))
  const sentAt = now()
  // Every stalled response holds its socket and its file before the wait for their release starts
  // (the warm-up's keep-alive socket closing must not pass for it).
  await within(() => fdCount(cli.pid) >= baseline + count, { ms: 10_000, every: 20 })
  const capMs = (sendTimeout + 30) * 1000
  const back = await within(() => fdCount(cli.pid) <= baseline, { ms: capMs, every: 50 })
  const backMs = back === undefined ? undefined : now() - sentAt
  sampler.stop()
  const counts = await normal.stop()
  r.info('connections reading nothing of a 32 MB file (streamed)', count)
  r.info('limits.sendTimeout', `${sendTimeout} s`)
  r.info('server descriptors: baseline → peak', `${baseline} → ${sampler.peak}`)
  // Counted from the last request sent, not from each response's last progress: the server first
  // fills 200 sockets' buffers (megabytes each), which takes a second or two on this machine.
  r.check('time until back to the baseline', seconds(backMs), { must: `≤ ${sendTimeout} s + 3 s`, pass: backMs !== undefined && backMs <= (sendTimeout + 3) * 1000 })
  r.zero(`descriptors above the baseline after ${capMs / 1000} s`, back === undefined ? Math.max(1, fdCount(cli.pid) - baseline) : 0)
  r.info('normal requests meanwhile (200, right bytes)', counts.ok)
  r.zero('normal requests failed', counts.failed, listOf(counts.reasons))
}

// ---------------------------------------------------------------------------------------------
// 3. Stalled streams, HTTP/2.

/**
 * Opens a stream for `path` and reads none of it; `closed` resolves when the stream is closed (reset
 * or ended) with when its response headers came (when the server began to answer) and when it closed.
 */
function stalledStream (session, path) {
  const stream = session.request({ ':path': path })
  stream.pause()
  stream.on('error', () => {})
  let answered
  stream.once('response', () => { answered = now() })
  const closed = new Promise(resolve => stream.on('close', () => resolve({ answered, at: now(), rstCode: stream.rstCode })))
  return { stream, closed }
}

async function h2Fetch (session, path) {
  const stream = session.request({ ':path': path })
  const chunks = []
  let status
  stream.on('response', headers => { status = headers[':status'] })
  stream.on('data', chunk => chunks.push(chunk))
  await withDeadline(new Promise((resolve, reject) => { stream.on('end', resolve); stream.on('error', reject) }), 10_000, `HTTP/2 GET ${path}`)
  return { status, body: Buffer.concat(chunks) }
}

async function stalledHttp2 (r, scope, cfg) {
  const sendTimeout = 5
  const count = cfg.quick ? 300 : 1000
  const root = makeRoot(scope, 'stalled-h2', { 'big.bin': bigFile(), 'app.wasm': WASM })
  const cli = await startCli(scope, { root, args: ['--quiet', '--https', '--memory-budget', '0'], env: limitsEnv({ sendTimeout }) })
  const session = scope.track(connectHttp2(cli.url, { rejectUnauthorized: false }))
  session.on('error', () => {})
  const settings = await withDeadline(new Promise(resolve => session.once('remoteSettings', resolve)), 10_000, 'the server\'s HTTP/2 settings')
  const warm = await h2Fetch(session, '/app.wasm')
  if (warm.status !== 200 || !warm.body.equals(WASM)) throw new Error(`HTTP/2 GET /app.wasm: status ${warm.status}`)
  const baseline = await settledFds(cli.pid)
  const sampler = fdSampler(scope, cli.pid)
  const opened = now()
  const streams = Array.from({ length: count }, () => stalledStream(session, '/big.bin'))
  const maxStreams = settings.maxConcurrentStreams
  // Generous: a stream held past its timeout is what this measures, not a reason to stop measuring.
  const capMs = (Math.ceil(count / Math.min(maxStreams, count)) * (sendTimeout + 2) + 60) * 1000
  const closed = await Promise.all(streams.map(s => withDeadline(s.closed, capMs, 'a stream').catch(() => undefined)))
  const back = await within(() => fdCount(cli.pid) <= baseline, { ms: 10_000, every: 50 })
  sampler.stop()
  const held = closed.filter(c => c?.answered !== undefined).map(c => c.at - c.answered)
  const boundMs = (sendTimeout + 2) * 1000
  const cancelled = closed.filter(c => c?.rstCode === 8).length // NGHTTP2_CANCEL
  r.info('streams for a 32 MB file on one session, none read', count)
  r.info('limits.sendTimeout', `${sendTimeout} s`)
  r.check('maxConcurrentStreams advertised', maxStreams, { must: '100 (limits.maxStreams)', pass: maxStreams === 100 })
  r.check('server descriptors: baseline → peak', `${baseline} → ${sampler.peak}`, { must: `≤ baseline + ${maxStreams} + 10`, pass: sampler.peak <= baseline + maxStreams + 10 })
  r.check('a stream\'s time from its response headers to its reset: max / median', `${seconds(max(held))} / ${seconds(median(held))}`, { must: `≤ ${sendTimeout} s + 2 s`, pass: max(held) <= boundMs })
  r.zero(`streams held longer than ${boundMs / 1000} s`, held.filter(ms => ms > boundMs).length)
  r.info('time until every stream is reset', seconds(max(closed.filter(Boolean).map(c => c.at - opened))))
  r.check('streams reset with CANCEL', cancelled, { must: String(count), pass: cancelled === count })
  r.zero('streams closed without an error code (short body taken as whole)', closed.filter(c => c?.rstCode === 0).length)
  r.zero(`streams still open after ${capMs / 1000} s`, closed.filter(c => c === undefined).length)
  r.yes('descriptors back to the baseline after the last reset', back !== undefined, back === undefined ? ` (${fdCount(cli.pid)})` : '')
}

// ---------------------------------------------------------------------------------------------
// 4. Descriptor exhaustion.

const newTally = () => ({ requests: 0, ok: 0, unavailable: 0, refused: new Map(), cut: 0, wrong: new Map(), wrongBodies: 0 })

/** Sorts one answer: 200 with the right bytes and 503 with Retry-After are right; a cut or refused connection is allowed. */
function classify (res, expected, tally) {
  tally.requests++
  if (res.status === undefined) bump(tally.refused, res.error)
  else if (res.status === 200 && !res.complete) tally.cut++
  else if (res.status === 200 && res.body.equals(expected)) tally.ok++
  else if (res.status === 200) tally.wrongBodies++
  else if (res.status === 503 && res.headers['retry-after'] !== undefined) tally.unavailable++
  else bump(tally.wrong, res.status === 503 ? '503 without Retry-After' : res.status)
}

/** `clients` loops, each asking for `url` again as soon as it has its answer, for `ms`. */
async function flood (url, { clients, ms, expected }) {
  const tally = newTally()
  const end = now() + ms
  await Promise.all(Array.from({ length: clients }, async () => {
    while (now() < end) classify(await get(url, { timeoutMs: 10_000 }), expected, tally)
  }))
  return tally
}

const sum = map => [...map.values()].reduce((a, b) => a + b, 0)

async function exhaustion (r, scope, { label, limits, quick }) {
  const mid = bigFile().subarray(0, MiB)
  const root = makeRoot(scope, 'descriptors', { 'mid.wasm': mid, 'app.wasm': WASM })
  const cli = await startCli(scope, { root, nofile: 128, args: ['--quiet', '--memory-budget', '0'], env: limits === undefined ? {} : limitsEnv(limits) })
  const tally = await flood(`${cli.url}/mid.wasm`, { clients: 300, ms: quick ? 3000 : 5000, expected: mid })
  const alive = running(cli.child)
  const started = now()
  const serving = await within(async () => { const res = await get(`${cli.url}/mid.wasm`); return res.status === 200 && res.body.equals(mid) }, { ms: 15_000, every: 200 })
  r.info(`${label}: requests (300 clients, ${quick ? 3 : 5} s)`, tally.requests)
  r.info(`${label}: 200 with the right bytes`, tally.ok)
  r.info(`${label}: 503 with Retry-After`, tally.unavailable)
  r.info(`${label}: refused or reset before a status`, `${sum(tally.refused)}${listOf(tally.refused)}`)
  r.info(`${label}: cut after a 200's headers`, tally.cut)
  r.zero(`${label}: wrong statuses (404, 500, …)`, sum(tally.wrong), listOf(tally.wrong))
  r.zero(`${label}: wrong bodies`, tally.wrongBodies)
  r.yes(`${label}: alive and serving afterwards`, alive && serving !== undefined, serving === undefined ? '' : ` (after ${seconds(now() - started)})`)
  const messages = logMessages(cli)
  r.info(`${label}: log lines (warn and above)`, `${sum(messages)}${listOf(new Map([...messages].map(([msg, n]) => [msg.slice(0, 40) + '…', n])))}`)
  return cli
}

/** How many times the CLI logged each message (its JSON lines on stdout). */
function logMessages (cli) {
  const messages = new Map()
  for (const line of cli.out.stdout.split('\n')) {
    try { bump(messages, JSON.parse(line).msg) } catch {}
  }
  return messages
}

/** A line of the CLI's JSON log whose message matches `pattern`. */
const logLine = (cli, pattern) => cli.out.stdout.split('\n').find(line => pattern.test(line))

async function descriptors (r, scope, cfg) {
  if (!hasCommand('prlimit')) {
    r.info('skipped', 'prlimit not found (util-linux)')
    return
  }
  r.info('open-file limit (prlimit --nofile)', 128)
  const uncapped = await exhaustion(r, scope, { label: 'maxConnections 1000', limits: { maxConnections: 1000 }, quick: cfg.quick })
  const fix = logLine(uncapped, /ulimit -n/)
  r.yes('maxConnections 1000: log line with the fix (ulimit -n)', fix !== undefined)
  if (fix !== undefined) r.note(`log line: ${JSON.parse(fix).msg}`)
  await killCli(uncapped)
  const capped = await exhaustion(r, scope, { label: 'default cap', quick: cfg.quick })
  const limit = logLine(capped, /connection limit reached/)
  r.info('default cap: maxConnections (derived)', limit === undefined ? 'not logged' : JSON.parse(limit).maxConnections)
  r.yes('default cap: "connection limit reached" logged with the fix', limit !== undefined)
  if (limit !== undefined) r.note(`log line: ${JSON.parse(limit).msg}`)
}

// ---------------------------------------------------------------------------------------------
// 5. Rewrite churn.

const METHODS = ['in place', 'atomic rename', 'cp', 'cp -p', 'touch -r']

/**
 * Writes `bytes` over the module the way `method` does. `cp -p` and `touch -r` keep the size (the
 * caller chose it), the inode and the mtime to the nanosecond: only the content and ctime change,
 * the hole a (size, mtime, inode) identity check cannot see.
 */
async function writeVersion (paths, method, bytes) {
  const { target, staging, reference } = paths
  if (method === 'in place') return writeFile(target, bytes)
  if (method === 'atomic rename') {
    await writeFile(`${target}.tmp`, bytes)
    return rename(`${target}.tmp`, target)
  }
  await writeFile(staging, bytes)
  if (method === 'cp') return run('cp', [staging, target])
  if (method === 'cp -p') {
    await run('touch', ['-r', target, staging])
    return run('cp', ['-p', staging, target])
  }
  await run('touch', ['-r', target, reference])
  await writeFile(target, bytes)
  return run('touch', ['-r', reference, target])
}

/**
 * The writer, in a worker thread so that the readers' hashing never slows it down: rewrites the
 * module every 10–60 ms for `ms`, posting each version's hash before it reaches the disk.
 */
async function writerThread ({ paths, ms }) {
  const byMethod = new Map()
  const end = now() + ms
  let size = (await stat(paths.target)).size
  for (let i = 0; now() < end; i++) {
    const method = METHODS[i % METHODS.length]
    if (method !== 'cp -p' && method !== 'touch -r') size = MiB + Math.floor(Math.random() * 2 * MiB)
    const key = randomBytes(16)
    const bytes = versionBytes(key, size)
    parentPort.postMessage({ sha: sha256(bytes).toString('hex'), key: key.toString('hex'), size, inPlace: method !== 'atomic rename' })
    await writeVersion(paths, method, bytes)
    bump(byMethod, method)
    await sleep(10 + Math.random() * 50)
  }
  parentPort.postMessage({ byMethod: [...byMethod] })
}

/**
 * A version's bytes, from its key: random-looking, and any prefix can be made again later to tell a
 * file caught mid-write (an in-place write truncates, then writes) from a torn body.
 */
function versionBytes (key, size) {
  return createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(size))
}

/** Starts the writer thread; `done` resolves with the versions written by method, `versions` holds every hash. */
function startWriter (scope, paths, ms) {
  const worker = new Worker(fileURLToPath(import.meta.url), { workerData: { role: 'writer', paths, ms } })
  scope.defer(() => worker.terminate())
  const versions = new Set()
  const inPlace = []
  const done = new Promise((resolve, reject) => {
    worker.on('message', m => {
      if (m.sha === undefined) return resolve(new Map(m.byMethod))
      versions.add(m.sha)
      if (m.inPlace) inPlace.push({ key: Buffer.from(m.key, 'hex'), size: m.size })
    })
    worker.on('error', reject)
    worker.on('exit', code => reject(new Error(`the writer thread exited (${code}) before it finished`)))
  })
  return { versions, inPlace, done }
}

/**
 * Asks for the module until `end`. A whole 200 must carry its own ETag and length, and its hash is
 * kept to be found among the versions written once the writer has said them all.
 */
async function churnReader (url, end, tally, versions) {
  while (now() < end) {
    const res = await get(url, { timeoutMs: 15_000 })
    tally.requests++
    if (res.status === undefined) bump(tally.refused, res.error)
    else if (res.status === 200 && !res.complete) tally.cut++
    else if (res.status === 200) {
      const sha = sha256(res.body).toString('hex')
      // Every version is announced before it reaches the disk: a body not among them now never will be.
      tally.bodies.push({ sha, what: `${res.body.length} bytes`, ...(versions.has(sha) ? {} : { body: res.body }) })
      if (res.headers.etag !== etagOf(res.body)) tally.wrongEtags++
      if (res.headers['content-length'] !== String(res.body.length)) tally.wrongLengths++
    } else if (res.status === 503 && res.headers['retry-after'] !== undefined) tally.unavailable++
    else bump(tally.wrong, res.status === 503 ? '503 without Retry-After' : res.status)
  }
}

async function churn (r, scope, cfg) {
  const ms = cfg.quick ? 6000 : 10_000
  const first = randomBytes(2 * MiB)
  const root = makeRoot(scope, 'churn', { 'mod.wasm': first })
  const side = scope.tmp('churn-staging')
  const paths = { target: join(root, 'mod.wasm'), staging: join(side, 'staging.wasm'), reference: join(side, 'mtime') }
  writeFileSync(paths.reference, '')
  const inMemory = await startCli(scope, { root, args: ['--quiet'] })
  const streamed = await startCli(scope, { root, args: ['--quiet', '--memory-budget', '0'] })
  const tallies = [inMemory, streamed].map(() => ({ ...newTally(), bodies: [], wrongEtags: 0, wrongLengths: 0 }))
  const writer = startWriter(scope, paths, ms)
  const end = now() + ms
  const [byMethod] = await Promise.all([
    writer.done,
    ...[0, 1, 2, 3].map(() => churnReader(`${inMemory.url}/mod.wasm`, end, tallies[0], writer.versions)),
    ...[0, 1, 2, 3].map(() => churnReader(`${streamed.url}/mod.wasm`, end, tallies[1], writer.versions)),
  ])
  writer.versions.add(sha256(first).toString('hex'))
  r.info(`versions written in ${ms / 1000} s (1–3 MB, every 10–60 ms)`, `${sum(byMethod)}${listOf(byMethod)}`)
  for (const [label, tally] of [['held in memory', tallies[0]], ['streamed (--memory-budget 0)', tallies[1]]]) {
    // A prefix of a version written in place is the file as it was on disk mid-write, served with its
    // own length and ETag (D16 allows it; any server reading the file then would send it too); any
    // other body is torn: bytes of no single version.
    const unknown = tally.bodies.filter(body => !writer.versions.has(body.sha))
    const partial = unknown.filter(({ body }) => writer.inPlace.some(v => body.length < v.size && versionBytes(v.key, body.length).equals(body)))
    const wrong = unknown.filter(body => !partial.includes(body))
    r.info(`${label}: whole 200s checked (4 readers)`, tally.bodies.length)
    r.info(`${label}: a file caught mid-write in place (a prefix of one version)`, partial.length)
    r.zero(`${label}: wrong bodies (not a version written)`, wrong.length, listOf(wrong.reduce((map, body) => bump(map, body.what), new Map())))
    r.zero(`${label}: ETag not the body's hash`, tally.wrongEtags)
    r.zero(`${label}: Content-Length not the body's length`, tally.wrongLengths)
    r.zero(`${label}: wrong statuses (404, 500, …)`, sum(tally.wrong), listOf(tally.wrong))
    r.info(`${label}: 503 with Retry-After`, tally.unavailable)
    r.info(`${label}: cut short (allowed)`, tally.cut)
    r.zero(`${label}: no response`, sum(tally.refused), listOf(tally.refused))
  }
}

// ---------------------------------------------------------------------------------------------
// 6. Directory and root replacement.

/**
 * Each kind of replacement is a set-up and a round: `prepare` writes what the round needs, the
 * round's `before` checks are polled until served (so the old content is held), `change` is timed
 * from its end, and the `after` checks must all hold within the bound.
 */
const KINDS = {
  'rm -rf sub && mkdir sub': {
    files: { 'sub/f.txt': 'sub 0', 'sub/gone-0.txt': 'gone' },
    round: (base, i) => ({
      before: [['/sub/f.txt', `sub ${i - 1}`], [`/sub/gone-${i - 1}.txt`, 'gone']],
      change: async () => {
        await rm(join(base, 'sub'), { recursive: true, force: true })
        await mkdir(join(base, 'sub'))
        await writeFile(join(base, 'sub/f.txt'), `sub ${i}`)
        await writeFile(join(base, `sub/gone-${i}.txt`), 'gone')
      },
      after: [['/sub/f.txt', `sub ${i}`], [`/sub/gone-${i - 1}.txt`, 404]],
    }),
  },
  'mv swap of two directories': {
    files: { 'a/f.txt': 'a', 'b/f.txt': 'b' },
    round: (base, i) => ({
      prepare: async () => {
        await writeFile(join(base, 'a/f.txt'), `a ${i}`)
        await writeFile(join(base, 'b/f.txt'), `b ${i}`)
        await writeFile(join(base, `a/mark-${i}.txt`), 'mark')
      },
      before: [['/a/f.txt', `a ${i}`], ['/b/f.txt', `b ${i}`], [`/a/mark-${i}.txt`, 'mark']],
      change: async () => {
        await rename(join(base, 'a'), join(base, 'swap'))
        await rename(join(base, 'b'), join(base, 'a'))
        await rename(join(base, 'swap'), join(base, 'b'))
      },
      after: [['/a/f.txt', `b ${i}`], ['/b/f.txt', `a ${i}`], [`/a/mark-${i}.txt`, 404], [`/b/mark-${i}.txt`, 'mark']],
    }),
  },
  'root deleted and made again': {
    files: { 'f.txt': 'root 0', 'gone-0.txt': 'gone' },
    round: (base, i) => ({
      before: [['/f.txt', `root ${i - 1}`], [`/gone-${i - 1}.txt`, 'gone']],
      change: async () => {
        await rm(base, { recursive: true, force: true })
        await mkdir(base)
        await writeFile(join(base, 'f.txt'), `root ${i}`)
        await writeFile(join(base, `gone-${i}.txt`), 'gone')
      },
      after: [['/f.txt', `root ${i}`], [`/gone-${i - 1}.txt`, 404]],
    }),
  },
  'symlinked root re-pointed': {
    symlinked: true,
    files: { 'f.txt': 'release 0', 'only-0.txt': 'only' },
    round: (base, i) => ({
      prepare: async () => {
        await mkdir(join(base, `../release-${i}`))
        await writeFile(join(base, `../release-${i}/f.txt`), `release ${i}`)
        await writeFile(join(base, `../release-${i}/only-${i}.txt`), 'only')
      },
      before: [['/f.txt', `release ${i - 1}`], [`/only-${i - 1}.txt`, 'only']],
      change: async () => {
        await symlink(`release-${i}`, `${base}.next`)
        await rename(`${base}.next`, base) // atomic, as deploy tools re-point a "current" link
        await rm(join(base, `../release-${i - 2}`), { recursive: true, force: true })
      },
      after: [['/f.txt', `release ${i}`], [`/only-${i - 1}.txt`, 404]],
    }),
  },
}

/** Polls every check (a body, or a status) until all hold; resolves with the statuses seen on the way. */
async function converge (url, checks, { ms, seen }) {
  return within(async () => {
    const answers = await Promise.all(checks.map(([path]) => get(url + path, { timeoutMs: 5000 })))
    let all = true
    answers.forEach((res, i) => {
      const want = checks[i][1]
      if (res.status !== 200 && res.status !== 404 && res.status !== 503) bump(seen.wrong, res.status ?? res.error)
      if (res.status === 404 && typeof want !== 'number') seen.missing++
      if (typeof want === 'number' ? res.status !== want : res.status !== 200 || res.body.toString() !== want) all = false
    })
    return all
  }, { ms, every: 20 })
}

/** Sets a kind up under its own CLI; `base` is the root (a symlink to release-0 for the symlinked kind). */
async function setupKind (scope, kind) {
  const dir = scope.tmp('directories')
  const base = join(dir, 'root')
  const real = kind.symlinked ? join(dir, 'release-0') : base
  for (const [path, body] of Object.entries(kind.files)) {
    mkdirSync(dirname(join(real, path)), { recursive: true })
    writeFileSync(join(real, path), body)
  }
  if (kind.symlinked) await symlink('release-0', base)
  const cli = await startCli(scope, { root: base, args: ['--quiet'] })
  return { base, cli }
}

async function directories (r, scope, cfg) {
  const rounds = cfg.quick ? 5 : 20
  const boundMs = REVALIDATE_S * 1000 + 500
  r.info('revalidate (default)', `${REVALIDATE_S} s`)
  for (const [name, kind] of Object.entries(KINDS)) {
    const { base, cli } = await setupKind(scope, kind)
    const times = []
    const seen = { wrong: new Map(), missing: 0 }
    let missed = 0
    for (let i = 1; i <= rounds; i++) {
      const round = kind.round(base, i)
      await round.prepare?.()
      const primed = await converge(cli.url, round.before, { ms: 15_000, seen })
      if (primed === undefined) throw new Error(`${name}, round ${i}: the content before the change was never served`)
      await round.change()
      const changed = now()
      const done = await converge(cli.url, round.after, { ms: 15_000, seen })
      if (done === undefined) missed++
      else times.push(now() - changed)
    }
    r.check(`${name} ×${rounds}: new content served, deleted files 404 — max / median`, `${seconds(max(times))} / ${seconds(median(times))}`, { must: `≤ ${REVALIDATE_S} s (revalidate) + 0.5 s`, pass: missed === 0 && max(times) <= boundMs })
    r.zero(`${name}: rounds not converged within 15 s`, missed)
    r.zero(`${name}: wrong statuses on the way (500, …)`, sum(seen.wrong), listOf(seen.wrong))
    r.info(`${name}: 404s for a file on disk, before the new content was served`, seen.missing)
    await killCli(cli)
  }
}

// ---------------------------------------------------------------------------------------------
// 7. A file over 2 GiB.

async function largeFile (r, scope) {
  const size = Math.floor(2.2 * 2 ** 30)
  const mark = Buffer.from('the last sixteen')
  const root = scope.tmp('large-file')
  const path = join(root, 'huge.bin')
  writeFileSync(path, '')
  truncateSync(path, size) // sparse: no disk space, reads as zeros
  const fd = openSync(path, 'r+')
  writeSync(fd, mark, 0, mark.length, size - mark.length)
  closeSync(fd)
  r.info('file', `${size} bytes, sparse (${Math.round(statSync(path).blocks * 512 / 1024)} KiB on disk), --memory-budget 4GB`)
  const started = now()
  const cli = await startCli(scope, { root, args: ['--quiet', '--memory-budget', '4GB'] }).catch(err => err)
  if (cli instanceof Error) {
    r.yes(`started (after ${seconds(now() - started)})`, false, ` (${cli.message.replace(/\s+/g, ' ').slice(0, 160)})`)
    return
  }
  const url = `${cli.url}/huge.bin`
  const head = await get(url, { method: 'HEAD', timeoutMs: 30_000 })
  const tail = await get(url, { headers: { range: `bytes=${size - mark.length}-${size - 1}` }, timeoutMs: 30_000 })
  const across = await get(url, { headers: { range: 'bytes=2147483640-2147483655' }, timeoutMs: 30_000 })
  const rss = Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${cli.pid}/status`, 'utf8'))?.[1]) / 1024
  r.info('time to start (spawn → listening)', seconds(cli.startMs))
  r.check('HEAD: status, Content-Length', `${head.status}, ${head.headers['content-length']}`, { must: `200, ${size}`, pass: head.status === 200 && head.headers['content-length'] === String(size) })
  r.check('last 16 bytes: status, bytes right', `${tail.status}, ${tail.body.equals(mark) ? 'yes' : 'no'}`, { must: '206, yes', pass: tail.status === 206 && tail.complete && tail.body.equals(mark) })
  r.check('16 bytes across the 2 GiB boundary: status, bytes right', `${across.status}, ${across.body.equals(Buffer.alloc(16)) ? 'yes' : 'no'}`, { must: '206, yes', pass: across.status === 206 && across.complete && across.body.equals(Buffer.alloc(16)) })
  r.info('server RSS after the requests', `${Math.round(rss)} MB`)
}

// ---------------------------------------------------------------------------------------------
// 8. SIGTERM and SIGINT under load.

/**
 * Downloads `url` reading no faster than `rate` bytes a second, hashing as it goes. `started`
 * resolves with the headers; `done` with the bytes received, whether the response ended whole and
 * its hash (bounded at 60 s).
 */
function throttledGet (scope, url, rate) {
  let onHeaders
  const started = new Promise(resolve => { onHeaders = resolve })
  const done = new Promise(resolve => {
    const hash = createHash('sha256')
    let bytes = 0
    const finish = complete => { clearTimeout(cap); onHeaders(false); resolve({ bytes, complete, sha: hash.digest('hex') }) }
    let finished = false
    const once = complete => { if (!finished) { finished = true; finish(complete) } }
    const req = httpRequest(url, { agent: false }, res => {
      const begin = now()
      onHeaders(true)
      res.on('data', chunk => {
        bytes += chunk.length
        hash.update(chunk)
        const wait = begin + bytes / rate * 1000 - now()
        if (wait > 20) { res.pause(); setTimeout(() => res.resume(), wait) }
      })
      res.on('end', () => once(res.complete))
      res.on('error', () => once(false))
      res.on('close', () => once(res.complete))
    })
    req.on('error', () => once(false))
    const cap = setTimeout(() => req.destroy(), 60_000)
    scope.defer(() => req.destroy())
    req.end()
  })
  return { started, done }
}

/** The CLI's log lines about shutting down (not request lines), as "msg {fields}". */
function shutdownLines (cli) {
  const lines = []
  for (const line of cli.out.stdout.split('\n')) {
    let entry
    try { entry = JSON.parse(line) } catch { continue }
    if (entry.msg === 'request' || !/shut|clos|cut|exit|stop/i.test(entry.msg ?? '')) continue
    const { level, time, pid, hostname, msg, ...fields } = entry
    lines.push(`${msg} ${JSON.stringify(fields)}`)
  }
  return lines
}

async function signals (r, scope, cfg) {
  const root = makeRoot(scope, 'signals', { 'big.bin': bigFile() })
  const want = sha256(bigFile()).toString('hex')
  const cli = await startCli(scope, { root }) // log level info: the shutdown lines
  const fast = 25
  const rates = [...Array(fast).fill(8 * MiB), ...Array(25).fill(1.5 * MiB)]
  const downloads = rates.map(rate => throttledGet(scope, `${cli.url}/big.bin`, rate))
  await withDeadline(Promise.all(downloads.map(d => d.started)), 15_000, 'the downloads\' headers')
  await sleep(1000) // the downloads are under way: 1 s into a 4 s or a 21 s download
  const signalled = now()
  cli.child.kill('SIGTERM')
  const exit = await withDeadline(cli.exited, (GRACE_S + 20) * 1000, 'the exit after SIGTERM')
  const results = await Promise.all(downloads.map(d => d.done))
  const whole = results.map(x => x.complete && x.sha === want)
  r.info('downloads of 32 MB under way (25 at 8 MB/s, 25 at 1.5 MB/s)', rates.length)
  r.check('SIGTERM: exit code', exit.code ?? exit.signal, { must: '0', pass: exit.code === 0 })
  r.check('SIGTERM: time to exit', seconds(exit.at - signalled), { must: `≤ ${GRACE_S} s (grace) + 1 s`, pass: exit.at - signalled <= (GRACE_S + 1) * 1000 })
  r.check('downloads completed (of the 25 that can finish within the grace)', whole.slice(0, fast).filter(Boolean).length, { must: String(fast), pass: whole.slice(0, fast).every(Boolean) })
  r.info('slow downloads completed / cut at the grace period', `${whole.slice(fast).filter(Boolean).length} / ${whole.slice(fast).filter(x => !x).length}`)
  r.zero('downloads ended whole but with wrong bytes', results.filter(x => x.complete && x.sha !== want).length)
  const lines = shutdownLines(cli)
  r.info('shutdown log lines', lines.length === 0 ? 'none' : lines.length)
  for (const line of lines) r.note(`log line: ${line}`)
  await secondSignal(r, scope, root)
}

/** SIGTERM, then SIGINT 1 s into the grace period: does the second signal end it at once? */
async function secondSignal (r, scope, root) {
  const cli = await startCli(scope, { root, args: ['--quiet'] })
  const downloads = Array.from({ length: 10 }, () => throttledGet(scope, `${cli.url}/big.bin`, MiB))
  await withDeadline(Promise.all(downloads.map(d => d.started)), 15_000, 'the downloads\' headers')
  cli.child.kill('SIGTERM')
  await sleep(1000)
  const second = now()
  cli.child.kill('SIGINT')
  const exit = await withDeadline(cli.exited, (GRACE_S + 20) * 1000, 'the exit after SIGINT')
  const ms = exit.at - second
  const code = exit.code ?? exit.signal
  r.info('second signal (SIGINT 1 s into the grace period)', ms < 1500 ? `exit after ${seconds(ms)}, code ${code}` : `not supported (exit ${seconds(ms)} after it, code ${code})`)
}

// ---------------------------------------------------------------------------------------------

const SCENARIOS = {
  slowloris,
  'stalled-h1': stalledHttp1,
  'stalled-h2': stalledHttp2,
  descriptors,
  churn,
  directories,
  'large-file': largeFile,
  signals,
}

const USAGE = `Usage: node bench/soak.mjs [--quick] [--only ${Object.keys(SCENARIOS).join(',')}]\n`

function parseArgs (argv) {
  const cfg = { quick: false, only: Object.keys(SCENARIOS) }
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--quick') cfg.quick = true
    else if (argv[i] === '--only' || argv[i].startsWith('--only=')) cfg.only = (argv[i] === '--only' ? argv[++i] ?? '' : argv[i].slice(7)).split(',').filter(Boolean)
    else if (argv[i] === '--help' || argv[i] === '-h') return { help: true }
    else return { error: `unknown argument: ${argv[i]}` }
  }
  const unknown = cfg.only.filter(name => !(name in SCENARIOS))
  if (unknown.length > 0 || cfg.only.length === 0) return { error: `unknown scenario: ${unknown.join(', ') || '(none given)'}` }
  return cfg
}

async function main (argv) {
  const cfg = parseArgs(argv)
  if (cfg.help) { process.stdout.write(USAGE); return 0 }
  if (cfg.error !== undefined) { process.stderr.write(`soak: ${cfg.error}\n${USAGE}`); return 2 }
  if (!existsSync(CLI)) { process.stderr.write('soak: dist/cli.js not found: run `npm run build` (npm run soak does)\n'); return 2 }
  for (const name of cfg.only) {
    process.stderr.write(`soak: ${name}${cfg.quick ? ' (quick)' : ''}…\n`)
    const started = now()
    const scope = new Scope()
    const r = reporter(name)
    try {
      await withDeadline(SCENARIOS[name](r, scope, cfg), (cfg.quick ? 120 : 300) * 1000, name)
    } catch (err) {
      r.check('ran to the end', err.message, { must: 'yes', pass: false })
    } finally {
      await scope.close()
    }
    r.info('duration', seconds(now() - started))
  }
  printTable()
  return rows.some(row => !row.pass) ? 1 : 0
}

if (isMainThread) {
  guardProcess()
  main(process.argv.slice(2)).then(code => { cleanupAll(); process.exit(code) })
} else if (workerData?.role === 'writer') {
  void writerThread(workerData)
}
