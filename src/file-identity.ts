/**
 * What "the same file" means, in one place. The catalog checks it before and after reading a file,
 * a streamed body before its first and last chunk, the snapshot path around its read, and
 * `wasm-serve compress` around the read it encodes. Size and mtime alone are not enough: a file
 * renamed over with the same size and mtime (`cp -p`, `touch -r`, reproducible builds that pin
 * mtimes) is another file, so the inode counts too, and so does ctime, which every write and
 * rename moves and which no user-level call can set back (see docs/delivery.md, D16).
 */
import type { Stats } from 'node:fs'

export interface FileStamp {
  size: number
  mtimeMs: number
  ctimeMs: number
  ino: number
}

export const stampOf = (stats: Stats): FileStamp =>
  ({ size: stats.size, mtimeMs: stats.mtimeMs, ctimeMs: stats.ctimeMs, ino: stats.ino })

export const sameFile = (a: FileStamp, b: FileStamp): boolean =>
  a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs && a.ino === b.ino
