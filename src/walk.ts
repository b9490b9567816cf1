/**
 * The served root as the filesystem shows it: the walk at start-up, and the stat behind every later
 * look-up, with the rules that decide what may be served at all (D14 in docs/delivery.md):
 * dotfiles stay hidden unless allowed, build-time deltas are never files of their own, and a symlink
 * is followed only while the whole resolved path stays inside the root.
 */
import type { Stats } from 'node:fs'
import { readdir, realpath, stat } from 'node:fs/promises'
import { join, sep } from 'node:path'
import { isBuiltDelta } from './delta-files.js'
import { limiter } from './parallel.js'
import { isHiddenPath } from './resolve.js'

export interface FileFacts { rel: string, abs: string, stats: Stats }

/** Files found by a walk, and directories (root-relative) with their inodes. */
export interface Walked { files: FileFacts[], dirs: Map<string, number> }

/** Logs a warning once per key (a file that stays unreadable is reported once, not per request). */
export type WarnOnce = (key: string, obj: object, msg: string) => void

export class RootDir {
  private constructor (readonly given: string, private current: string, private readonly opts: { dotfiles: 'deny' | 'allow', warn: WarnOnce }) {}

  static async open (root: string, dotfiles: 'deny' | 'allow', warn: WarnOnce): Promise<RootDir> {
    return new RootDir(root, await realpath(root), { dotfiles, warn })
  }

  /** The root's real path; it moves when a symlinked root is pointed at a new release. */
  get real (): string { return this.current }
  moveTo (real: string): void { this.current = real }

  /** Absolute path of a directory given relative to the root. */
  abs (dir: string): string { return join(this.real, ...dir.split('/').filter(Boolean)) }

  /**
   * Not served, not indexed, not watched. A build-time delta (`app.wasm.<id>.dcz`) is a body only for
   * a request naming its dictionary (deltas.ts): served as a file, its bytes would be taken for a
   * module of their own.
   */
  hidden (rel: string): boolean {
    return (this.opts.dotfiles === 'deny' && isHiddenPath(rel.split('/'))) || isBuiltDelta(rel)
  }

  /**
   * Stats a relative path, following symlinks only while the whole resolved path stays inside the
   * root: a symlinked directory anywhere in the path is resolved too, not only the last part.
   */
  async statInside (rel: string): Promise<FileFacts | undefined> {
    const abs = join(this.real, ...rel.split('/'))
    try {
      const target = await realpath(abs)
      if (target !== this.real && !target.startsWith(this.real + sep)) {
        this.opts.warn(rel, { path: rel }, 'not serving a symlink that leads outside the root')
        return undefined
      }
      return { rel, abs: target, stats: await stat(target) }
    } catch {
      return undefined
    }
  }

  /** A regular file that may be served, or undefined. */
  async statFile (rel: string): Promise<FileFacts | undefined> {
    if (this.hidden(rel)) return undefined
    const facts = await this.statInside(rel)
    return facts?.stats.isFile() === true ? facts : undefined
  }

  /**
   * Every servable file and directory below `dir` ('' for the root), directories with their inode
   * (a directory replaced by another of the same name is noticed by it); symlink cycles are walked
   * once. Directories are read in parallel (at most WALK_AT_ONCE filesystem calls in flight); the
   * files come out in depth-first readdir order all the same.
   */
  async walk (dir: string): Promise<Walked> {
    const dirs = new Map<string, number>()
    const files = await this.walkInto(dir, { dirs, seen: new Set(), gate: limiter(WALK_AT_ONCE) })
    return { files, dirs }
  }

  private async walkInto (dir: string, walk: WalkState): Promise<FileFacts[]> {
    const { gate } = walk
    const abs = this.abs(dir)
    let entries
    let real: string
    try {
      real = await gate(() => realpath(abs))
      if (walk.seen.has(real)) return [] // a symlink cycle
      walk.seen.add(real)
      const ino = (await gate(() => stat(real))).ino
      entries = await gate(() => readdir(abs, { withFileTypes: true }))
      walk.dirs.set(dir, ino)
    } catch (err) {
      this.opts.warn(`unreadable:${dir}`, { path: dir, code: (err as NodeJS.ErrnoException).code }, 'cannot list a directory; it is not served')
      return []
    }
    const found = await Promise.all(entries.map(async (entry): Promise<FileFacts[]> => {
      const rel = dir === '' ? entry.name : `${dir}/${entry.name}`
      if (this.hidden(rel)) return []
      if (entry.isDirectory()) return this.walkInto(rel, walk)
      // A plain file in a directory already resolved inside the root needs no realpath: one stat.
      const facts = entry.isFile()
        ? await gate(() => stat(join(real, entry.name))).then(stats => ({ rel, abs: join(real, entry.name), stats }), () => undefined)
        : await gate(() => this.statInside(rel)) // a symlink: followed only while it stays inside
      if (facts === undefined) return []
      if (facts.stats.isDirectory()) return this.walkInto(rel, walk)
      return facts.stats.isFile() ? [facts] : []
    }))
    return found.flat()
  }
}

/** Filesystem calls in flight during a walk: enough to keep libuv's 4 threads busy. */
const WALK_AT_ONCE = 16

interface WalkState {
  dirs: Map<string, number>
  /** Real paths of the directories walked, so a symlink cycle is walked once. */
  seen: Set<string>
  gate: <T>(fn: () => Promise<T>) => Promise<T>
}
