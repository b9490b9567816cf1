/**
 * `wasm-serve compress <dir>`: writes .br/.zst/.gz siblings for compressible files, and with
 * `--dictionary-from` deltas of its modules against earlier releases (deltas.ts), encoding on every
 * core in worker threads, writing atomically from this thread, skipping files that are up to date or
 * would not be smaller. Returns the exit code (EXIT in src/start-errors.ts, as the server's): 0 ok, 1 a
 * file could not be read or written (or deltas asked for where Node cannot make them), 2 bad usage (a
 * missing directory too), 130 interrupted. Rules: docs/delivery.md.
 */
import { availableParallelism } from 'node:os'
import { removeQuietly, writeAtomic } from '../atomic-write.js'
import { anyDictionarySupport } from '../dictionary.js'
import { encodingOf, type EncodingToken } from '../encodings.js'
import { printable } from '../printable.js'
import { EXIT, startErrorText, UsageError } from '../start-errors.js'
import { HELP, parseCompressArgs, type CompressOptions } from './args.js'
import { DELTA_CODINGS, deltaDisplay, NO_DELTAS, planDeltas, type DeltaPlan } from './deltas.js'
import { WorkerPool } from './pool.js'
import { best, describeError, fileLine, formatDeltaTable, formatTable, plural, startProgress, type Io, type Progress, type ProgressTask } from './report.js'
import { openRoot, planTasks, scanRoot, type Plan } from './scan.js'
import type { Cell, DeltaState, DeltaTask, FileEntry, Job, Problem, Row, Task, WorkerReply } from './types.js'

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

/**
 * An encoding this Node cannot make (zstd before Node 22.15) is dropped, with one note saying why; one
 * named in --encodings fails the run (exit 1) once the others are written, for a build must not pass
 * without the files it asked for.
 */
function usableEncodings (opts: CompressOptions, io: Io): { tokens: EncodingToken[], failed: boolean } {
  const tokens = opts.encodings.filter(token => {
    const { unavailable, suffix } = encodingOf(token)
    const named = opts.encodingsGiven ? ' (named in --encodings: exit 1)' : ''
    if (unavailable !== undefined) io.stderr.write(`${NAME}: ${token} skipped: ${unavailable}; no ${suffix} written${named}\n`)
    return unavailable === undefined
  })
  return { tokens, failed: opts.encodingsGiven && tokens.length < opts.encodings.length }
}

async function compressDir (opts: CompressOptions, io: Io): Promise<number> {
  const roots = await openRoots(opts, io)
  if (roots === undefined) return EXIT.usage // what was typed names no directory: a usage error, as in the server
  const { tokens, failed: encodingsFailed } = usableEncodings(opts, io)
  const deltasFailed = opts.dictionaryFrom.length > 0 && !anyDictionarySupport
  if (deltasFailed) io.stderr.write(`${NAME}: deltas skipped: Node ${process.version} cannot compress with a dictionary (Node 24 can); no .dcz or .dcb written\n`)
  const scan = await scanRoot(roots.root, opts.dir, { minSize: opts.minSize })
  for (const note of scan.notes) io.stderr.write(`${NAME}: ${printable(note)}\n`)
  const plan = await planTasks(scan.files, tokens, opts.force)
  const deltas = deltasFailed ? NO_DELTAS : await planReleases({ rows: plan.rows, releases: roots.releases, force: opts.force }, io)
  const code = opts.dryRun ? dryRun(plan, tokens, deltas, io) : await run(plan, tokens, deltas, io)
  return (deltasFailed || encodingsFailed) && code === EXIT.ok ? EXIT.failed : code
}

/** <dir> and the --dictionary-from directories, resolved; undefined (said why) when one names no directory. */
async function openRoots (opts: CompressOptions, io: Io): Promise<{ root: string, releases: Array<{ root: string, display: string }> } | undefined> {
  const resolved = await Promise.all([opts.dir, ...opts.dictionaryFrom].map(async dir => ({ dir, root: await openRoot(dir) })))
  const bad = resolved.find(r => typeof r.root !== 'string')
  if (bad !== undefined) {
    io.stderr.write(`${NAME}: ${printable((bad.root as { error: string }).error)}\n`)
    return undefined
  }
  const [first, ...rest] = resolved as Array<{ dir: string, root: string }>
  return { root: first!.root, releases: rest.map(r => ({ root: r.root, display: r.dir })) }
}

/** The deltas to write, from the modules of the earlier releases (read only: nothing there is removed). */
async function planReleases (input: { rows: Row[], releases: Array<{ root: string, display: string }>, force: boolean }, io: Io): Promise<DeltaPlan> {
  if (input.releases.length === 0) return NO_DELTAS
  const files: FileEntry[] = []
  for (const release of input.releases) {
    const scan = await scanRoot(release.root, release.display, { minSize: 1, readOnly: true })
    for (const note of scan.notes) io.stderr.write(`${NAME}: ${printable(note)}\n`)
    files.push(...scan.files)
  }
  const plan = await planDeltas({ rows: input.rows, releases: files, force: input.force })
  if (plan.rows.length === 0) io.stderr.write(`${NAME}: no delta to write: no file of ${input.releases.map(r => printable(r.display)).join(', ')} is a dictionary for a module of this directory (the same name with another content hash, or the same path)\n`)
  return plan
}

async function run (plan: Plan, tokens: EncodingToken[], deltas: DeltaPlan, io: Io): Promise<number> {
  const started = performance.now()
  const outcome = await runTasks(plan.tasks, deltas.tasks, io)
  if (outcome.interrupted) {
    io.stderr.write(`${NAME}: interrupted; siblings already written are complete, no partial files left\n`)
    return EXIT.interrupted
  }
  io.stdout.write(formatTable(plan.rows, tokens))
  if (deltas.rows.length > 0) io.stdout.write(formatDeltaTable(deltas.rows, DELTA_CODINGS))
  io.stdout.write(summary(plan, deltas, outcome.workers, performance.now() - started))
  return reportProblems([...plan.problems, ...deltas.problems, ...outcome.problems], io)
}

function reportProblems (problems: Problem[], io: Io): number {
  for (const p of problems) io.stderr.write(printable(`${NAME}: cannot ${p.action ?? 'write'} ${p.path}: ${p.message}`) + '\n')
  return problems.length > 0 ? EXIT.failed : EXIT.ok
}

function summary (plan: Plan, deltas: DeltaPlan, workers: number, ms: number): string {
  const cells = (state: string): number => plan.rows.reduce(
    (n, r) => n + Object.values(r.cells).filter(c => c?.state === state).length, 0)
  const deltaCells = (state: DeltaState): number => deltas.rows.reduce((n, d) => n + Object.values(d.cells).filter(c => c.state === state).length, 0)
  const deltaPart = deltas.rows.length === 0
    ? ''
    : `; wrote ${plural(deltaCells('written'), 'delta')}, kept ${deltaCells('current')}, ${deltaCells('larger')} not smaller, ${deltaCells('limit')} beyond the limits`
  return `wrote ${plural(cells('written'), 'sibling')}, kept ${cells('current')} up to date, ` +
    `${cells('larger')} not smaller (not written)${deltaPart}` +
    (workers > 0 ? `; ${(ms / 1000).toFixed(1)} s on ${plural(workers, 'worker thread')}\n` : '\n')
}

function dryRun (plan: Plan, tokens: EncodingToken[], deltas: DeltaPlan, io: Io): number {
  for (const row of plan.rows) {
    if (Object.values(row.cells).some(c => c?.state === 'todo')) io.stdout.write(`would write ${fileLine(row)}`)
  }
  for (const task of deltas.tasks) io.stdout.write(`would write ${printable(deltaDisplay(task.delta, task.coding))} (if smaller)\n`)
  io.stdout.write(formatTable(plan.rows, tokens))
  if (deltas.rows.length > 0) io.stdout.write(formatDeltaTable(deltas.rows, DELTA_CODINGS))
  const deltaPart = deltas.rows.length === 0 ? '' : ` and ${plural(deltas.tasks.length, 'delta')}`
  io.stdout.write(`dry run: ${plural(plan.tasks.length, 'sibling')}${deltaPart} would be written (new: not written yet), nothing was written\n`)
  return reportProblems([...plan.problems, ...deltas.problems], io)
}

interface RunContext { pool: WorkerPool, progress: Progress, temps: Set<string>, problems: Problem[], interrupted: boolean }

/** What the progress output says of each task. */
function progressTasks (tasks: Task[], deltaTasks: DeltaTask[]): Map<Task | DeltaTask, ProgressTask> {
  return new Map<Task | DeltaTask, ProgressTask>([
    ...tasks.map(t => [t, { row: t.row, label: t.token, kind: 'sibling' }] as const),
    ...deltaTasks.map(t => [t, { row: t.row, label: t.coding, kind: 'delta' }] as const),
  ])
}

async function runTasks (tasks: Task[], deltaTasks: DeltaTask[], io: Io): Promise<{ interrupted: boolean, problems: Problem[], workers: number }> {
  const all = [...tasks, ...deltaTasks]
  const size = Math.max(1, Math.min(availableParallelism(), all.length))
  if (all.length === 0) return { interrupted: false, problems: [], workers: 0 }
  const shown = progressTasks(tasks, deltaTasks)
  const ctx: RunContext = { pool: new WorkerPool(size), progress: startProgress(io, [...shown.values()], io.progressEveryMs), temps: new Set(), problems: [], interrupted: false }
  const stopListening = onInterrupt(() => {
    ctx.interrupted = true
    void ctx.pool.close()
  })
  try {
    // A delta is encoded alongside the siblings, but compared with the module's best sibling once they are written.
    const siblingsOf = new Map<Row, Array<Promise<void>>>()
    for (const task of tasks) siblingsOf.set(task.row, [...siblingsOf.get(task.row) ?? [], runTask(task, shown.get(task)!, ctx)])
    await Promise.all([...[...siblingsOf.values()].flat(), ...deltaTasks.map(task => runDeltaTask(task, shown.get(task)!, ctx, Promise.all(siblingsOf.get(task.row) ?? [])))])
  } finally {
    stopListening()
    ctx.progress.stop()
    await ctx.pool.close()
    await Promise.all([...ctx.temps].map(removeQuietly))
  }
  return { interrupted: ctx.interrupted, problems: ctx.problems, workers: size }
}

type Reply = Extract<WorkerReply, { ok: true }>

interface Work {
  row: Row
  shown: ProgressTask
  job: Job
  cell: { state: DeltaState, size?: number }
  /** Where the result goes, and as the user would type it. */
  target: string
  display: string
  /** Why the result is not written (the cell's state), or undefined to write it. */
  verdict: (reply: Reply) => Promise<DeltaState | undefined>
}

/** Encodes in a worker and writes the result here; never rejects (problems are collected). */
async function encodeAndWrite (work: Work, ctx: RunContext): Promise<void> {
  const { row, cell } = work
  let target = row.file.display // reading and encoding concern the file itself
  let action: 'read' | 'write' = 'read'
  try {
    const reply = await ctx.pool.run(work.job, read => ctx.progress.taskRead(work.shown, read))
    const verdict = await work.verdict(reply)
    if (ctx.interrupted) return
    if (verdict !== undefined) {
      cell.state = verdict
      return
    }
    target = work.display
    action = 'write'
    // The file gets the original's mtime as it was read, not "now": if the original changes after
    // the read, the file then looks stale (older than its original) rather than falsely up to date.
    // The original's permission bits make it readable by whoever serves the original.
    await writeAtomic(work.target, reply.data, { mode: (row.file.mode & 0o666) | 0o600, mtimeMs: reply.mtimeMs, temps: ctx.temps })
    Object.assign(cell, { state: 'written', size: reply.data.byteLength })
  } catch (err) {
    if (ctx.interrupted) return
    cell.state = 'error'
    ctx.problems.push({ path: target, message: describeError(err), action })
  } finally {
    if (!ctx.interrupted) ctx.progress.taskDone(work.shown)
  }
}

/** One sibling: not written when it would not be smaller than its file (useless, D3). */
function runTask (task: Task, shown: ProgressTask, ctx: RunContext): Promise<void> {
  const cell: Cell = task.row.cells[task.token] ?? { state: 'todo' }
  task.row.cells[task.token] = cell
  const display = task.row.file.display + task.sibling.slice(task.row.file.abs.length)
  const verdict = async (reply: Reply) => reply.data.byteLength >= reply.size ? 'larger' as const : undefined
  return encodeAndWrite({ row: task.row, shown, job: { path: task.row.file.abs, token: task.token }, cell: cell as Work['cell'], target: task.sibling, display, verdict }, ctx)
}

/** One delta: not written beyond RFC 9842's limits, nor when not smaller than the module's best sibling. */
function runDeltaTask (task: DeltaTask, shown: ProgressTask, ctx: RunContext, siblingsWritten: Promise<unknown>): Promise<void> {
  const { delta, coding } = task
  const cell = delta.cells[coding] ?? { state: 'todo' }
  delta.cells[coding] = cell
  const job = { path: task.row.file.abs, dictionary: delta.dictionary.abs, sha256: delta.dictionary.sha256.toString('hex'), coding }
  const verdict = async (reply: Reply) => {
    if (reply.beyondLimits === true) return 'limit' as const
    await siblingsWritten
    return reply.data.byteLength >= best(task.row) ? 'larger' as const : undefined
  }
  return encodeAndWrite({ row: task.row, shown, job, cell, target: task.target, display: deltaDisplay(delta, coding), verdict }, ctx)
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
