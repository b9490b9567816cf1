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
  sync (dirs: ReadonlySet<string>): void {
    if (this.closed) return
    for (const [dir, watcher] of this.watchers) {
      if (!dirs.has(dir)) { watcher.close(); this.watchers.delete(dir) }
    }
    for (const dir of dirs) if (!this.watchers.has(dir)) this.add(dir)
  }

  close (): void {
    this.closed = true
    for (const watcher of this.watchers.values()) watcher.close()
    this.watchers.clear()
    for (const timer of this.pending.values()) clearTimeout(timer)
    this.pending.clear()
  }

  private add (dir: string): void {
    try {
      const watcher = watch(this.abs(dir), { persistent: false }, (_event, name) => {
        if (name !== null) this.schedule(dir === '' ? String(name) : `${dir}/${String(name)}`)
      })
      watcher.on('error', () => { watcher.close(); this.watchers.delete(dir) })
      this.watchers.set(dir, watcher)
    } catch (err) {
      this.warn(`watch:${dir}`, { err, dir }, 'cannot watch a directory for changes; new files are still found on request')
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
