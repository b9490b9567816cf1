/** Finds the files to compress under the root and decides, per sibling, whether it needs writing. */
import type { Dirent, Stats } from 'node:fs'
import { lstat, readdir, realpath, stat, unlink } from 'node:fs/promises'
import { basename, join, sep } from 'node:path'
import { decodesToSize, isCompressible, recordedDecodedSize } from '../codecs.js'
import { parseTempName } from '../atomic-write.js'
import { isBuiltDelta } from '../delta-files.js'
import { encodingOf, encodingOfSuffix, type EncodingToken } from '../encodings.js'
import type { FileEntry, Problem, Row, Task } from './types.js'
import { describeError } from './report.js'
import { printable } from '../printable.js'

interface ScanResult { files: FileEntry[], notes: string[] }

/** Resolves the root to its real path, or returns a one-line reason it cannot be used. */
export async function openRoot (dir: string): Promise<string | { error: string }> {
  let st: Stats
  try {
    st = await stat(dir)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    return { error: code === 'ENOENT' ? `no such directory: ${dir}` : `cannot read ${dir}: ${code ?? String(err)}` }
  }
  if (!st.isDirectory()) return { error: `${dir} ${st.isFile() ? 'is a file, not' : 'is not'} a directory: give the directory it is in` }
  return realpath(dir)
}

function isInside (root: string, path: string): boolean {
  return path.startsWith(root + sep)
}

/**
 * A symlinked file is compressed only when it resolves inside the root (its sibling is written next
 * to the link, inside the root too). Symlinked directories are not descended: no loops, no escapes.
 */
async function resolveEntry (root: string, abs: string, entry: Dirent): Promise<Stats | 'dir' | 'outside' | undefined> {
  if (entry.isDirectory()) return 'dir'
  if (entry.isFile()) return stat(abs)
  if (!entry.isSymbolicLink()) return undefined
  const target = await realpath(abs).catch(() => undefined)
  if (target === undefined) return undefined
  if (!isInside(root, target)) return 'outside'
  const st = await stat(target)
  return st.isFile() ? st : undefined
}

/** Names never compressed: dotfiles (and our temp files), and the siblings themselves. */
function skipName (name: string): boolean {
  return name.startsWith('.') || encodingOfSuffix(name) !== undefined || !isCompressible(name)
}

function processAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * A temp file of a sibling (see atomic-write.ts) whose writer is gone (killed with SIGKILL, power
 * loss) is removed; a live run's is kept. Nothing a user makes is named like one.
 */
async function removeLeftoverTemp (path: string): Promise<boolean> {
  const temp = parseTempName(basename(path))
  if (temp === undefined || (encodingOfSuffix(temp.target) === undefined && !isBuiltDelta(temp.target)) || processAlive(temp.pid)) return false
  return unlink(path).then(() => true, () => false)
}

interface WalkOptions { root: string, display: string, minSize: number, out: ScanResult, readOnly: boolean }

async function walk (dir: string, rel: string, opts: WalkOptions): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true })
  for (const entry of entries) {
    if (entry.name.startsWith('.')) {
      if (!opts.readOnly && entry.isFile() && await removeLeftoverTemp(join(dir, entry.name))) {
        opts.out.notes.push(`removed ${join(opts.display, rel, entry.name)}, left by an interrupted run`)
      }
      continue
    }
    const abs = join(dir, entry.name)
    const relPath = rel === '' ? entry.name : `${rel}/${entry.name}`
    if (!entry.isDirectory() && skipName(entry.name)) continue
    const kind = await resolveEntry(opts.root, abs, entry)
    if (kind === 'dir') await walk(abs, relPath, opts)
    else if (kind === 'outside') opts.out.notes.push(`skipped ${join(opts.display, relPath)}: symlink leading out of ${opts.display}`)
    else if (kind !== undefined && kind.size >= opts.minSize) {
      opts.out.files.push({
        abs, rel: relPath, display: printable(join(opts.display, relPath)), size: kind.size, mtimeMs: kind.mtimeMs, mode: kind.mode,
      })
    }
  }
}

/** The files to compress under `root`; `readOnly` for an earlier release, where nothing is removed. */
export async function scanRoot (root: string, display: string, opts: { minSize: number, readOnly?: boolean }): Promise<ScanResult> {
  const { minSize, readOnly = false } = opts
  const out: ScanResult = { files: [], notes: [] }
  await walk(root, '', { root, display, minSize, out, readOnly })
  out.files.sort((a, b) => a.rel < b.rel ? -1 : 1)
  return out
}

/** The sibling's recorded decoded size agrees with the file (D3); br records none. */
async function decodedSizeMatches (sibling: string, st: Stats, file: FileEntry, token: EncodingToken): Promise<boolean> {
  try {
    return decodesToSize(await recordedDecodedSize(sibling, st.size, token), file.size, token)
  } catch {
    return false // unreadable or not the format its name says: rewrite it
  }
}

/** Sibling mtimes are set to the original's (see runTask in index.ts); utimes keeps microseconds, so allow 1 ms. */
export const MTIME_TOLERANCE_MS = 1

interface PlanInput { file: FileEntry, token: EncodingToken, force: boolean }

async function siblingState (input: PlanInput, sibling: string): Promise<{ state: 'todo' | 'current', size?: number } | Problem> {
  let st: Stats
  try {
    st = await lstat(sibling)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return { state: 'todo' }
    return { path: input.file.display + suffixOf(input.token), message: describeError(err) }
  }
  // Never replace what we did not make: a directory or symlink at the sibling's name is left alone.
  if (!st.isFile()) return { path: input.file.display + suffixOf(input.token), message: 'exists and is not a regular file' }
  if (input.force) return { state: 'todo' }
  const fresh = st.mtimeMs >= input.file.mtimeMs - MTIME_TOLERANCE_MS
  if (fresh && await decodedSizeMatches(sibling, st, input.file, input.token)) return { state: 'current', size: st.size }
  return { state: 'todo' }
}

function suffixOf (token: EncodingToken): string {
  return encodingOf(token).suffix
}

export interface Plan { rows: Row[], tasks: Task[], problems: Problem[] }

/** One row per file, one task per sibling that needs writing, biggest files first (better balance). */
export async function planTasks (files: FileEntry[], tokens: EncodingToken[], force: boolean): Promise<Plan> {
  const plan: Plan = { rows: [], tasks: [], problems: [] }
  for (const file of files) {
    const row: Row = { file, cells: {} }
    plan.rows.push(row)
    for (const token of tokens) {
      const sibling = file.abs + suffixOf(token)
      const state = await siblingState({ file, token, force }, sibling)
      if ('message' in state) {
        plan.problems.push(state)
        row.cells[token] = { state: 'error' }
      } else {
        row.cells[token] = state
        if (state.state === 'todo') plan.tasks.push({ row, token, sibling })
      }
    }
  }
  plan.tasks.sort((a, b) => b.row.file.size - a.row.file.size)
  return plan
}
