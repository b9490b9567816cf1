/**
 * Change notifications for the served root (D16 in docs/delivery.md): one non-recursive watcher per
 * directory, and the burst of events one copy makes coalesced into one call per path. Node 20's
 * recursive fs.watch on Linux follows each file's inode and goes deaf to a file once it has been
 * replaced by a rename (deploys do that), while a directory watch reports every name that changes.
 */
import { watch, type FSWatcher } from 'node:fs'
import type { WarnOnce } from './walk.js'

const SETTLE_MS = 40

export class DirWatchers {
  private readonly watchers = new Map<string, FSWatcher>()
  private readonly pending = new Map<string, NodeJS.Timeout>()
  private closed = false

  /** `abs` maps a root-relative directory to its path on disk; `changed` gets a root-relative path. */
  constructor (private readonly abs: (dir: string) => string, private readonly changed: (rel: string) => void, private readonly warn: WarnOnce) {}

  /** Watches exactly these directories (root-relative, '' is the root). */
  sync (dirs: Iterable<string>): void {
    if (this.closed) return
    const wanted = new Set(dirs)
    for (const [dir, watcher] of this.watchers) {
      if (!wanted.has(dir)) { watcher.close(); this.watchers.delete(dir) }
    }
    for (const dir of wanted) if (!this.watchers.has(dir)) this.watchOne(dir)
  }

  /** Watches these directories too (those not watched yet), leaving every other watch as it is. */
  add (dirs: Iterable<string>): void {
    if (this.closed) return
    for (const dir of dirs) if (!this.watchers.has(dir)) this.watchOne(dir)
  }

  /** Watches `dir` and everything below it anew: a watch follows an inode, and the directory may be another one now. */
  rearm (dir: string, dirs: Iterable<string>): void {
    for (const [d, watcher] of this.watchers) {
      if (dir === '' || d === dir || d.startsWith(dir + '/')) { watcher.close(); this.watchers.delete(d) }
    }
    this.sync(dirs)
  }

  close (): void {
    this.closed = true
    for (const watcher of this.watchers.values()) watcher.close()
    this.watchers.clear()
    for (const timer of this.pending.values()) clearTimeout(timer)
    this.pending.clear()
  }

  private watchOne (dir: string): void {
    try {
      const watcher = watch(this.abs(dir), { persistent: false }, (_event, name) => {
        if (name !== null) this.schedule(dir === '' ? String(name) : `${dir}/${String(name)}`)
      })
      watcher.on('error', err => {
        watcher.close()
        this.watchers.delete(dir)
        this.warn(`watch:${dir}`, { err, dir }, 'lost the watch on a directory; its changes are picked up by the periodic check')
      })
      this.watchers.set(dir, watcher)
    } catch (err) {
      const limit = (err as NodeJS.ErrnoException).code === 'ENOSPC'
      // Once for the limit (it concerns every directory after this one), once per directory otherwise.
      this.warn(limit ? 'watch:limit' : `watch:${dir}`, { err, dir }, limit
        ? 'the system\'s limit on watches is reached (sysctl fs.inotify.max_user_watches); changes in directories without a watch are picked up by the periodic check'
        : 'cannot watch a directory; its changes are picked up by the periodic check')
    }
  }

  private schedule (rel: string): void {
    clearTimeout(this.pending.get(rel))
    this.pending.set(rel, setTimeout(() => {
      this.pending.delete(rel)
      this.changed(rel)
    }, SETTLE_MS))
  }
}
