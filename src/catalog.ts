/**
 * The catalog (STYLE 1, first stage): the root is walked once at start-up into a map
 * `path → Asset`, each with its representations (identity and precompressed siblings, SPEC D3), their
 * content hashes, and every response header precomputed. Small files' bytes (all representations)
 * are held in memory within `memoryBudget`, so a request for them is a map lookup with no
 * filesystem work. Changes on disk (D16) are picked up by a watcher, and a file the catalog has not
 * seen yet is looked up on disk when requested.
 */
import { createHash } from 'node:crypto'
import { watch, type FSWatcher, type Stats } from 'node:fs'
import { open, readdir, realpath, stat, type FileHandle } from 'node:fs/promises'
import { join, sep } from 'node:path'
import { ENCODINGS, type Coding, type EncodingToken } from './encodings.js'
import { contentTypeFor, originalName } from './content-type.js'
import type { FilePolicy } from './policy.js'
import { decodesToSize, isCompressible, recordedDecodedSize } from './codecs.js'
import { buildHeaders } from './headers.js'
import { BufferPool } from './buffers.js'
import { digestOf } from './etag.js'
import { isHiddenPath } from './resolve.js'

export { hashBuffer } from './etag.js'

export interface Logger {
  info: (obj: object, msg: string) => void
  warn: (obj: object, msg: string) => void
  debug: (obj: object, msg: string) => void
}

export interface Representation {
  coding: Coding
  /** Absolute path of the bytes on disk. */
  file: string
  size: number
  mtimeMs: number
  /** Inode of the bytes indexed, when they come from the served root (checked before streaming, D16). */
  ino?: number
  etag: string
  /** The bytes when held in memory; null means stream them from `file` (checked against size and mtime). */
  body: Buffer | null
  /** Headers of a 200 (and HEAD) response with this representation. */
  headers: Record<string, string>
  /** Headers of a 304 for this representation (D6: ETag, Cache-Control, Vary, type; no length). */
  notModified: Record<string, string>
}

export interface Asset {
  /** Path relative to the root, `/`-separated. */
  path: string
  /** Representations in server preference order; identity (or the raw bytes of a sibling) last. */
  reps: Representation[]
  codings: Coding[]
  /** The bytes ranges are cut from (D8): the identity representation. */
  identity: Representation
  lastModifiedMs: number
  policy: FilePolicy
  isHtml: boolean
  type: string
  /** Whether the server may encode it on the fly (D4): compressible, and not a sibling itself. */
  compressible: boolean
}

export interface CatalogOptions {
  root: string
  memoryBudget: number
  precompressed: readonly EncodingToken[]
  dotfiles: 'deny' | 'allow'
  policy: (path: string, type: string) => FilePolicy
  log: Logger
  watch: boolean
  /** Called with every original file indexed or re-indexed (on-the-fly compression listens here). */
  onIndexed?: (asset: Asset) => void
  /** Whether a file without siblings may still get encodings (on the fly): then it Varies (D7). */
  encodable?: (path: string, size: number) => boolean
}

/** Siblings may be a little older than their original after a copy or checkout (D3). */
const MTIME_TOLERANCE_MS = 2000
const SETTLE_MS = 40
const QUIET_MS = 100
const PARALLEL = 8

interface FileFacts { rel: string, abs: string, stats: Stats }

export class Catalog {
  private readonly assets = new Map<string, Asset>()
  private readonly dirs = new Set<string>([''])
  private readonly warned = new Set<string>()
  private readonly pending = new Map<string, NodeJS.Timeout>()
  private readonly inflight = new Map<string, Promise<void>>()
  private readonly followUps = new Map<string, Promise<void>>()
  private readonly watchers = new Map<string, FSWatcher>()
  private closed = false
  private rootReal = ''
  private memoryUsed = 0
  private admitted = new Set<string>()

  private constructor (readonly opts: CatalogOptions) {}

  static async create (opts: CatalogOptions): Promise<Catalog> {
    const catalog = new Catalog(opts)
    hashBuffers.keepAtMost(PARALLEL)
    try { await catalog.build() } finally { hashBuffers.keepAtMost(1) }
    catalog.syncWatchers()
    return catalog
  }

  get (path: string): Asset | undefined { return this.assets.get(path) }
  hasDir (path: string): boolean { return this.dirs.has(path) }
  get size (): number { return this.assets.size }
  get bytesInMemory (): number { return this.memoryUsed }

  /** Looks a path up on disk when the catalog does not know it yet (a file added while serving). */
  async find (path: string): Promise<Asset | undefined> {
    const known = this.assets.get(path)
    if (known !== undefined) return known
    const facts = await this.statInside(path)
    if (facts === undefined) return undefined
    if (facts.stats.isDirectory()) { this.dirs.add(path); this.syncWatchers(); return undefined }
    await this.refresh(path)
    return this.assets.get(path)
  }

  /** Re-reads the group a path belongs to (the file and its siblings) and swaps it in atomically. */
  refresh (path: string): Promise<void> {
    const base = originalName(path)
    const running = this.inflight.get(base)
    if (running === undefined) return this.startIndex(base)
    // A change during a re-index needs one more pass; every caller meanwhile shares that pass.
    let next = this.followUps.get(base)
    if (next === undefined) {
      next = running.catch(() => {}).then(() => { this.followUps.delete(base); return this.startIndex(base) })
      this.followUps.set(base, next)
    }
    return next
  }

  private startIndex (base: string): Promise<void> {
    const job = this.indexGroup(base).catch(err => this.unreadable(base, err)).finally(() => this.inflight.delete(base))
    this.inflight.set(base, job)
    return job
  }

  /** A file that cannot be read (permissions, vanished mid-read) is left out (404), not a failed start or a 500. */
  private unreadable (base: string, err: unknown): void {
    this.warnOnce(`unreadable:${base}`, { path: base, code: (err as NodeJS.ErrnoException).code }, 'cannot read a file; it is not served')
    this.swap(new Map([base, ...ENCODINGS.map(e => base + e.suffix)].map(p => [p, undefined])))
  }

  close (): void {
    this.closed = true
    for (const watcher of this.watchers.values()) watcher.close()
    this.watchers.clear()
    for (const timer of this.pending.values()) clearTimeout(timer)
    this.pending.clear()
  }

  private async build (): Promise<void> {
    this.rootReal = await realpath(this.opts.root)
    const files: FileFacts[] = []
    await this.walk('', files, new Set())
    this.admitted = admit(files, this.opts.memoryBudget)
    const bases = [...new Set(files.map(f => originalName(f.rel)))]
    for (let i = 0; i < bases.length; i += PARALLEL) {
      await Promise.all(bases.slice(i, i + PARALLEL).map(b => this.indexGroup(b).catch(err => this.unreadable(b, err))))
    }
    this.admitted = new Set()
  }

  private async walk (dir: string, out: FileFacts[], seen: Set<string>): Promise<void> {
    const abs = join(this.rootReal, dir)
    const real = await realpath(abs)
    if (seen.has(real)) return // a symlink cycle
    seen.add(real)
    let entries
    try { entries = await readdir(abs, { withFileTypes: true }) } catch (err) {
      this.warnOnce(`unreadable:${dir}`, { path: dir, code: (err as NodeJS.ErrnoException).code }, 'cannot list a directory; it is not served')
      return
    }
    this.dirs.add(dir)
    for (const entry of entries) {
      const rel = dir === '' ? entry.name : `${dir}/${entry.name}`
      if (this.hidden(rel)) continue
      const facts = await this.statInside(rel)
      if (facts === undefined) continue
      if (facts.stats.isDirectory()) await this.walk(rel, out, seen)
      else if (facts.stats.isFile()) out.push(facts)
    }
  }

  private hidden (rel: string): boolean {
    return this.opts.dotfiles === 'deny' && isHiddenPath(rel.split('/'))
  }

  /**
   * Stats a relative path, following symlinks only while the whole resolved path stays inside the
   * root (D14): a symlinked directory anywhere in the path is resolved too, not only the last part.
   */
  private async statInside (rel: string): Promise<FileFacts | undefined> {
    const abs = join(this.rootReal, ...rel.split('/'))
    try {
      const target = await realpath(abs)
      if (target !== this.rootReal && !target.startsWith(this.rootReal + sep)) {
        this.warnOnce(rel, { path: rel }, 'not serving a symlink that leads outside the root')
        return undefined
      }
      return { rel, abs: target, stats: await stat(target) }
    } catch {
      return undefined
    }
  }

  private async indexGroup (base: string): Promise<void> {
    const original = await this.statFile(base)
    const siblings = await Promise.all(ENCODINGS.map(e => this.statFile(base + e.suffix)))
    const loaded = new Map<string, Representation>()
    const load = async (facts: FileFacts, coding: Coding) => {
      const rep = await this.loadRep(facts, coding)
      loaded.set(facts.rel, rep)
      return rep
    }
    const next = new Map<string, Asset | undefined>()
    next.set(base, original === undefined ? undefined : await this.originalAsset(original, siblings, load))
    for (const [i, sib] of siblings.entries()) {
      const path = base + ENCODINGS[i]!.suffix
      if (sib === undefined) next.set(path, undefined)
      // `data.tar.gz` alone is an archive to download, not an encoding of data.tar: only web assets
      // (`game.wasm.br` without game.wasm, as Unity ships them) are answered with Content-Encoding.
      else if (original === undefined && !isCompressible(base)) next.set(path, await this.plainAsset(sib))
      else next.set(path, await this.directAsset(sib, ENCODINGS[i]!.token, loaded.get(path), original))
    }
    this.swap(next)
    const asset = next.get(base)
    if (asset !== undefined) this.opts.onIndexed?.(asset)
  }

  /**
   * Adds representations made on the fly (D4) to a file, if it still has the content they were made
   * from; they then behave exactly like precompressed siblings (D5–D7).
   */
  addEncodings (path: string, identityEtag: string, reps: Representation[]): boolean {
    const current = this.assets.get(path)
    if (current === undefined || current.identity.etag !== identityEtag) return false
    const encoded = [...current.reps.filter(r => r !== current.identity), ...reps]
      .sort((a, b) => this.opts.precompressed.indexOf(a.coding as EncodingToken) - this.opts.precompressed.indexOf(b.coding as EncodingToken))
      .map(r => ({ ...r }))
    const identity = { ...current.identity }
    const asset = this.finish({ path, type: current.type, reps: [...encoded, identity], identity, vary: true, lastModifiedMs: current.lastModifiedMs, decodedSize: identity.size })
    for (const rep of reps) if (rep.body !== null) this.memoryUsed += rep.body.length
    this.swap(new Map([[path, asset]]))
    return true
  }

  /** Whether `bytes` more may be held in memory. */
  fits (bytes: number): boolean { return this.memoryUsed + bytes <= this.opts.memoryBudget }

  private async statFile (rel: string): Promise<FileFacts | undefined> {
    if (this.hidden(rel)) return undefined
    const facts = await this.statInside(rel)
    return facts?.stats.isFile() === true ? facts : undefined
  }

  private async originalAsset (
    original: FileFacts,
    siblings: Array<FileFacts | undefined>,
    load: (f: FileFacts, c: Coding) => Promise<Representation>,
  ): Promise<Asset> {
    const type = contentTypeFor(original.rel)
    const reps: Representation[] = []
    for (const [i, sib] of siblings.entries()) {
      const enc = ENCODINGS[i]!
      if (sib === undefined || !this.opts.precompressed.includes(enc.token)) continue
      if (!(await this.usableSibling(original, sib, enc.token))) continue
      reps.push(await load(sib, enc.token))
    }
    reps.sort((a, b) => this.opts.precompressed.indexOf(a.coding as EncodingToken) - this.opts.precompressed.indexOf(b.coding as EncodingToken))
    const identity = await load(original, 'identity')
    reps.push(identity)
    const vary = reps.length > 1 || (this.opts.encodable?.(original.rel, identity.size) ?? false)
    return this.finish({ path: original.rel, type, reps, identity, vary, lastModifiedMs: original.stats.mtimeMs, decodedSize: identity.size })
  }

  private async plainAsset (file: FileFacts): Promise<Asset> {
    const rep = await this.loadRep(file, 'identity')
    return this.finish({ path: file.rel, type: contentTypeFor(file.rel), reps: [rep], identity: rep, vary: false, lastModifiedMs: file.stats.mtimeMs, rawType: contentTypeFor(file.rel) })
  }

  /** D3: a direct request for `x.wasm.br` gets x.wasm's type with Content-Encoding br when br is accepted, else the raw bytes. */
  private async directAsset (sib: FileFacts, token: EncodingToken, loadedRep: Representation | undefined, original: FileFacts | undefined): Promise<Asset> {
    const type = contentTypeFor(originalName(sib.rel))
    const encoded = { ...(loadedRep ?? await this.loadRep(sib, token)) }
    const raw: Representation = { ...encoded, coding: 'identity', etag: encoded.etag.replace(/"$/, '.raw"') }
    const usable = original !== undefined && await this.usableSibling(original, sib, token, true)
    // Without a usable original (a Unity build ships only x.wasm.br / .gz): the size gzip and zstd
    // record about themselves (gzip's is mod 4 GiB, exact for any module), so progress still ends at 100 % (D5).
    const decodedSize = usable ? original.stats.size : await recordedDecodedSize(sib.abs, sib.stats.size, token).catch(() => undefined)
    return this.finish({ path: sib.rel, type, reps: [encoded, raw], identity: raw, vary: true, lastModifiedMs: sib.stats.mtimeMs, decodedSize, rawType: 'application/octet-stream' })
  }

  private finish (a: { path: string, type: string, reps: Representation[], identity: Representation, vary: boolean, lastModifiedMs: number, decodedSize?: number, rawType?: string }): Asset {
    const policy = this.opts.policy(a.path, a.type)
    for (const rep of a.reps) {
      const isRaw = rep === a.identity
      Object.assign(rep, buildHeaders({ rep, type: isRaw ? (a.rawType ?? a.type) : a.type, decodedSize: isRaw ? undefined : a.decodedSize, vary: a.vary, lastModifiedMs: a.lastModifiedMs, policy: policy.headers }))
    }
    const compressible = a.rawType === undefined && isCompressible(a.path)
    return { path: a.path, reps: a.reps, codings: a.reps.map(r => r.coding), identity: a.identity, lastModifiedMs: a.lastModifiedMs, policy, isHtml: a.type.startsWith('text/html'), type: a.type, compressible }
  }

  /** D3: a sibling is served only when it is smaller, not older than its original, and (where cheaply known) decodes to its size. */
  private async usableSibling (original: FileFacts, sib: FileFacts, token: EncodingToken, quiet = false): Promise<boolean> {
    let reason: string | undefined
    if (sib.stats.size >= original.stats.size) reason = 'it is not smaller than the original'
    else if (sib.stats.mtimeMs + MTIME_TOLERANCE_MS < original.stats.mtimeMs) reason = 'it is older than the original'
    else {
      // Not a readable file of its format: never serve it as one.
      const decoded = await recordedDecodedSize(sib.abs, sib.stats.size, token).catch(() => -1)
      if (decoded === -1) reason = `it is not a readable ${token} file`
      else if (!decodesToSize(decoded, original.stats.size, token)) reason = `it decodes to ${String(decoded)} bytes, the original has ${original.stats.size}`
    }
    if (reason !== undefined && !quiet) this.warnOnce(`${sib.rel}:${sib.stats.mtimeMs}`, { sibling: sib.rel }, `ignoring precompressed sibling: ${reason}`)
    return reason === undefined
  }

  /**
   * Reads (or, beyond the memory budget, hashes by streaming) one file through one file handle, and
   * makes sure it did not change meanwhile. A file modified within the last QUIET_MS may still be
   * being written (a copy in place truncates first): wait until it has been quiet, so a half-written
   * file is not indexed while the previous entry can still be served.
   */
  private async loadRep (facts: FileFacts, coding: Coding, attempt = 0): Promise<Representation> {
    const fh = await open(facts.abs, 'r')
    let settled: { body: Buffer | null, hash: string, stats: Stats } | undefined
    try {
      const before = await fh.stat()
      const age = Date.now() - before.mtimeMs
      if (age >= 0 && age < QUIET_MS) await delay(QUIET_MS - age)
      const quiet = await fh.stat()
      if (sameFile(before, quiet)) {
        const inMemory = this.admitted.has(facts.rel) || (this.admitted.size === 0 && this.memoryUsed + quiet.size <= this.opts.memoryBudget)
        const body = inMemory ? await fh.readFile() : null
        const hash = body !== null ? await hashBufferAsync(body) : await hashHandle(fh, quiet.size)
        const after = await fh.stat()
        if (sameFile(quiet, after) && (body === null || body.length === after.size)) settled = { body, hash, stats: after }
      }
    } finally {
      await fh.close()
    }
    if (settled === undefined) {
      if (attempt >= 10) throw new Error(`${facts.rel} keeps changing; not indexed`)
      await delay(SETTLE_MS)
      return this.loadRep({ ...facts, stats: await stat(facts.abs) }, coding, attempt + 1)
    }
    const { body, hash, stats } = settled
    if (body !== null) this.memoryUsed += body.length
    return { coding, file: facts.abs, size: stats.size, mtimeMs: stats.mtimeMs, ino: stats.ino, etag: `"${hash}"`, body, headers: {}, notModified: {} }
  }

  /** Swaps a re-indexed group in; responses already under way keep the objects they hold. */
  private swap (next: Map<string, Asset | undefined>): void {
    const released = new Set<Buffer>()
    for (const [path, asset] of next) {
      for (const rep of this.assets.get(path)?.reps ?? []) if (rep.body !== null) released.add(rep.body)
      if (asset === undefined) this.assets.delete(path)
      else this.assets.set(path, asset)
    }
    for (const [, asset] of next) for (const rep of asset?.reps ?? []) if (rep.body !== null) released.delete(rep.body)
    for (const body of released) this.memoryUsed -= body.length
  }

  /**
   * One non-recursive watcher per directory. Node 20's recursive fs.watch on Linux follows each
   * file's inode and goes deaf to a file once it has been replaced by a rename (deploys do that),
   * while a directory watch reports every name that changes in it.
   */
  private syncWatchers (): void {
    if (!this.opts.watch || this.closed) return
    for (const [dir, watcher] of this.watchers) {
      if (!this.dirs.has(dir)) { watcher.close(); this.watchers.delete(dir) }
    }
    for (const dir of this.dirs) {
      if (this.watchers.has(dir)) continue
      try {
        const watcher = watch(join(this.rootReal, ...dir.split('/').filter(Boolean)), { persistent: false }, (_event, name) => {
          if (name !== null) this.schedule(dir === '' ? String(name) : `${dir}/${String(name)}`)
        })
        watcher.on('error', () => { watcher.close(); this.watchers.delete(dir) })
        this.watchers.set(dir, watcher)
      } catch (err) {
        this.warnOnce(`watch:${dir}`, { err, dir }, 'cannot watch a directory for changes; new files are still found on request')
      }
    }
  }

  /** Coalesces the burst of events one copy makes into one refresh per path. */
  private schedule (rel: string): void {
    clearTimeout(this.pending.get(rel))
    this.pending.set(rel, setTimeout(() => {
      this.pending.delete(rel)
      void this.onChange(rel).catch(err => this.opts.log.warn({ err, path: rel }, 'could not re-index a changed file'))
    }, SETTLE_MS))
  }

  private async onChange (rel: string): Promise<void> {
    if (this.hidden(rel)) return
    const facts = await this.statInside(rel)
    if (facts?.stats.isDirectory() === true) {
      const files: FileFacts[] = []
      await this.walk(rel, files, new Set())
      this.syncWatchers()
      for (const f of files) await this.refresh(f.rel)
      return
    }
    if (facts === undefined && this.dirs.has(rel)) { this.forgetDir(rel); this.syncWatchers(); return }
    await this.refresh(rel)
  }

  private forgetDir (rel: string): void {
    if (!this.dirs.has(rel)) return
    for (const d of [...this.dirs]) if (d === rel || d.startsWith(rel + '/')) this.dirs.delete(d)
    const gone = new Map<string, undefined>()
    for (const path of this.assets.keys()) if (path.startsWith(rel + '/')) gone.set(path, undefined)
    this.swap(gone)
  }

  private warnOnce (key: string, obj: object, msg: string): void {
    if (this.warned.has(key)) return
    this.warned.add(key)
    this.opts.log.warn(obj, msg)
  }
}

/** Chooses which files live in memory at start-up: smallest first, until the budget is spent. */
function admit (files: FileFacts[], budget: number): Set<string> {
  const chosen = new Set<string>()
  let used = 0
  for (const f of [...files].sort((a, b) => a.stats.size - b.stats.size)) {
    if (used + f.stats.size > budget) break
    used += f.stats.size
    chosen.add(f.rel)
  }
  return chosen
}

/** The same hash, a megabyte at a time with a turn of the event loop in between: for files re-indexed while serving. */
export async function hashBufferAsync (buf: Buffer): Promise<string> {
  const hash = createHash('sha256')
  for (let at = 0; at < buf.length; at += HASH_SLICE) {
    hash.update(buf.subarray(at, at + HASH_SLICE))
    if (at + HASH_SLICE < buf.length) await new Promise(resolve => setImmediate(resolve))
  }
  return digestOf(hash)
}
const HASH_SLICE = 1 << 20

/**
 * Read buffers for hashing files that stay on disk are reused: a fresh megabyte per file made RSS
 * grow by tens of MB over a large root (allocator churn), though the bytes were garbage at once.
 * One per parallel indexer while the root is walked; one afterwards (re-indexing a changed file),
 * since keeping eight held 8 MB for good.
 */
const hashBuffers = new BufferPool(HASH_SLICE, PARALLEL)

async function hashHandle (fh: FileHandle, size: number): Promise<string> {
  const hash = createHash('sha256')
  const chunk = hashBuffers.take()
  try {
    for (let position = 0; position < size;) {
      const { bytesRead } = await fh.read(chunk, 0, Math.min(chunk.length, size - position), position)
      if (bytesRead === 0) break
      hash.update(chunk.subarray(0, bytesRead))
      position += bytesRead
    }
  } finally {
    hashBuffers.give(chunk)
  }
  return digestOf(hash)
}

/** ETag of a file read a slice at a time (a cached encoding too large for memory). */
export async function hashFileQuiet (file: string): Promise<string> {
  const fh = await open(file, 'r')
  try { return `"${await hashHandle(fh, (await fh.stat()).size)}"` } finally { await fh.close() }
}

const sameFile = (a: Stats, b: Stats) => a.size === b.size && a.mtimeMs === b.mtimeMs && a.ino === b.ino

const delay = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))
