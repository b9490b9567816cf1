/**
 * `--workers N|auto`: N processes serving one port, for a machine with more than one core and no
 * orchestrator to run replicas (in a container, run replicas: README, "Workers"). `--workers 1`, the
 * default, never comes here: the CLI is the one process it always was.
 *
 * The architecture, and why:
 * - A primary process that serves nothing, and N workers forked with node:cluster, each a complete
 *   server (src/server.ts). cluster gives the primary an IPC channel to each worker and its exits on
 *   every Node version; the workers inherit stdout and stderr.
 * - The port: on Linux and FreeBSD with Node 22.12+ (23.1+), each worker binds it itself with
 *   SO_REUSEPORT (`reusePort`, https://nodejs.org/api/net.html#serverlistenoptions-callback; with
 *   `exclusive`, a cluster worker binds its own socket) and the kernel spreads connections over the
 *   workers: the primary is on no request's path. Elsewhere (Node 20, macOS: SO_REUSEPORT there does
 *   not balance, and Node refuses the option where the OS lacks it, nodejs/node#61018) the workers
 *   listen through cluster's round-robin primary, which accepts each connection and hands it on.
 * - The primary picks the port before any worker starts (a probe bind that it closes again): port 0
 *   and "the default port is taken, use the next one" need one answer for all N workers, and an error
 *   (the port asked for is taken, an unknown host) is said once, as the single process says it.
 * - One log: every worker writes its pino lines to the stdout it inherited, each line with a write(2)
 *   of its own (lineWriter). Writes of up to PIPE_BUF (4096) bytes to a pipe are atomic (POSIX
 *   write(2)), and each write to a regular file lands whole at the shared offset, so lines of two
 *   workers never interleave mid-line. pino's default destination would not do: it writes
 *   asynchronously, batching lines into writes of up to 16 KB, and a batch past PIPE_BUF can be split
 *   by another process's write (and its last lines overtook earlier ones at exit). A line carries
 *   `pid`: which worker answered. Relaying every line through the primary would put it on every
 *   request's path. The primary writes its own few lines (a worker replaced, shutting down) alike.
 * - The banner or serving line is printed once, by the primary, when every worker listens, and
 *   WASM_SERVE_ADDRESS_FILE is written just before it, as the single process does (healthcheck.ts).
 * - Encodings made on the fly are made once: worker 1 (slot 0) is the encoder, the others follow and
 *   read them from the cache directory all share (onthefly.ts, EncodingShare); the primary relays
 *   "made" to the followers and a follower's request for a deferred file to the encoder.
 * - A worker that exits while serving is logged (pid, exit code, signal) and replaced: at once the
 *   first time, then after 1, 2, 4 … 30 s while its replacements keep dying within 10 s of their
 *   start, so a worker that cannot start does not spin. One that dies before the server has started
 *   is a start-up failure: the others are stopped and the primary exits with its exit code.
 * - SIGTERM/SIGINT: each worker is told to drain (the single process's shutdown: stop accepting,
 *   let responses under way finish, 8 s grace), and the primary exits 0 when all have. A second
 *   signal is passed on (each worker then exits at once, saying what it cut) and the primary exits
 *   with 128 + its number.
 */
import cluster, { type Worker } from 'node:cluster'
import { writeSync } from 'node:fs'
import { Writable } from 'node:stream'
import { createServer as createProbe } from 'node:net'
import { availableParallelism, hostname } from 'node:os'
import type { FastifyInstance } from 'fastify'
import { chooseFormat, prettyStream, useColour, type LogFormat } from './log-format.js'
import type { EncodingShare } from './onthefly.js'
import { EXIT } from './start-errors.js'
import type { TlsMaterial } from './tls.js'

/** A replacement that dies this soon after its start counts towards the back-off. */
const QUICK_EXIT_MS = 10_000
const MAX_BACKOFF_MS = 30_000
/** After the workers' own grace period, how long the primary waits before it kills what is left. */
const KILL_AFTER_GRACE_MS = 2000

/** What a worker says when it listens: what the primary's banner needs. */
export interface Served {
  port: number
  address: string
  files: number
  hasBrSiblings: boolean
}

/** The primary's first message to a worker: everything it takes from the primary rather than computing itself. */
export interface WorkerStart {
  port: number
  /** Slot 0 makes the encodings (onthefly.ts). */
  encoder: boolean
  reusePort: boolean
  /** Loaded once by the primary: a development certificate made for one process must be the same in every worker. */
  tls: TlsMaterial | undefined
}

type Signal = 'SIGTERM' | 'SIGINT'
type ToWorker = ({ type: 'start' } & WorkerStart) | { type: 'drain', signal: Signal } | { type: 'made', path: string, etag: string } | { type: 'requested', path: string }
type FromWorker = { type: 'hello' } | ({ type: 'ready' } & Served) | { type: 'made', path: string, etag: string } | { type: 'requested', path: string }

/** `auto`: one worker per core the process may use (os.availableParallelism, cgroup and affinity aware). */
export function workerCount (workers: number | 'auto'): number {
  return workers === 'auto' ? availableParallelism() : workers
}

/**
 * Whether workers can each bind the port with SO_REUSEPORT and have the kernel balance: Node 22.12+
 * or 23.1+ (nodejs/node#55408) on Linux or FreeBSD (where the kernel balances between the sockets).
 */
export function reusePortAvailable (version = process.versions.node, platform = process.platform): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number)
  const supported = major > 23 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12)
  return supported && (platform === 'linux' || platform === 'freebsd')
}

/** Binds host:port once and lets it go: whether the workers can have it, and which port 0 means. */
export async function probePort (host: string, port: number): Promise<number> {
  const server = createProbe()
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen({ host, port, exclusive: true }, resolve)
  })
  const bound = (server.address() as { port: number }).port
  await new Promise(resolve => server.close(resolve))
  return bound
}

/**
 * A log destination writing each line pino hands it with one write(2) of its own to `fd`, in order.
 * A pipe another process has made non-blocking answers EAGAIN when full: the line is tried again
 * (after 1 ms) rather than dropped, as pino's own synchronous destination does.
 */
export function lineWriter (fd: number, isTTY: boolean | undefined): Writable & { isTTY?: boolean } {
  const wait = new Int32Array(new SharedArrayBuffer(4))
  const stream: Writable & { isTTY?: boolean } = new Writable({
    write (chunk: Buffer, _encoding, done) {
      for (let at = 0; at < chunk.length;) {
        try {
          at += writeSync(fd, chunk, at)
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') break // stdout closed: the line is lost, the server goes on
          Atomics.wait(wait, 0, 0, 1)
        }
      }
      done()
    },
  })
  stream.isTTY = isTTY
  return stream
}

/** The primary's log lines, in the workers' format (pino's JSON record, or the pretty line on a terminal). */
export interface PrimaryLog {
  info: (fields: object, msg: string) => void
  warn: (fields: object, msg: string) => void
}

const LEVELS = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity } as const

export function primaryLog (level: keyof typeof LEVELS, format: LogFormat): PrimaryLog {
  const out = process.stdout
  const lines = lineWriter(out.fd, out.isTTY)
  const dest = chooseFormat(format, out) === 'pretty' ? prettyStream(lines, useColour(out, process.env)) : lines
  const host = hostname()
  const write = (n: number) => (fields: object, msg: string) => {
    if (n >= LEVELS[level]) dest.write(JSON.stringify({ level: n, time: Date.now(), pid: process.pid, hostname: host, role: 'primary', ...fields, msg }) + '\n')
  }
  return { info: write(30), warn: write(40) }
}

export interface PrimaryInput {
  count: number
  port: number
  tls: TlsMaterial | undefined
  log: PrimaryLog
  graceMs: number
  /** Publishes the address and prints the banner or serving line: once, when every worker listens. */
  announce: (served: Served) => void
}

interface Slot {
  worker: Worker
  startedAt: number
  hello: boolean
  /** Replacements in a row that died within QUICK_EXIT_MS. */
  quick: number
}

/** The primary: starts the workers, supervises them, and resolves with the exit code. */
export async function runPrimary (input: PrimaryInput): Promise<number> {
  // Structured clone rather than JSON for the messages: certificates and keys go through intact.
  cluster.setupPrimary({ serialization: 'advanced' })
  return new Promise<number>(resolve => new Primary(input, resolve).start())
}

class Primary {
  private readonly slots: Array<Slot | undefined> = []
  private readonly restarts = new Set<NodeJS.Timeout>()
  private readonly reusePort = reusePortAvailable()
  private phase: 'starting' | 'serving' | 'closing' = 'starting'
  private readonly ready = new Set<number>()
  /** A start-up failure's code, once there is one. */
  private exitCode: number = EXIT.ok
  private stopSignal: Signal = 'SIGTERM'

  constructor (private readonly input: PrimaryInput, private readonly done: (code: number) => void) {}

  start (): void {
    for (let slot = 0; slot < this.input.count; slot++) this.fork(slot, 0)
    process.on('SIGTERM', () => this.signal('SIGTERM'))
    process.on('SIGINT', () => this.signal('SIGINT'))
  }

  private fork (slot: number, quick: number): void {
    const worker = cluster.fork()
    const state: Slot = { worker, startedAt: Date.now(), hello: false, quick }
    this.slots[slot] = state
    worker.on('message', (msg: FromWorker) => this.message(slot, state, msg))
    worker.on('exit', (code: number | null, signal: NodeJS.Signals | null) => this.exited(slot, state, code, signal))
  }

  private message (slot: number, state: Slot, msg: FromWorker): void {
    const { worker } = state
    switch (msg.type) {
      case 'hello':
        state.hello = true
        send(worker, { type: 'start', port: this.input.port, encoder: slot === 0, reusePort: this.reusePort, tls: this.input.tls })
        // Told to stop while it was starting: it stops as soon as it listens.
        if (this.phase === 'closing') send(worker, { type: 'drain', signal: this.stopSignal })
        return
      case 'ready': return this.listening(slot, state, msg)
      case 'made':
        for (const other of this.slots) if (other !== undefined && other !== state && other.hello) send(other.worker, msg)
        return
      case 'requested': {
        const encoder = this.slots[0]
        if (encoder?.hello === true && encoder !== state) send(encoder.worker, msg)
      }
    }
  }

  private listening (slot: number, state: Slot, served: Served): void {
    if (this.phase === 'serving') {
      this.input.log.info({ worker: state.worker.process.pid, slot, encoder: slot === 0 }, 'worker started in place of the one that exited')
      return
    }
    if (this.phase !== 'starting') return
    this.ready.add(slot)
    if (this.ready.size < this.input.count) return
    this.phase = 'serving'
    this.input.log.info({ workers: this.input.count, pids: this.slots.map(s => s?.worker.process.pid), balancing: this.reusePort ? 'SO_REUSEPORT (the kernel)' : 'round-robin (the primary)' }, 'workers listening')
    this.input.announce(served)
  }

  private exited (slot: number, state: Slot, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.slots[slot] === state) this.slots[slot] = undefined
    const pid = state.worker.process.pid
    if (this.phase === 'closing') {
      if (this.slots.every(s => s === undefined)) this.finish(EXIT.ok)
      return
    }
    if (this.phase === 'starting') {
      // Its error is on stderr already: the start failed, as the single process's would.
      this.input.log.warn({ worker: pid, slot, code, signal }, 'a worker exited before the server started; stopping')
      this.phase = 'closing'
      for (const other of this.slots) other?.worker.process.kill('SIGTERM')
      this.exitCode = code !== null && code !== 0 ? code : EXIT.failed
      if (this.slots.every(s => s === undefined)) this.finish(this.exitCode)
      return
    }
    const quick = Date.now() - state.startedAt < QUICK_EXIT_MS ? state.quick + 1 : 0
    // The first replacement starts at once; one that keeps dying at start-up is retried ever more slowly.
    const delayMs = quick <= 1 ? 0 : Math.min(MAX_BACKOFF_MS, 1000 * 2 ** (quick - 2))
    this.input.log.warn({ worker: pid, slot, code, signal, restartInMs: delayMs }, 'worker exited unexpectedly; starting another')
    const timer = setTimeout(() => { this.restarts.delete(timer); this.fork(slot, quick) }, delayMs)
    this.restarts.add(timer)
  }

  private signal (signal: Signal): void {
    if (this.phase === 'closing') {
      const exitCode = signal === 'SIGINT' ? EXIT.interrupted : EXIT.terminated
      this.input.log.warn({ signal, exitCode }, 'shut down at once on a second signal; the workers cut what they were sending')
      // Each worker, already draining, takes it as its second signal: it exits at once, logging what it cut.
      for (const slot of this.slots) slot?.worker.process.kill(signal)
      process.exit(exitCode)
    }
    this.phase = 'closing'
    this.stopSignal = signal
    for (const timer of this.restarts) clearTimeout(timer)
    this.input.log.info({ signal, graceMs: this.input.graceMs, workers: this.slots.filter(Boolean).length }, 'shutting down')
    for (const slot of this.slots) {
      // One that has not asked for its start yet has no server to drain; told later, it drains once it listens.
      if (slot?.hello === true) send(slot.worker, { type: 'drain', signal })
      else slot?.worker.process.kill('SIGTERM')
    }
    if (this.slots.every(s => s === undefined)) { this.finish(EXIT.ok); return }
    setTimeout(() => {
      const left = this.slots.filter((s): s is Slot => s !== undefined)
      this.input.log.warn({ workers: left.map(s => s.worker.process.pid) }, 'workers still running after the grace period; killed')
      for (const slot of left) slot.worker.process.kill('SIGKILL')
      this.finish(EXIT.ok)
    }, this.input.graceMs + KILL_AFTER_GRACE_MS).unref()
  }

  private finish (code: number): void {
    if (code === EXIT.ok) this.input.log.info({ cut: 0 }, 'shut down')
    this.done(code)
  }
}

function send (worker: Worker, msg: ToWorker): void {
  // A worker that has just died cannot take it: its exit is handled on its own.
  if (worker.isConnected()) worker.send(msg, () => {})
}

/**
 * A worker's side. Asks the primary for its start (a message sent before the worker listened would be
 * lost), then `serve` builds and binds the server; the worker reports it listening, drains when the
 * primary says so (or is gone: the IPC channel closed), and shares encodings through the primary.
 */
export async function startWorker (): Promise<{ start: WorkerStart, share: EncodingShare, onDrain: (drain: (signal: Signal) => void) => void, listening: (app: FastifyInstance, address: string) => void }> {
  let drain: ((signal: Signal) => void) | undefined
  let drainAsked: Signal | undefined
  const listeners: Array<Parameters<EncodingShare['listen']>[0]> = []
  const start = new Promise<WorkerStart>(resolve => {
    process.on('message', (msg: ToWorker) => {
      if (msg.type === 'start') resolve(msg)
      else if (msg.type === 'drain') { drainAsked = msg.signal; drain?.(msg.signal) } else if (msg.type === 'made') for (const l of listeners) l.made(msg.path, msg.etag)
      else if (msg.type === 'requested') for (const l of listeners) l.requested(msg.path)
    })
  })
  // The primary is gone (killed with SIGKILL, say): no one would ever tell this worker to stop.
  process.on('disconnect', () => { drainAsked ??= 'SIGTERM'; drain?.(drainAsked) })
  tell({ type: 'hello' })
  const given = await start
  const share: EncodingShare = {
    encoder: given.encoder,
    made: (path, etag) => tell({ type: 'made', path, etag }),
    request: path => tell({ type: 'requested', path }),
    listen: listener => { listeners.push(listener) },
  }
  return {
    start: given,
    share,
    onDrain: fn => { drain = fn; if (drainAsked !== undefined) fn(drainAsked) },
    listening: (app, address) => {
      tell({ type: 'ready', port: given.port, address, files: app.wasmServe.files, hasBrSiblings: app.wasmServe.hasSiblings('br') })
    },
  }
}

function tell (msg: FromWorker): void {
  if (process.connected) process.send!(msg, undefined, {}, () => {})
}
