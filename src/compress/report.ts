/** Output of `wasm-serve compress`: a progress bar on a TTY, one line per file otherwise, then a table. */
import cliProgress from 'cli-progress'
import type { DictionaryCoding } from '../dictionary.js'
import { ENCODINGS, type EncodingToken } from '../encodings.js'
import type { Cell, DeltaRow, DeltaState, Row } from './types.js'

export interface Io {
  stdout: NodeJS.WritableStream & { isTTY?: boolean }
  stderr: NodeJS.WritableStream
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

function saving (original: number, smallest: number): string {
  return original === 0 ? '-' : `${((1 - smallest / original) * 100).toFixed(1)}%`
}

function totalsLine (rows: Row[]): string[] {
  const original = rows.reduce((s, r) => s + r.file.size, 0)
  const perToken = ENCODINGS.map(e => rows.some(r => r.cells[e.token] !== undefined)
    ? num(rows.reduce((s, r) => s + served(r, e.token), 0))
    : '-')
  const smallest = rows.reduce((s, r) => s + best(r), 0)
  return [`total (${rows.length} files)`, num(original), ...perToken, saving(original, smallest)]
}

/** The summary table: file, original, br, zstd, gzip, saving; then totals and a legend. */
export function formatTable (rows: Row[]): string {
  const header = ['file', 'original', ...ENCODINGS.map(e => e.token), 'saving']
  const body = rows.map(r => [
    r.file.display, num(r.file.size), ...ENCODINGS.map(e => cellText(r.cells[e.token])), saving(r.file.size, best(r)),
  ])
  return layout({ header, body, totals: totalsLine(rows), legend: '* already up to date, kept · larger: not written, it would not be smaller than the file' })
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

export interface Progress {
  taskDone: (task: { row: Row }) => void
  stop: () => void
}

/** A cli-progress bar when stdout is a terminal, else one line per file as each one finishes (its siblings and deltas). */
export function startProgress (io: Io, tasks: ReadonlyArray<{ row: Row }>): Progress {
  const pending = new Map<Row, number>()
  for (const t of tasks) pending.set(t.row, (pending.get(t.row) ?? 0) + 1)
  const bar = io.stdout.isTTY === true ? makeBar(io, tasks.length) : undefined
  return {
    taskDone (task) {
      const left = (pending.get(task.row) ?? 1) - 1
      pending.set(task.row, left)
      if (bar !== undefined) bar.increment(1, { file: task.row.file.display })
      else if (left === 0) io.stdout.write(fileLine(task.row))
    },
    stop () { bar?.stop() },
  }
}

function makeBar (io: Io, total: number): cliProgress.SingleBar {
  const bar = new cliProgress.SingleBar({
    stream: io.stdout,
    format: 'compressing {bar} {percentage}% | {value}/{total} siblings | {file}',
    hideCursor: true,
    clearOnComplete: true,
  }, cliProgress.Presets.shades_classic)
  bar.start(total, 0, { file: '' })
  return bar
}
