/**
 * The catalog: the map `path → Asset` every request is answered from, and its updates. Start-up
 * reads as walk → index → swap: the root is walked once (walk.ts), each group of a file and its
 * siblings is indexed into fully built assets (assets.ts: representations, content hashes and every
 * header), and the result is swapped into the map. Small files' bytes are held in memory within
 * `memoryBudget`, so a request for them is a map lookup with no filesystem work. Afterwards the same
 * index → swap runs for every path a watcher reports or a request finds on disk (D16 in
 * docs/delivery.md). Listeners (on-the-fly compression) hear of every file indexed.
 */
import { originalName } from './content-type.js'
import { ENCODINGS, type EncodingToken } from './encodings.js'
import { hashBuffers } from './etag.js'
import { indexGroup, withEncodings, type IndexContext } from './assets.js'
import { Freshness } from './freshness.js'
import { MAX_IN_MEMORY } from './load.js'
import { forEachLimited } from './parallel.js'
import { isTransient, transientLog, Unavailable } from './transient.js'
import type { PolicyOf } from './policy.js'
import type { Asset, Loaded, Logger } from './types.js'
import { RootDir, type FileFacts, type WarnOnce } from './walk.js'

export interface CatalogOptions {
  root: string
  memoryBudget: number
  precompressed: readonly EncodingToken[]
  dotfiles: 'deny' | 'allow'
  policy: PolicyOf
  log: Logger
  watch: boolean
  /** Whether a file without siblings may still get encodings (on the fly): then it Varies (D7). */
  encodable: (path: string, size: number) => boolean
  /** Milliseconds between checks of every file against the disk (freshness.ts); 0: none. */
  revalidateMs: number
}

/** Groups indexed at once while the root is walked: a steady pool that keeps libuv's 4 threads busy. */
const PARALLEL = 16

export class Catalog {
  private readonly byPath = new Map<string, Asset>()
  /** Directories (root-relative) with their inodes. */
  private readonly dirMap = new Map<string, number>()
  private readonly inflight = new Map<string, Promise<void>>()
  private readonly followUps = new Map<string, Promise<void>>()
  private readonly listeners: Array<(asset: Asset) => void> = []
  private readonly freshness: Freshness
  private readonly ctx: IndexContext
  private memoryUsed = 0
  private readonly transient: (err: unknown, path: string) => void
  private markLoaded!: () => void
  /** Resolves once the root has been walked and indexed. */
  readonly loaded = new Promise<void>(resolve => { this.markLoaded = resolve })

  private constructor (private readonly opts: CatalogOptions, root: RootDir, private readonly warn: WarnOnce) {
    this.ctx = { root, precompressed: opts.precompressed, policy: opts.policy, encodable: opts.encodable, inMemory: (_rel, size) => this.fits(size), warn }
    this.transient = transientLog(opts.log)
    this.freshness = new Freshness(this, { watch: opts.watch, revalidateMs: opts.revalidateMs, log: opts.log, warn })
  }

  /** Resolves the root (it must exist); `load()` then walks and indexes it. */
  static async open (opts: CatalogOptions): Promise<Catalog> {
    const warn = warnOnce(opts.log)
    return new Catalog(opts, await RootDir.open(opts.root, opts.dotfiles, warn), warn)
  }

  async load (): Promise<void> {
    hashBuffers.keepAtMost(PARALLEL)
    try {
      const { files, dirs } = await this.root.walk('')
      for (const [dir, ino] of dirs) this.dirMap.set(dir, ino)
      const admitted = admit(files, this.opts.memoryBudget)
      // The walk's stats stand for the look-ups indexing would make again (assets.ts).
      const walked = new Map(files.map(f => [f.rel, f]))
      const ctx = { ...this.ctx, inMemory: (rel: string) => admitted.has(rel), walked }
      const bases = [...new Set(files.map(f => originalName(f.rel)))]
      // A file that cannot be read just now (logged) is looked up again when first requested.
      await forEachLimited(bases, PARALLEL, b => this.index(b, ctx).catch(() => {}))
    } finally {
      hashBuffers.keepAtMost(1)
      this.markLoaded()
    }
    this.freshness.start()
  }

  get (path: string): Asset | undefined { return this.byPath.get(path) }
  hasDir (path: string): boolean { return this.dirMap.has(path) }
  get root (): RootDir { return this.ctx.root }
  assets (): Iterable<Asset> { return this.byPath.values() }
  dirs (): ReadonlyMap<string, number> { return this.dirMap }
  get size (): number { return this.byPath.size }
  get bytesInMemory (): number { return this.memoryUsed }
  /** Whether `bytes` more may be held in memory. */
  fits (bytes: number): boolean { return this.memoryUsed + bytes <= this.opts.memoryBudget }
  /** `listener` hears of every original file indexed or re-indexed. */
  subscribe (listener: (asset: Asset) => void): void { this.listeners.push(listener) }
  close (): void { this.freshness.close() }

  /** Looks a path up on disk when the catalog does not know it yet (a file added while serving). */
  async find (path: string): Promise<Asset | undefined> {
    const known = this.byPath.get(path)
    if (known !== undefined) return known
    const facts = await this.root.statInside(path)
    if (facts === undefined) return undefined
    if (facts.stats.isDirectory()) { this.dirMap.set(path, facts.stats.ino); this.freshness.watchNew(); return undefined }
    await this.refresh(path)
    return this.byPath.get(path)
  }

  /** Re-reads the group a path belongs to (the file and its siblings) and swaps it in atomically. */
  refresh (path: string): Promise<void> {
    const base = originalName(path)
    const running = this.inflight.get(base)
    if (running === undefined) return this.reindex(base)
    // A change during a re-index needs one more pass; every caller meanwhile shares that pass.
    let next = this.followUps.get(base)
    if (next === undefined) {
      next = running.catch(() => {}).then(() => { this.followUps.delete(base); return this.reindex(base) })
      this.followUps.set(base, next)
    }
    return next
  }

  private reindex (base: string): Promise<void> {
    const job = this.index(base, this.ctx).finally(() => this.inflight.delete(base))
    this.inflight.set(base, job)
    return job
  }

  /**
   * Walks a directory again: the directories below it known anew (`walked` is told, so watches are
   * set before any file is read and no change in between is missed), then its files (new, changed
   * or gone) indexed.
   */
  async rescan (dir: string, walked?: () => void): Promise<void> {
    const { files, dirs } = await this.root.walk(dir)
    const below = (p: string) => dir === '' || p === dir || p.startsWith(dir + '/')
    for (const d of [...this.dirMap.keys()]) if (below(d) && !dirs.has(d)) this.dirMap.delete(d)
    for (const [d, ino] of dirs) this.dirMap.set(d, ino)
    walked?.()
    const bases = new Set(files.map(f => originalName(f.rel)))
    for (const path of this.byPath.keys()) if (below(path)) bases.add(originalName(path))
    const all = [...bases]
    for (let i = 0; i < all.length; i += PARALLEL) await Promise.all(all.slice(i, i + PARALLEL).map(b => this.refresh(b).catch(() => {})))
  }

  /** A directory that is gone: it and everything below it. */
  forget (dir: string): void {
    for (const d of [...this.dirMap.keys()]) if (d === dir || d.startsWith(dir + '/')) this.dirMap.delete(d)
    const gone = new Map<string, undefined>()
    for (const path of this.byPath.keys()) if (path.startsWith(dir + '/')) gone.set(path, undefined)
    this.swap(gone)
  }

  /** Adds encodings made on the fly to a file, if it still has the content they were made from. */
  addEncodings (path: string, identityEtag: string, added: Loaded[]): boolean {
    const current = this.byPath.get(path)
    if (current === undefined || current.identity.etag !== identityEtag) return false
    this.swap(new Map([[path, withEncodings(current, added, this.opts.precompressed)]]))
    return true
  }

  /** Indexes one group and swaps it in; rejects with Unavailable (nothing swapped) on a transient failure. */
  private async index (base: string, ctx: IndexContext): Promise<void> {
    let next: Map<string, Asset | undefined>
    try { next = await indexGroup(ctx, base) } catch (err) {
      if (isTransient(err)) {
        this.transient(err, base)
        throw new Unavailable(err)
      }
      // A file that cannot be read (permissions, vanished mid-read) is left out (404), not a failed start or a 500.
      this.warn(`unreadable:${base}`, { path: base, code: (err as NodeJS.ErrnoException).code }, 'cannot read a file; it is not served')
      next = new Map([base, ...ENCODINGS.map(e => base + e.suffix)].map(p => [p, undefined]))
    }
    this.swap(next)
    const asset = next.get(base)
    if (asset !== undefined) for (const listener of this.listeners) listener(asset)
  }

  /** Swaps assets in (undefined: out) and keeps the memory account; responses under way keep the objects they hold. */
  private swap (next: Map<string, Asset | undefined>): void {
    const before = new Set<Buffer>()
    const after = new Set<Buffer>()
    for (const [path, asset] of next) {
      for (const rep of this.byPath.get(path)?.reps ?? []) if (rep.body !== null) before.add(rep.body)
      for (const rep of asset?.reps ?? []) if (rep.body !== null) after.add(rep.body)
      if (asset === undefined) this.byPath.delete(path)
      else this.byPath.set(path, asset)
    }
    for (const body of before) if (!after.has(body)) this.memoryUsed -= body.length
    for (const body of after) if (!before.has(body)) this.memoryUsed += body.length
  }
}

/** One warning per key: a file that stays unreadable is reported once, not on every look-up. */
function warnOnce (log: Logger): WarnOnce {
  const warned = new Set<string>()
  return (key, obj, msg) => {
    if (warned.has(key)) return
    warned.add(key)
    log.warn(obj, msg)
  }
}

/** Chooses which files live in memory at start-up: smallest first, until the budget is spent. */
function admit (files: FileFacts[], budget: number): Set<string> {
  const chosen = new Set<string>()
  let used = 0
  for (const f of [...files].sort((a, b) => a.stats.size - b.stats.size)) {
    if (used + f.stats.size > budget || f.stats.size > MAX_IN_MEMORY) break
    used += f.stats.size
    chosen.add(f.rel)
  }
  return chosen
}
