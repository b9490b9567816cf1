/**
 * Atomic file writes, for `wasm-serve compress` (siblings), the on-the-fly compression cache and the
 * file-to-file encoder: a temp file in the target's directory, fsync, then rename(2) over the target,
 * which is atomic within one directory. A reader (or a crash) sees the old file or the complete new
 * one, never a truncated one.
 */
import { randomBytes } from 'node:crypto'
import { open, rename, unlink, utimes, type FileHandle } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'

export interface AtomicWriteOptions {
  /** Permission bits of the new file (before the umask); default 0o666 like any new file. */
  mode?: number
  /** The mtime to give it instead of "now". */
  mtimeMs?: number
  /** Holds the temp path while it exists, so the caller can remove it on interrupt. */
  temps?: Set<string>
}

/**
 * The one temp-name recipe: `.<target name>.<pid>-<8 hex>.tmp`. It starts with a dot (servers hide
 * dotfiles, D14; the compress scan skips them) and carries the pid, so an interrupted run's leftovers
 * are recognisable (see parseTempName) and never served.
 */
function tempPathFor (target: string): string {
  return join(dirname(target), `.${basename(target)}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`)
}

const TEMP_NAME = /^\.(.+)\.(\d+)-[0-9a-f]{8}\.tmp$/

/** The target name and writer pid of one of our temp files, or undefined for any other name. */
export function parseTempName (name: string): { target: string, pid: number } | undefined {
  const m = TEMP_NAME.exec(name)
  return m === null ? undefined : { target: m[1], pid: Number(m[2]) }
}

export async function removeQuietly (path: string): Promise<void> {
  await unlink(path).catch(() => undefined)
}

/** `fill` writes the whole content through the handle and makes it durable (fsync) before it resolves. */
async function atomically (target: string, opts: AtomicWriteOptions, fill: (fh: FileHandle) => Promise<void>): Promise<void> {
  const temp = tempPathFor(target)
  opts.temps?.add(temp)
  try {
    // 'wx' = O_CREAT|O_EXCL: never follows a symlink planted at the temp name, never reuses a file.
    // When it fails, whatever has that name is not ours, so it is left alone.
    const fh = await open(temp, 'wx', opts.mode ?? 0o666)
    try {
      await fill(fh).finally(async () => { await fh.close() })
      if (opts.mtimeMs !== undefined) await utimes(temp, Date.now() / 1000, opts.mtimeMs / 1000)
      await rename(temp, target)
    } catch (err) {
      await removeQuietly(temp)
      throw err
    }
  } finally {
    opts.temps?.delete(temp)
  }
}

/** Writes `data` to `target` atomically. */
export async function writeAtomic (target: string, data: Uint8Array, opts: AtomicWriteOptions = {}): Promise<void> {
  await atomically(target, opts, async fh => {
    await fh.writeFile(data)
    await fh.datasync()
  })
}

/**
 * Writes to `target` atomically what `fill` writes into the stream it is given, e.g. the last stage of
 * a pipeline; `fill` resolves once the stream has closed (as pipeline() does). When it rejects,
 * nothing is renamed.
 */
export async function writeAtomicStream (target: string, fill: (out: NodeJS.WritableStream) => Promise<void>, opts: AtomicWriteOptions = {}): Promise<void> {
  await atomically(target, opts, async fh => {
    // flush: the stream fsyncs the file before it closes the handle, and only then emits 'close'.
    const out = fh.createWriteStream({ flush: true })
    // A stream left open holds the handle, which then never closes; pipeline() destroys it on error,
    // a hand-written `fill` may not.
    await fill(out).catch(err => { out.destroy(); throw err })
  })
}
