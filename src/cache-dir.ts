/**
 * The on-the-fly cache directory (docs/delivery.md, "The on-the-fly cache directory"): encodings
 * named `<content hash>.<token>`, kept under `compress.cacheMaxSize` by evicting the least recently
 * used. It is checked once at start-up, safe to trust and writable; when it is not, the server says
 * so once and keeps encodings in memory only, instead of failing (with a stack trace) per file.
 *
 * "Used" is the file's mtime, set to now whenever an encoding is read back, so the order survives a
 * restart. Setting it moves ctime too, which the file-identity rule checks: a file the catalog is
 * streaming from is therefore never touched (nor evicted); it is in use anyway.
 */
import type { Stats } from 'node:fs'
import { lstat, mkdir, readdir, readFile, rm, stat, utimes } from 'node:fs/promises'
import { join } from 'node:path'
import { parseTempName, removeQuietly, writeAtomic } from './atomic-write.js'
import { ENCODINGS } from './encodings.js'
import type { Logger } from './types.js'

/** A cache entry's name: the original's content hash (27 base64url characters) and the coding. */
const ENTRY = new RegExp(`^[A-Za-z0-9_-]{27}\\.(?:${ENCODINGS.map(e => e.token).join('|')})$`)
/** Evictions are logged one by one at debug level, and summed up at info level this often at most. */
const SUMMARY_EVERY_MS = 60_000
/** Files stat'ed at once when the directory is scanned at start-up. */
const SCAN_BATCH = 64
/** A temp file left this long by a process that is gone is a leftover of a crash (a writer moves its mtime). */
const STALE_TEMP_MS = 10 * 60_000

interface Entry {
  size: number
  /** Paths of the served files whose encoding this is (identical files share one). */
  assets: Set<string>
}

export interface CacheDirOptions {
  dir: string
  /** Bytes the directory may hold; files the catalog streams from are kept beyond it. */
  maxSize: number
  log: Logger
  /** Whether the catalog streams `file` from disk just now for one of `assets`: it is then neither touched nor evicted. */
  inUse: (file: string, assets: ReadonlySet<string>) => boolean
  /**
   * Another process manages the directory (--workers: the encoder, onthefly.ts): this one reads it
   * and never marks a file used nor evicts one. Marking moves the ctime the other process's streamed
   * responses check (file-identity.ts), and only the encoder knows what it streams from.
   */
  readOnly?: boolean
}

export class CacheDir {
  /** In least recently used order: an entry used again is moved to the end. */
  private readonly entries = new Map<string, Entry>()
  private total = 0
  private readonly evictions: EvictionLog
  private writeWarned = false

  private constructor (private readonly opts: CacheDirOptions) {
    this.evictions = new EvictionLog(opts.log, () => ({ files: this.entries.size, bytes: this.total, maxBytes: opts.maxSize }))
  }

  /** The directory, checked and scanned; null (said once) when it cannot be used. */
  static async open (opts: CacheDirOptions): Promise<CacheDir | null> {
    const problem = await unusable(opts.dir)
    if (problem !== undefined) {
      opts.log.warn({ cacheDir: opts.dir }, `not using the compression cache directory: ${problem}; encodings are kept in memory only`)
      return null
    }
    const cache = new CacheDir(opts)
    for (const f of await scan(opts.dir)) {
      cache.entries.set(f.name, { size: f.size, assets: new Set() })
      cache.total += f.size
    }
    return cache
  }

  path (name: string): string { return join(this.opts.dir, name) }

  /** Bytes held, for tests and the summary line. */
  get size (): number { return this.total }

  /** A cached encoding's bytes and stats (taken after it was marked used), or undefined. */
  async read (name: string, asset: string): Promise<{ bytes: Buffer, stats: Stats } | undefined> {
    const stats = await this.lookup(name, asset)
    if (stats === undefined) return undefined
    const bytes = await readFile(this.path(name)).catch(() => undefined)
    return bytes === undefined || bytes.length !== stats.size ? undefined : { bytes, stats }
  }

  /** A cached encoding's stats, taken after it was marked used, or undefined when there is none. */
  async lookup (name: string, asset: string): Promise<Stats | undefined> {
    const file = this.path(name)
    const known = this.entries.get(name)
    if (this.opts.readOnly !== true && (known === undefined || !this.opts.inUse(file, known.assets))) {
      const now = new Date()
      await utimes(file, now, now).catch(() => undefined)
    }
    const stats = await stat(file).catch(() => undefined)
    if (stats === undefined) { this.forget(name); return undefined }
    this.account(name, stats.size)
    this.note(name, asset)
    return stats
  }

  /** Writes an encoding; its stats, or undefined when it could not be written (said once). */
  async write (name: string, bytes: Buffer, asset: string): Promise<Stats | undefined> {
    try {
      await writeAtomic(this.path(name), bytes)
      return await this.added(name, asset)
    } catch (err) {
      this.writeFailed(err)
      return undefined
    }
  }

  /** Takes into account a file written into the directory by the file-to-file encoder. */
  async added (name: string, asset: string): Promise<Stats> {
    const stats = await stat(this.path(name))
    this.account(name, stats.size)
    this.note(name, asset)
    return stats
  }

  /** Removes a file the caller wrote and does not keep (not smaller, or of a changed original). */
  async discard (name: string): Promise<void> {
    await rm(this.path(name), { force: true })
    this.forget(name)
  }

  /**
   * Makes the encodings of these originals (content hashes) the most recently used, in their order,
   * without touching the files: at start-up, those the files of the root will read back.
   */
  promote (hashes: ReadonlySet<string>): void {
    for (const [name, entry] of [...this.entries]) {
      if (!hashes.has(name.slice(0, name.indexOf('.')))) continue
      this.entries.delete(name)
      this.entries.set(name, entry)
    }
  }

  /** Evicts the least recently used files until the directory holds at most `maxSize` bytes. */
  async prune (): Promise<void> {
    if (this.opts.readOnly === true) return
    // Each entry is looked at once at most: one in use goes to the end, as used.
    for (let n = this.entries.size; n > 0 && this.total > this.opts.maxSize; n--) {
      const [name, entry] = this.entries.entries().next().value as [string, Entry]
      const file = this.path(name)
      this.entries.delete(name)
      this.entries.set(name, entry)
      if (this.opts.inUse(file, entry.assets)) continue
      try { await rm(file, { force: true }) } catch (err) {
        this.opts.log.debug({ file, code: (err as NodeJS.ErrnoException).code }, 'cannot remove a file from the compression cache')
        continue
      }
      this.forget(name)
      this.evictions.add(name, entry.size)
    }
    this.evictions.summarise()
  }

  /** Evictions not summed up yet are, now. */
  close (): void { this.evictions.close() }

  /** Marks a known entry as the most recently used and records who uses it. */
  private note (name: string, asset: string): void {
    const entry = this.entries.get(name)
    if (entry === undefined) return
    entry.assets.add(asset)
    this.entries.delete(name)
    this.entries.set(name, entry)
  }

  /** Sets an entry's size (adding it when new, as the most recently used). */
  private account (name: string, size: number): void {
    const entry = this.entries.get(name)
    if (entry === undefined) {
      this.entries.set(name, { size, assets: new Set() })
      this.total += size
    } else {
      this.total += size - entry.size
      entry.size = size
    }
  }

  private forget (name: string): void {
    const entry = this.entries.get(name)
    if (entry === undefined) return
    this.entries.delete(name)
    this.total -= entry.size
  }

  private writeFailed (err: unknown): void {
    const code = (err as NodeJS.ErrnoException).code
    if (this.writeWarned) { this.opts.log.debug({ code }, 'cannot write to the compression cache'); return }
    this.writeWarned = true
    this.opts.log.warn({ cacheDir: this.opts.dir, code }, 'cannot write to the compression cache (said once); encodings that do not fit in memory are not kept')
  }
}

/** Every entry already in the directory, least recently used first; temp files of a crashed writer go. */
async function scan (dir: string): Promise<Array<{ name: string, size: number }>> {
  const all = await readdir(dir).catch(() => [] as string[])
  const names = all.filter(n => ENTRY.test(n) || parseTempName(n) !== undefined)
  const found: Array<{ name: string, size: number, usedMs: number }> = []
  for (let i = 0; i < names.length; i += SCAN_BATCH) {
    await Promise.all(names.slice(i, i + SCAN_BATCH).map(async name => {
      const stats = await lstat(join(dir, name)).catch(() => undefined)
      if (stats?.isFile() !== true) return
      const temp = parseTempName(name)
      if (temp === undefined) found.push({ name, size: stats.size, usedMs: stats.mtimeMs })
      else if (Date.now() - stats.mtimeMs > STALE_TEMP_MS && !alive(temp.pid)) await removeQuietly(join(dir, name))
    }))
  }
  return found.sort((a, b) => a.usedMs - b.usedMs)
}

/** Evictions, logged one by one at debug level and summed up at info level at most once a minute. */
class EvictionLog {
  private files = 0
  private bytes = 0
  private lastSummary = 0
  private timer: NodeJS.Timeout | undefined

  constructor (private readonly log: Logger, private readonly state: () => object) {}

  add (name: string, bytes: number): void {
    this.files++
    this.bytes += bytes
    this.log.debug({ file: name, bytes }, 'evicted from the compression cache (least recently used)')
  }

  summarise (): void {
    if (this.files === 0 || this.timer !== undefined) return
    const wait = this.lastSummary + SUMMARY_EVERY_MS - Date.now()
    if (wait > 0) {
      this.timer = setTimeout(() => { this.timer = undefined; this.summarise() }, wait)
      this.timer.unref()
      return
    }
    this.write()
  }

  close (): void {
    clearTimeout(this.timer)
    this.timer = undefined
    if (this.files > 0) this.write()
  }

  private write (): void {
    this.lastSummary = Date.now()
    this.log.info({ evicted: this.files, evictedBytes: this.bytes, ...this.state() }, 'compression cache pruned to its size cap (least recently used first)')
    this.files = 0
    this.bytes = 0
  }
}

/** Whether a process with this pid exists (EPERM: it does, as another user's). */
function alive (pid: number): boolean {
  try { process.kill(pid, 0); return true } catch (err) { return (err as NodeJS.ErrnoException).code === 'EPERM' }
}

/**
 * Why the directory cannot be used, or undefined when it can. It is created if missing. Its files are
 * served as they are, so a directory someone else can write to would let them put any bytes behind
 * any file's content hash; one the server cannot write to is found here once, not per file.
 */
async function unusable (dir: string): Promise<string | undefined> {
  let info: Stats
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 })
    info = await lstat(dir)
  } catch (err) {
    return `cannot create it (${(err as NodeJS.ErrnoException).code ?? String(err)})`
  }
  const uid = process.getuid?.()
  if (!info.isDirectory()) return 'it is not a directory'
  if (uid !== undefined && info.uid !== uid) return 'another user owns it'
  if ((info.mode & 0o022) !== 0) return 'group or others can write to it'
  // A dot name: never taken for an entry, and hidden like the atomic writer's temp files.
  const probe = join(dir, `.wasm-serve-probe-${process.pid}`)
  try {
    await writeAtomic(probe, Buffer.from('probe\n'))
  } catch (err) {
    return `cannot write to it (${(err as NodeJS.ErrnoException).code ?? String(err)})`
  } finally {
    await removeQuietly(probe)
  }
  return undefined
}
