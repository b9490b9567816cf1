/**
 * The deltas of `wasm-serve compress --dictionary-from` (RFC 9842): which files of earlier releases
 * are dictionaries for which modules of <dir>, and which delta files need writing. A file is a
 * dictionary for a module when the server would announce it with a match pattern that covers the
 * module's URL (policy.ts dictionaryMatch: the same derivation, without a prefix or routes, which a
 * build does not know). Names and the up-to-date check: delta-files.ts.
 */
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { lstat, open } from 'node:fs/promises'
import { contentTypeFor } from '../content-type.js'
import { builtDeltaPath, DELTA_HEAD_BYTES, deltaHeadProblem, deltaId } from '../delta-files.js'
import { dictionarySupport, patternCovers, type DictionaryCoding } from '../dictionary.js'
import { dictionaryMatch } from '../policy.js'
import { describeError } from './report.js'
import { MTIME_TOLERANCE_MS } from './scan.js'
import type { DeltaRow, DeltaState, DeltaTask, DictionaryFile, FileEntry, Problem, Row } from './types.js'

export interface DeltaPlan { rows: DeltaRow[], tasks: DeltaTask[], problems: Problem[] }

export const NO_DELTAS: DeltaPlan = { rows: [], tasks: [], problems: [] }

/** The codings this Node makes with a dictionary, in the server's order. */
export const DELTA_CODINGS: readonly DictionaryCoding[] = (['dcz', 'dcb'] as const).filter(c => dictionarySupport[c])

/** The match pattern the server announces a file with at the root, or undefined (not a module). */
const announced = (rel: string): string | undefined => dictionaryMatch(rel, contentTypeFor(rel), undefined, '')

/** Where a delta goes, as the user would type it. */
export const deltaDisplay = (delta: DeltaRow, coding: DictionaryCoding): string => builtDeltaPath(delta.row.file.display, delta.dictionary.id, coding)

/**
 * One row per module and dictionary (one per distinct dictionary: the same bytes in two releases make
 * one delta), one task per delta that needs writing, biggest modules first.
 */
export async function planDeltas (input: { rows: Row[], releases: FileEntry[], force: boolean }): Promise<DeltaPlan> {
  const plan: DeltaPlan = { rows: [], tasks: [], problems: [] }
  const dictionaries = input.releases.flatMap(file => { const pattern = announced(file.rel); return pattern === undefined ? [] : [{ file, pattern }] })
  const hashes = new Map<string, Promise<Buffer>>()
  const hashOf = (file: FileEntry) => hashes.get(file.abs) ?? hashes.set(file.abs, sha256File(file.abs)).get(file.abs)!
  for (const row of input.rows) {
    if (announced(row.file.rel) === undefined) continue
    const ids = new Set<string>()
    for (const { file, pattern } of dictionaries) {
      if (file.abs === row.file.abs || !patternCovers(pattern, `/${row.file.rel}`)) continue
      let sha256: Buffer
      try { sha256 = await hashOf(file) } catch (err) {
        plan.problems.push({ path: file.display, message: describeError(err), action: 'read' })
        continue
      }
      const dictionary: DictionaryFile = { abs: file.abs, display: file.display, sha256, id: deltaId(sha256) }
      if (ids.has(dictionary.id)) continue
      ids.add(dictionary.id)
      await planRow(plan, { row, dictionary, cells: {} }, input.force)
    }
  }
  plan.tasks.sort((a, b) => b.row.file.size - a.row.file.size)
  return plan
}

async function planRow (plan: DeltaPlan, delta: DeltaRow, force: boolean): Promise<void> {
  plan.rows.push(delta)
  for (const coding of DELTA_CODINGS) {
    const target = builtDeltaPath(delta.row.file.abs, delta.dictionary.id, coding)
    const state = await deltaState(delta, { coding, target, force })
    if ('message' in state) {
      plan.problems.push(state)
      delta.cells[coding] = { state: 'error' }
    } else {
      delta.cells[coding] = state
      if (state.state === 'todo') plan.tasks.push({ delta, row: delta.row, coding, target })
    }
  }
}

/**
 * A delta is up to date when it is not older than its module (its mtime is set to the module's when
 * written, as a sibling's is) and its header names the dictionary (and, for dcz, the module's size).
 */
async function deltaState (delta: DeltaRow, input: { coding: DictionaryCoding, target: string, force: boolean }): Promise<{ state: DeltaState, size?: number } | Problem> {
  const where = () => deltaDisplay(delta, input.coding)
  try {
    const st = await lstat(input.target)
    // Never replace what we did not make: a directory or symlink at the delta's name is left alone.
    if (!st.isFile()) return { path: where(), message: 'exists and is not a regular file' }
    if (input.force || st.mtimeMs < delta.row.file.mtimeMs - MTIME_TOLERANCE_MS) return { state: 'todo' }
    const head = await readHead(input.target)
    const problem = deltaHeadProblem(head, { dictionarySha256: delta.dictionary.sha256, coding: input.coding, moduleSize: delta.row.file.size })
    return problem === undefined ? { state: 'current', size: st.size } : { state: 'todo' }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { state: 'todo' }
    return { path: where(), message: describeError(err) }
  }
}

async function readHead (path: string): Promise<Buffer> {
  const fh = await open(path, 'r')
  try {
    const { bytesRead, buffer } = await fh.read(Buffer.alloc(DELTA_HEAD_BYTES), 0, DELTA_HEAD_BYTES, 0)
    return buffer.subarray(0, bytesRead)
  } finally {
    await fh.close()
  }
}

/** A dictionary's name (RFC 9842 §2.2); the worker checks the bytes it encodes against still hash to it. */
async function sha256File (path: string): Promise<Buffer> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer)
  return hash.digest()
}
