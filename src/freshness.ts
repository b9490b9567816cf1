/**
 * Keeping the catalog true to the disk (D16 in docs/delivery.md), with a stated bound whatever
 * happens to watchers. Watchers are the fast path: a change is seen within tens of milliseconds. A
 * periodic check is the safety net for everything a watcher cannot see — a directory deleted and
 * made again (the old watch stays on the deleted inode), directories swapped with `mv`, the root
 * replaced or a symlinked root pointed at a new release, a watch lost or never set up because the
 * system's inotify limit was reached: it stats every file the catalog serves and every directory it
 * knows, and re-indexes what differs. Content is never stale for longer than the check's interval
 * (`revalidate`, or ten times the last check's duration on a very large root, whichever is longer).
 */
import { realpath, stat } from 'node:fs/promises'
import { sep } from 'node:path'
import { sameFile, stampOf } from './file-identity.js'
import type { Asset, Logger } from './types.js'
import type { RootDir, WarnOnce } from './walk.js'
import { DirWatchers } from './watchers.js'

/** What the catalog offers to be kept fresh. */
export interface Refreshable {
  readonly root: RootDir
  assets: () => Iterable<Asset>
  dirs: () => ReadonlyMap<string, number>
  /** Re-indexes the group a path belongs to. */
  refresh: (path: string) => Promise<void>
  /** Walks a directory again (calling `walked` once its directories are known), then indexes its files. */
  rescan: (dir: string, walked?: () => void) => Promise<void>
  /** A directory that is gone: everything below it dropped. */
  forget: (dir: string) => void
}

export interface FreshnessOptions {
  watch: boolean
  /** Milliseconds between periodic checks; 0 turns them off. */
  revalidateMs: number
  log: Logger
  warn: WarnOnce
}

/** Stats run this many at a time: a check never floods libuv's thread pool. */
const STATS_AT_ONCE = 16
/** Watchers set in one turn of the event loop at start-up. */
const WATCH_AT_ONCE = 256
/** A check takes at most a tenth of the time on a very large root. */
const DUTY = 10

export class Freshness {
  private readonly watchers: DirWatchers | undefined
  private timer: NodeJS.Timeout | undefined
  private closed = false

  constructor (private readonly target: Refreshable, private readonly opts: FreshnessOptions) {
    this.watchers = opts.watch ? new DirWatchers(dir => target.root.abs(dir), rel => this.changed(rel), opts.warn) : undefined
  }

  /**
   * Watches what the catalog knows now, and starts the periodic check. A large root's watchers are
   * set WATCH_AT_ONCE directories a turn of the event loop: setting one costs ~0.1 ms (an inotify
   * watch and a handle), 0.5 s for 5,000 directories that would otherwise come before the server listens.
   */
  start (): void {
    const dirs = [...this.target.dirs().keys()]
    this.watchers?.sync(dirs.slice(0, WATCH_AT_ONCE))
    if (dirs.length > WATCH_AT_ONCE) void this.watchRest(dirs.slice(WATCH_AT_ONCE))
    this.schedule(this.opts.revalidateMs)
  }

  private async watchRest (dirs: string[]): Promise<void> {
    for (let i = 0; i < dirs.length && !this.closed; i += WATCH_AT_ONCE) {
      await new Promise(resolve => setImmediate(resolve))
      // A directory forgotten meanwhile (removed, rescanned) is not watched.
      this.watchers?.add(dirs.slice(i, i + WATCH_AT_ONCE).filter(dir => this.target.dirs().has(dir)))
    }
  }

  /** A directory the catalog learnt of while serving (a request found it). */
  watchNew (): void { this.watchers?.sync(this.target.dirs().keys()) }

  close (): void {
    this.closed = true
    clearTimeout(this.timer)
    this.watchers?.close()
  }

  private schedule (ms: number): void {
    if (this.closed || this.opts.revalidateMs === 0) return
    this.timer = setTimeout(() => {
      const started = performance.now()
      this.check().catch(err => this.opts.log.warn({ err }, 'the periodic check for changes on disk failed; trying again'))
        .finally(() => this.schedule(Math.max(this.opts.revalidateMs, DUTY * (performance.now() - started))))
    }, ms)
    this.timer.unref()
  }

  private changed (rel: string): void {
    this.onChange(rel).catch(err => {
      if ((err as { code?: string }).code !== 'WASM_SERVE_UNAVAILABLE') this.opts.log.warn({ err, path: rel }, 'could not re-index a changed file')
    })
  }

  /** A name a watcher reported, or a directory the check found replaced. */
  private async onChange (rel: string): Promise<void> {
    const { root } = this.target
    if (root.hidden(rel)) return
    const facts = await root.statInside(rel)
    if (facts?.stats.isDirectory() === true) return this.rescan(rel)
    if (facts === undefined && this.target.dirs().has(rel)) {
      this.target.forget(rel)
      this.watchers?.sync(this.target.dirs().keys())
      return
    }
    await this.target.refresh(rel)
  }

  /** A directory is walked again and its watchers made anew (it may be another directory now), before its files are read. */
  private async rescan (dir: string): Promise<void> {
    await this.target.rescan(dir, () => this.watchers?.rearm(dir, this.target.dirs().keys()))
  }

  /** One periodic check: the root, then every directory, then every file served from the root. */
  private async check (): Promise<void> {
    const { root } = this.target
    const real = await realpath(root.given).catch(() => undefined)
    if (real !== undefined && (real !== root.real || (await stat(real)).ino !== this.target.dirs().get(''))) {
      this.opts.log.info({ root: root.given, real }, 'the root was replaced; indexing it again')
      root.moveTo(real)
      return this.rescan('')
    }
    const replaced: string[] = []
    await inBatches([...this.target.dirs()], async ([dir, ino]) => {
      const now = await stat(root.abs(dir)).catch(() => undefined)
      if (now?.ino !== ino) replaced.push(dir)
    })
    // The topmost first: rescanning a directory covers everything below it.
    for (const dir of replaced.sort()) {
      if (!replaced.some(d => d !== dir && dir.startsWith(d === '' ? '' : d + '/'))) await this.onChange(dir)
    }
    const changed = new Set<string>()
    await inBatches([...this.target.assets()], async asset => {
      for (const rep of asset.reps) {
        if (rep.stamp === null || !rep.file.startsWith(root.real + sep)) continue // an encoding made here
        const now = await stat(rep.file).catch(() => undefined)
        if (now === undefined || !sameFile(stampOf(now), rep.stamp)) { changed.add(asset.path); return }
      }
    })
    for (const path of changed) await this.target.refresh(path).catch(() => {})
  }
}

async function inBatches<T> (items: T[], each: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += STATS_AT_ONCE) await Promise.all(items.slice(i, i + STATS_AT_ONCE).map(each))
}
