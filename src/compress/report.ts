/** Output of `wasm-serve compress`: a progress bar on a TTY, one line per file otherwise, then a table. */
import cliProgress from 'cli-progress'
import type { DictionaryCoding } from '../dictionary.js'
import { ENCODINGS, type EncodingToken } from '../encodings.js'
import type { Cell, DeltaRow, DeltaState, Row } from './types.js'

export interface Io {
  stdout: NodeJS.WritableStream & { isTTY?: boolean }
  stderr: NodeJS.WritableStream
  /** How often a pipe gets a line for a file still being encoded (PROGRESS_EVERY_MS; tests shorten it). */
  progressEveryMs?: number
}

const ERRNO_TEXT: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  EISDIR: 'is a directory',
  ENOTDIR: 'a parent is not a directory',
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  ENOENT: 'no such file or directory',
}

/** A short reason without the path (the caller names the file once). */
export function describeError (err: unknown): string {
  const e = err as NodeJS.ErrnoException
  if (typeof e?.code === 'string' && ERRNO_TEXT[e.code] !== undefined) return `${ERRNO_TEXT[e.code]} (${e.code})`
  return e?.message ?? String(err)
}

const num = (n: number): string => n.toLocaleString('en-US')

function cellText (cell: Cell | { state: DeltaState, size?: number } | undefined): string {
  switch (cell?.state) {
    case 'limit': return 'limit'
    case 'written': return num(cell.size ?? 0)
    case 'current': return `${num(cell.size ?? 0)}*`
    case 'larger': return 'larger'
    case 'error': return 'error'
    case 'todo': return 'new'
    default: return '-'
  }
}

/** Bytes a client accepting only `token` would download: the sibling if there is one, else the file. */
function served (row: Row, token: EncodingToken | undefined): number {
  const cell = token === undefined ? undefined : row.cells[token]
  return cell?.size !== undefined && cell.state !== 'larger' ? Math.min(cell.size, row.file.size) : row.file.size
}

/** What a client without a dictionary downloads at best: the smallest sibling, or the file. */
export function best (row: Row): number {
  return Math.min(...ENCODINGS.map(e => served(row, e.token)))
}

/** A sibling still to be written (a dry run) has no size yet: sums and savings over it are unknown. */
const unknown = (row: Row, tokens: readonly EncodingToken[]): boolean => tokens.some(t => row.cells[t]?.state === 'todo')

function saving (original: number, smallest: number): string {
  return original === 0 ? '-' : `${((1 - smallest / original) * 100).toFixed(1)}%`
}

/** "1 file", "2 files": counts in the output read as English. */
export function plural (n: number, noun: string): string {
  return `${num(n)} ${noun}${n === 1 ? '' : 's'}`
}

function totalsLine (rows: Row[], tokens: readonly EncodingToken[]): string[] {
  const original = rows.reduce((s, r) => s + r.file.size, 0)
  const perToken = tokens.map(token => rows.some(r => unknown(r, [token]))
    ? '-'
    : num(rows.reduce((s, r) => s + served(r, token), 0)))
  const smallest = rows.reduce((s, r) => s + best(r), 0)
  return [`total (${plural(rows.length, 'file')})`, num(original), ...perToken, tokens.length === 0 || rows.some(r => unknown(r, tokens)) ? '-' : saving(original, smallest)]
}

/** The summary table: file, original, a column per encoding of this run (br, zstd, gzip), saving; then totals and a legend. */
export function formatTable (rows: Row[], tokens: readonly EncodingToken[]): string {
  const header = ['file', 'original', ...tokens, 'saving']
  const body = rows.map(r => [
    r.file.display, num(r.file.size), ...tokens.map(token => cellText(r.cells[token])), tokens.length === 0 || unknown(r, tokens) ? '-' : saving(r.file.size, best(r)),
  ])
  const legend = '* already up to date, kept · larger: not written, it would not be smaller than the file' +
    (rows.some(r => unknown(r, tokens)) ? '\nnew: would be written; its size, the totals and the saving are known only once written' : '')
  return layout({ header, body, totals: totalsLine(rows, tokens), legend })
}

interface Table { header: string[], body: string[][], totals?: string[], legend: string, /** Columns aligned left (names): default 1. */ left?: number }

/** Columns padded to their widest cell, names left and numbers right, rules around the body, the totals and a legend. */
function layout (table: Table): string {
  const { header, body, totals, legend, left = 1 } = table
  const lines = [header, ...body, ...(totals === undefined ? [] : [totals])]
  const widths = header.map((_, i) => Math.max(...lines.map(l => l[i].length)))
  const fmt = (l: string[]): string => l.map((c, i) => i < left ? c.padEnd(widths[i]) : c.padStart(widths[i])).join('  ').trimEnd()
  const rule = widths.map(w => '-'.repeat(w)).join('  ')
  return [fmt(header), rule, ...body.map(fmt), ...(totals === undefined ? [] : [rule, fmt(totals)]), legend, ''].join('\n')
}

/** Bytes of the smallest delta written or kept, if any. */
function smallestDelta (delta: DeltaRow): number | undefined {
  const sizes = Object.values(delta.cells).flatMap(c => (c.state === 'written' || c.state === 'current') && c.size !== undefined ? [c.size] : [])
  return sizes.length === 0 ? undefined : Math.min(...sizes)
}

/**
 * The deltas: module, dictionary, the id naming the files, one column per coding, the module's best
 * ordinary download and what a browser holding the dictionary saves on it.
 */
export function formatDeltaTable (deltas: DeltaRow[], codings: readonly DictionaryCoding[]): string {
  const header = ['module', 'dictionary', 'id', ...codings, 'best ordinary', 'saving']
  const body = deltas.map(d => {
    const ordinary = best(d.row)
    return [d.row.file.display, d.dictionary.display, d.dictionary.id, ...codings.map(c => cellText(d.cells[c])), num(ordinary), saving(ordinary, smallestDelta(d) ?? ordinary)]
  })
  const legend = 'written as <module>.<id>.dcz|dcb, id: the first 16 hex digits of the dictionary\'s SHA-256 · * up to date, kept\n' +
    'larger: not written, not smaller than the best ordinary encoding · limit: not written, beyond RFC 9842\'s window limits'
  return layout({ header, body, legend, left: 3 })
}

/** One line for a finished file, for logs and pipes. */
export function fileLine (row: Row): string {
  const parts = ENCODINGS.filter(e => row.cells[e.token] !== undefined)
    .map(e => `${e.token} ${cellText(row.cells[e.token])}`)
  return `${row.file.display}  ${num(row.file.size)} B → ${parts.join(', ')}\n`
}

/** One sibling or delta being made: its file, and what it is ("br", "dcz"). */
export interface ProgressTask { row: Row, label: string, kind: 'sibling' | 'delta' }

export interface Progress {
  /** `read` bytes of the task's file have gone through its encoder (0 when it starts). */
  taskRead: (task: ProgressTask, read: number) => void
  taskDone: (task: ProgressTask) => void
  stop: () => void
}

/** How often a pipe or a log gets a line for a file still being encoded: one every 10 s. */
export const PROGRESS_EVERY_MS = 10_000

interface Running { started: number, read: number }

const mb = (n: number): string => `${(n / 1e6).toFixed(1)} MB`
const seconds = (ms: number): string => `${Math.round(ms / 1000)} s`

/** "m.wasm br: 12.6 MB of 32.2 MB (39%), 60 s elapsed, ETA 93 s", the ETA from this file's own rate. */
export function runningLine (task: ProgressTask, running: Running, now: number): string {
  const elapsed = now - running.started
  const size = task.row.file.size
  const eta = running.read === 0 ? 'unknown' : seconds(elapsed * (size - running.read) / running.read)
  const percent = size === 0 ? 100 : Math.floor(running.read / size * 100)
  return `${task.row.file.display} ${task.label}: ${mb(running.read)} of ${mb(size)} (${percent}%), ${seconds(elapsed)} elapsed, ETA ${eta}\n`
}

/**
 * A cli-progress bar counting bytes when stdout is a terminal; otherwise one line per file as each one
 * finishes (its siblings and deltas), and every `everyMs` a line per file encoding for longer than that.
 */
export function startProgress (io: Io, tasks: readonly ProgressTask[], everyMs = PROGRESS_EVERY_MS): Progress {
  const pending = new Map<Row, number>()
  for (const t of tasks) pending.set(t.row, (pending.get(t.row) ?? 0) + 1)
  const running = new Map<ProgressTask, Running>()
  const bar = io.stdout.isTTY === true ? makeBar(io, tasks) : undefined
  const timer = bar === undefined ? setInterval(() => reportRunning(io, running, everyMs), everyMs).unref() : undefined
  const readSoFar = (): number => [...running.values()].reduce((s, r) => s + r.read, 0)
  let finished = 0
  let doneBytes = 0
  return {
    taskRead (task, read) {
      const r = running.get(task) ?? { started: performance.now(), read: 0 }
      r.read = read
      running.set(task, r)
      bar?.update(doneBytes + readSoFar(), { file: `${task.row.file.display} ${task.label}`, ...counts(finished, doneBytes + readSoFar()) })
    },
    taskDone (task) {
      running.delete(task)
      finished++
      doneBytes += task.row.file.size
      const left = (pending.get(task.row) ?? 1) - 1
      pending.set(task.row, left)
      if (bar !== undefined) bar.update(doneBytes + readSoFar(), { file: `${task.row.file.display} ${task.label}`, ...counts(finished, doneBytes + readSoFar()) })
      else if (left === 0) io.stdout.write(fileLine(task.row))
    },
    stop () {
      clearInterval(timer)
      bar?.stop()
    },
  }
}

function reportRunning (io: Io, running: Map<ProgressTask, Running>, everyMs: number): void {
  const now = performance.now()
  for (const [task, r] of running) if (now - r.started >= everyMs) io.stdout.write(runningLine(task, r, now))
}

const counts = (finished: number, bytes: number): { finished: number, read: string } => ({ finished, read: mb(bytes) })

function makeBar (io: Io, tasks: readonly ProgressTask[]): cliProgress.SingleBar {
  const total = tasks.reduce((s, t) => s + t.row.file.size, 0)
  const noun = tasks.some(t => t.kind === 'delta') ? 'siblings and deltas' : plural(tasks.length, 'sibling').replace(/^[\d,]+ /, '')
  const bar = new cliProgress.SingleBar({
    stream: io.stdout,
    // Bytes, not files: one 32 MB module is most of the work and takes minutes at brotli quality 11.
    format: `compressing {bar} {percentage}% | {read} of ${mb(total)} | {duration_formatted} elapsed, ETA {eta_formatted} | {finished}/${tasks.length} ${noun} | {file}`,
    hideCursor: true,
    clearOnComplete: true,
    etaBuffer: 20,
  }, cliProgress.Presets.shades_classic)
  bar.start(total, 0, { file: '', ...counts(0, 0) })
  return bar
}
