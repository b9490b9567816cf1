/** Plain data passed between the steps of `wasm-serve compress` (scan → plan → encode → write → report). */
import type { DictionaryCoding } from '../dictionary.js'
import type { EncodingToken } from '../encodings.js'

/** A compressible file found under the root. `display` is the path as the user would type it. */
export interface FileEntry {
  abs: string
  rel: string
  display: string
  size: number
  mtimeMs: number
  mode: number
}

/** What happened (or will happen) to one sibling; the table shows one cell per encoding. */
type CellState = 'todo' | 'written' | 'current' | 'larger' | 'error'
/** A delta's states add one: beyond RFC 9842's window limits (encodeDelta made none). */
export type DeltaState = CellState | 'limit'

export interface Cell { state: CellState, size?: number }

export interface Row {
  file: FileEntry
  cells: Partial<Record<EncodingToken, Cell>>
}

export interface Task {
  row: Row
  token: EncodingToken
  sibling: string
}

/** A file of an earlier release used as a dictionary; `id` names its deltas (delta-files.ts). */
export interface DictionaryFile { abs: string, display: string, sha256: Buffer, id: string }

/** One module and one dictionary: a table row with a cell per delta coding. */
export interface DeltaRow {
  row: Row
  dictionary: DictionaryFile
  cells: Partial<Record<DictionaryCoding, { state: DeltaState, size?: number }>>
}

export interface DeltaTask {
  delta: DeltaRow
  /** The module's row, as Task has it (progress counts both kinds per file). */
  row: Row
  coding: DictionaryCoding
  target: string
}

/** What a worker is asked: a sibling of the file at `path`, or its delta against `dictionary`, whose bytes must hash to `sha256` (hex). */
export type Job = { path: string } & ({ token: EncodingToken } | { dictionary: string, sha256: string, coding: DictionaryCoding })

export type WorkerJob = Job & { id: number }

export type WorkerReply =
  /** Not an answer but a step towards it: `read` bytes of the file have gone through the encoder. */
  | { id: number, progress: number }
  /** `data` is empty with `beyondLimits` when the pair is beyond RFC 9842's limits. */
  | { id: number, ok: true, data: Uint8Array, size: number, mtimeMs: number, ms: number, beyondLimits?: boolean }
  | { id: number, ok: false, message: string, code?: string }

/** A problem with one path, reported as one line naming it. */
export interface Problem { path: string, message: string, action?: 'read' | 'write' }
