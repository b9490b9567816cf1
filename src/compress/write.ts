/** Atomic sibling writes: temp file in the same directory, fsync, then rename over the target. */
import { randomBytes } from 'node:crypto'
import { open, rename, unlink, utimes } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'

export interface WriteMeta {
  /** Permission bits of the original, so the sibling is readable by whoever serves the original. */
  mode: number
  /** The original's mtime when it was read; see below. */
  mtimeMs: number
}

/**
 * The temp name starts with a dot (servers hide dotfiles, D14; the compress scan skips them) and
 * carries the pid, so an interrupted run's leftovers are recognisable and never served.
 */
export function tempPathFor (target: string): string {
  return join(dirname(target), `.${basename(target)}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`)
}

export async function removeQuietly (path: string): Promise<void> {
  await unlink(path).catch(() => undefined)
}

/**
 * Writes `data` to `target` so that a reader (or a crash) sees the old file or the complete new one,
 * never a truncated one: rename(2) within one directory is atomic. `temps` holds the temp path while it
 * exists, so the caller can remove it on interrupt.
 *
 * The sibling gets the original's mtime rather than "now": the original changing after we read it then
 * makes the sibling look stale (older than its file) instead of falsely up to date.
 */
export async function writeAtomic (target: string, data: Uint8Array, meta: WriteMeta, temps: Set<string>): Promise<void> {
  const temp = tempPathFor(target)
  temps.add(temp)
  try {
    // 'wx' = O_CREAT|O_EXCL: never follows a symlink planted at the temp name, never reuses a file.
    const fh = await open(temp, 'wx', (meta.mode & 0o666) | 0o600)
    try {
      await fh.writeFile(data)
      await fh.datasync()
    } finally {
      await fh.close()
    }
    await utimes(temp, Date.now() / 1000, meta.mtimeMs / 1000)
    await rename(temp, target)
  } catch (err) {
    await removeQuietly(temp)
    throw err
  } finally {
    temps.delete(temp)
  }
}
