/** A fixed pool of worker threads running encode jobs first come, first served. */
import { Worker } from 'node:worker_threads'
import type { Job, WorkerJob, WorkerReply } from './types.js'

type Reply = Extract<WorkerReply, { ok: true }>

/** Told the bytes of the file the encoder has taken so far, as the worker reports them. */
export type OnProgress = (read: number) => void

interface Pending {
  job: WorkerJob
  onProgress: OnProgress | undefined
  resolve: (reply: Reply) => void
  reject: (err: Error) => void
}

interface Slot { worker: Worker, current: Pending | undefined }

/**
 * The worker's own file sits next to this one: `worker.js` in dist/, `worker.ts` when the sources run
 * under a TypeScript loader (tap). `execArgv` carries that loader into the thread.
 */
function workerUrl (): URL {
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js'
  return new URL(`./worker${ext}`, import.meta.url)
}

function jobError (reply: Extract<WorkerReply, { ok: false }>): Error {
  return Object.assign(new Error(reply.message), { code: reply.code })
}

/** Jobs run first come, first served; a job's worker may report progress before its answer. */
export class WorkerPool {
  readonly #slots: Slot[] = []
  readonly #queue: Pending[] = []
  #nextId = 0
  #closed = false

  constructor (size: number, url: URL = workerUrl()) {
    for (let i = 0; i < size; i++) this.#slots.push(this.#spawn(url))
  }

  run (job: Job, onProgress?: OnProgress): Promise<Reply> {
    if (this.#closed) return Promise.reject(new Error('worker pool closed'))
    return new Promise((resolve, reject) => {
      this.#queue.push({ job: { ...job, id: this.#nextId++ }, onProgress, resolve, reject })
      this.#dispatch()
    })
  }

  /** Stops every worker now; queued and running jobs are rejected. */
  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    const aborted = new Error('aborted')
    for (const p of this.#queue.splice(0)) p.reject(aborted)
    for (const slot of this.#slots) slot.current?.reject(aborted)
    await Promise.all(this.#slots.map(s => s.worker.terminate()))
  }

  #spawn (url: URL): Slot {
    const slot: Slot = { worker: new Worker(url, { execArgv: workerExecArgv() }), current: undefined }
    slot.worker.on('message', (reply: WorkerReply) => this.#settle(slot, reply))
    slot.worker.on('error', err => this.#crash(slot, url, err))
    return slot
  }

  #settle (slot: Slot, reply: WorkerReply): void {
    if ('progress' in reply) {
      slot.current?.onProgress?.(reply.progress)
      return
    }
    const pending = slot.current
    slot.current = undefined
    if (pending !== undefined) reply.ok ? pending.resolve(reply) : pending.reject(jobError(reply))
    this.#dispatch()
  }

  /** A worker that died (e.g. out of memory) fails its job only; a fresh one takes its place. */
  #crash (slot: Slot, url: URL, err: Error): void {
    slot.current?.reject(err)
    slot.current = undefined
    if (this.#closed) return
    const index = this.#slots.indexOf(slot)
    this.#slots[index] = this.#spawn(url)
    this.#dispatch()
  }

  #dispatch (): void {
    for (const slot of this.#slots) {
      if (this.#closed || this.#queue.length === 0) return
      if (slot.current !== undefined) continue
      slot.current = this.#queue.shift()
      slot.worker.postMessage(slot.current?.job)
    }
  }
}

/**
 * The parent's flags minus V8 heap sizes, which a Worker refuses ("invalid execArgv flags"): the CLI
 * runs with --max-semi-space-size (see the Dockerfile), and a worker's heap is its own anyway.
 */
function workerExecArgv (): string[] {
  return process.execArgv.filter(arg => !/^--max-(semi|old)-space-size/.test(arg))
}
