/**
 * `wasm-serve compress <dir>`: writes .br/.zst/.gz siblings for compressible files,
 * encoding on every core in worker threads, writing atomically from this thread, skipping siblings that
 * are up to date or would not be smaller. Returns the exit code (EXIT in src/start-errors.ts, as the
 * server's): 0 ok, 1 a file could not be read or written, 2 bad usage (a missing directory too), 130
 * interrupted. Rules: docs/delivery.md.
 */
import { availableParallelism } from 'node:os'
import { removeQuietly, writeAtomic } from '../atomic-write.js'
import { encodingOf, type EncodingToken } from '../encodings.js'
import { printable } from '../printable.js'
import { EXIT, startErrorText, UsageError } from '../start-errors.js'
import { HELP, parseCompressArgs, type CompressOptions } from './args.js'
import { WorkerPool } from './pool.js'
import { describeError, fileLine, formatTable, startProgress, type Io, type Progress } from './report.js'
import { openRoot, planTasks, scanRoot, type Plan } from './scan.js'
import type { Problem, Task } from './types.js'

export type { Io } from './report.js'

const NAME = 'wasm-serve compress'

export async function runCompress (argv: string[], io: Io = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  const parsed = parseCompressArgs(argv)
  if (parsed.kind === 'help') {
    io.stdout.write(HELP)
    return EXIT.ok
  }
  if (parsed.kind === 'error') {
    io.stderr.write(startErrorText(new UsageError(parsed.message, { option: parsed.flag, value: parsed.value }), NAME))
    return EXIT.usage
  }
  try {
    return await compressDir(parsed.options, io)
  } catch (err) {
    // Anything not tied to one sibling (an unreadable subdirectory, say): one line, not a stack.
    const path = (err as NodeJS.ErrnoException).path
    io.stderr.write(printable(`${NAME}: ${path === undefined ? '' : `cannot read ${path}: `}${describeError(err)}`) + '\n')
    return EXIT.failed
  }
}

/** An encoding this Node cannot make (zstd before Node 22.15) is dropped, with one note saying why. */
function usableEncodings (opts: CompressOptions, io: Io): EncodingToken[] {
  return opts.encodings.filter(token => {
    const { unavailable, suffix } = encodingOf(token)
    if (unavailable !== undefined) io.stderr.write(`${NAME}: ${token} skipped: ${unavailable}; no ${suffix} written\n`)
    return unavailable === undefined
  })
}

async function compressDir (opts: CompressOptions, io: Io): Promise<number> {
  const root = await openRoot(opts.dir)
  if (typeof root !== 'string') {
    io.stderr.write(`${NAME}: ${printable(root.error)}\n`)
    return EXIT.usage // what was typed names no directory: a usage error, as in the server
  }
  const tokens = usableEncodings(opts, io)
  const scan = await scanRoot(root, opts.dir, opts.minSize)
  for (const note of scan.notes) io.stderr.write(`${NAME}: ${printable(note)}\n`)
  const plan = await planTasks(scan.files, tokens, opts.force)
  if (opts.dryRun) return dryRun(plan, io)
  const started = performance.now()
  const outcome = await runTasks(plan.tasks, io)
  if (outcome.interrupted) {
    io.stderr.write(`${NAME}: interrupted; siblings already written are complete, no partial files left\n`)
    return EXIT.interrupted
  }
  io.stdout.write(formatTable(plan.rows))
  io.stdout.write(summary(plan, outcome.workers, performance.now() - started))
  return reportProblems([...plan.problems, ...outcome.problems], io)
}

function reportProblems (problems: Problem[], io: Io): number {
  for (const p of problems) io.stderr.write(printable(`${NAME}: cannot ${p.action ?? 'write'} ${p.path}: ${p.message}`) + '\n')
  return problems.length > 0 ? EXIT.failed : EXIT.ok
}

function summary (plan: Plan, workers: number, ms: number): string {
  const count = (state: string): number => plan.rows.reduce(
    (n, r) => n + Object.values(r.cells).filter(c => c?.state === state).length, 0)
  return `wrote ${count('written')} siblings, kept ${count('current')} up to date, ` +
    `${count('larger')} not smaller (not written)` +
    (workers > 0 ? `; ${(ms / 1000).toFixed(1)} s on ${workers} worker threads\n` : '\n')
}

function dryRun (plan: Plan, io: Io): number {
  for (const row of plan.rows) {
    if (Object.values(row.cells).some(c => c?.state === 'todo')) io.stdout.write(`would write ${fileLine(row)}`)
  }
  io.stdout.write(formatTable(plan.rows))
  io.stdout.write(`dry run: ${plan.tasks.length} siblings would be written (new: not written yet), nothing was written\n`)
  return reportProblems(plan.problems, io)
}

interface RunContext { pool: WorkerPool, progress: Progress, temps: Set<string>, problems: Problem[], interrupted: boolean }

async function runTasks (tasks: Task[], io: Io): Promise<{ interrupted: boolean, problems: Problem[], workers: number }> {
  const size = Math.max(1, Math.min(availableParallelism(), tasks.length))
  if (tasks.length === 0) return { interrupted: false, problems: [], workers: 0 }
  const ctx: RunContext = { pool: new WorkerPool(size), progress: startProgress(io, tasks), temps: new Set(), problems: [], interrupted: false }
  const stopListening = onInterrupt(() => {
    ctx.interrupted = true
    void ctx.pool.close()
  })
  try {
    await Promise.all(tasks.map(task => runTask(task, ctx)))
  } finally {
    stopListening()
    ctx.progress.stop()
    await ctx.pool.close()
    await Promise.all([...ctx.temps].map(removeQuietly))
  }
  return { interrupted: ctx.interrupted, problems: ctx.problems, workers: size }
}

/** Encodes one sibling in a worker and writes it here; never rejects (problems are collected). */
async function runTask (task: Task, ctx: RunContext): Promise<void> {
  const cell = task.row.cells[task.token] ?? { state: 'todo' }
  task.row.cells[task.token] = cell
  let target = task.row.file.display // reading and encoding concern the file itself
  let action: 'read' | 'write' = 'read'
  try {
    const reply = await ctx.pool.run({ path: task.row.file.abs, token: task.token })
    if (ctx.interrupted) return
    if (reply.data.byteLength >= reply.size) {
      cell.state = 'larger' // a sibling not smaller than its file is useless (D3): write nothing
      return
    }
    target += suffixFor(task)
    action = 'write'
    // The sibling gets the original's mtime as it was read, not "now": if the original changes after
    // the read, the sibling then looks stale (older than its file) rather than falsely up to date.
    // The original's permission bits make it readable by whoever serves the original.
    await writeAtomic(task.sibling, reply.data, { mode: (task.row.file.mode & 0o666) | 0o600, mtimeMs: reply.mtimeMs, temps: ctx.temps })
    Object.assign(cell, { state: 'written', size: reply.data.byteLength })
  } catch (err) {
    if (ctx.interrupted) return
    cell.state = 'error'
    ctx.problems.push({ path: target, message: describeError(err), action })
  } finally {
    if (!ctx.interrupted) ctx.progress.taskDone(task)
  }
}

function suffixFor (task: Task): string {
  return task.sibling.slice(task.row.file.abs.length)
}

/** SIGINT/SIGTERM stop the run: workers are terminated and temp files removed before exit. */
function onInterrupt (handler: () => void): () => void {
  process.once('SIGINT', handler)
  process.once('SIGTERM', handler)
  return () => {
    process.off('SIGINT', handler)
    process.off('SIGTERM', handler)
  }
}
