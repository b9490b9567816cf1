/** Plain data passed between the steps of `wasm-serve compress` (scan → plan → encode → write → report). */
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

export interface WorkerJob { id: number, path: string, token: EncodingToken }

export type WorkerReply =
  | { id: number, ok: true, data: Uint8Array, size: number, mtimeMs: number, ms: number }
  | { id: number, ok: false, message: string, code?: string }

/** A problem with one path, reported as one line naming it. */
export interface Problem { path: string, message: string, action?: 'read' | 'write' }
