/**
 * On-the-fly compression (D4 in docs/delivery.md): a compressible file without precompressed siblings is encoded
 * by the server once, at the densest settings, off the event loop (zlib's async API runs on libuv's
 * thread pool), one file at a time so the pool keeps threads free for file reads. Until that is done
 * the file goes out as identity. The results join the catalog as representations exactly like
 * siblings (Content-Length, X-Decoded-Content-Length, their own ETag, Vary). They are kept in memory
 * within the budget and in a cache directory outside the root (cache-dir.ts), keyed by the content
 * hash, so a restart reuses them and a changed file never gets a stale encoding.
 *
 * Files under node_modules/ (and the like: DEPENDENCY_DIRS) wait for their first request instead: a `wasm-serve .` in a project root
 * would otherwise spend its first minutes encoding tens of thousands of dependency files nobody asks
 * for (measured in docs/memory.md: 10,417 of them in 30 s on this repository's dependencies).
 *
 * With `--workers N` (src/workers.ts) N processes serve one root; each would encode every file.
 * An EncodingShare makes one of them the encoder and the others followers: a follower reads the
 * encodings from the cache directory (which all share) instead of making them, and reads again when
 * the encoder says it made one. Without a usable cache directory there is nothing to share through,
 * and a follower encodes for itself, as a single process does.
 */
import { readFile } from 'node:fs/promises'
import { CacheDir } from './cache-dir.js'
import type { Catalog } from './catalog.js'
import { encodeAbortable, encodeFile, isCompressible, zstdAvailable, type Level } from './codecs.js'
import type { EncodingToken } from './encodings.js'
import { etagOfFile, hashBufferAsync } from './etag.js'
import { stampOf } from './file-identity.js'
import type { Asset, Loaded, Logger } from './types.js'
import { isTransient } from './transient.js'
import { isBeingSent } from './file-body.js'

/** Above this size brotli runs at quality 9 instead of 11 (see codecs.ts); precompress big modules at build time. */
const DENSE_ABOVE = 8 * 1024 * 1024
/** Headroom in the memory budget that brotli or zstd needs before the server runs them on the fly. */
const ENCODER_WORKING_MEMORY = 32 * 1024 * 1024

interface Encodable {
  tokens: readonly EncodingToken[]
  minSize: number
}

/**
 * Where projects keep what they depend on or build from, not what they publish: npm's and Bower's
 * packages, Cargo's and Maven's `target/`, Python's virtual environments and bytecode caches.
 */
const DEPENDENCY_DIRS = new Set(['node_modules', 'bower_components', 'jspm_packages', 'target', 'venv', '__pycache__', 'site-packages'])

/** A dependency, not an asset: a path through one of DEPENDENCY_DIRS. */
export const isDependency = (path: string): boolean => path.split('/').slice(0, -1).some(segment => DEPENDENCY_DIRS.has(segment))

/** The encodings this Node can make of `tokens` (zstd needs Node 22.15+). */
const makeable = (tokens: readonly EncodingToken[]) => tokens.filter(t => t !== 'zstd' || zstdAvailable)

/**
 * Whether a file can get encodings made here: of a compressible kind, big enough to shrink, and a
 * codec to make them. The catalog asks it to decide Vary (D7) before any encoding exists.
 */
export function encodable (opts: Encodable): (path: string, size: number) => boolean {
  const can = makeable(opts.tokens).length > 0
  return (path, size) => can && size >= opts.minSize && isCompressible(path)
}

/** What the cache names an original's encodings by: its content hash (its identity ETag, unquoted). */
const keyOf = (asset: Asset): string => asset.identity.etag.replaceAll('"', '')

/**
 * How processes serving one root share their encodings (src/workers.ts implements it over cluster IPC).
 * One is the encoder: it makes every encoding and manages the cache directory (marks used, evicts).
 * The others follow: they read the directory only, so they never move the ctime of a file the encoder
 * streams from (file-identity.ts) nor evict one it holds.
 */
export interface EncodingShare {
  encoder: boolean
  /** The encoder made encodings of `path` (whose identity ETag is `etag`): the others read them. */
  made: (path: string, etag: string) => void
  /** A follower had a request for a deferred file (isDependency): the encoder makes its encodings now. */
  request: (path: string) => void
  /** What the other processes say: `made` reaches followers, `requested` the encoder. */
  listen: (listener: { made: (path: string, etag: string) => void, requested: (path: string) => void }) => void
}

export interface OnTheFlyOptions extends Encodable {
  /** Absolute cache directory (already checked to be outside the root), or null for memory only. */
  cacheDir: string | null
  /** Bytes the cache directory may hold (least recently used files are evicted beyond it). */
  cacheMaxSize: number
  log: Logger
  /** Set when other processes serve the same root (--workers). */
  share?: EncodingShare
}

export class OnTheFly {
  private readonly queue = new Map<string, Asset>()
  /** Files encoded on their first request rather than in the background (isDependency). */
  private readonly deferred = new Map<string, Asset>()
  private readonly useless = new Set<string>()
  private running: Promise<void> | undefined
  private closed = false
  /** Encoding waits until the root is indexed: start-up has the thread pool to itself. */
  private started = false
  private readonly abort = new AbortController()
  private readonly cacheReady: Promise<CacheDir | null>
  private readonly tokens: EncodingToken[]
  private readonly wants: (path: string, size: number) => boolean
  /** A follower with a usable cache directory: encodings are read from it, never made here. */
  private follows = false
  /** Encodings made here (not read back from the cache). */
  private made = 0

  /** Listens to `catalog` for every file indexed, from now on. */
  constructor (private readonly catalog: Catalog, private readonly opts: OnTheFlyOptions) {
    const { cacheDir, cacheMaxSize: maxSize, log, share } = opts
    const follower = share?.encoder === false
    this.cacheReady = cacheDir === null
      ? Promise.resolve(null)
      : CacheDir.open({ dir: cacheDir, maxSize, log, readOnly: follower, inUse: (file, assets) => this.streamedFrom(file, assets) })
    if (follower) void this.cacheReady.then(cache => { this.follows = cache !== null })
    share?.listen({ made: (path, etag) => this.adopt(path, etag), requested: path => this.requestedPath(path) })
    this.tokens = makeable(opts.tokens)
    this.wants = encodable(opts)
    catalog.subscribe(asset => this.schedule(asset))
    // The first pass runs even with nothing to encode: it prunes a cache dir over a lowered cap.
    void catalog.loaded.then(() => { this.started = true; this.kick(true) })
  }

  private schedule (asset: Asset): void {
    if (this.closed || !asset.compressible || !this.wants(asset.path, asset.identity.size)) return
    if (this.missing(asset).length === 0) return
    if (isDependency(asset.path)) {
      this.deferred.set(asset.path, asset)
      return
    }
    this.queue.set(asset.path, asset)
    this.kick()
  }

  /** A request for `asset`: a deferred file joins the queue now (this response goes out as identity). */
  requested (asset: Asset): void {
    const waiting = this.deferred.get(asset.path)
    if (waiting === undefined || this.closed) return
    this.deferred.delete(asset.path)
    this.queue.set(asset.path, waiting)
    this.kick()
    // A follower only finds what the encoder has made: the encoder is asked to make it.
    if (this.opts.share?.encoder === false) this.opts.share.request(asset.path)
  }

  /** The encoder: a follower had a request for a deferred file. */
  private requestedPath (path: string): void {
    const waiting = this.deferred.get(path)
    if (waiting !== undefined) this.requested(waiting)
  }

  /** A follower: the encoder made encodings of this file; they are read from the cache directory. */
  private adopt (path: string, etag: string): void {
    const asset = this.catalog.get(path)
    if (this.closed || asset === undefined || asset.identity.etag !== etag) return
    this.deferred.delete(path)
    this.queue.set(path, asset)
    this.kick()
  }

  /** Resolves when the queue is empty (tests and benchmarks wait on it). */
  async idle (): Promise<void> {
    while (this.running !== undefined) await this.running
  }

  close (): void {
    this.closed = true
    this.queue.clear()
    this.deferred.clear()
    this.abort.abort()
    void this.cacheReady.then(cache => cache?.close())
  }

  /** Whether the catalog streams `file` from disk for one of `assets` just now (D4: never evicted then). */
  private streamedFrom (file: string, assets: ReadonlySet<string>): boolean {
    // A response under way may stream a file the catalog has already let go of (a re-index in between).
    if (isBeingSent(file)) return true
    for (const path of assets) {
      if (this.catalog.get(path)?.reps.some(rep => rep.file === file && rep.body === null) === true) return true
    }
    return false
  }

  private missing (asset: Asset): EncodingToken[] {
    return this.tokens.filter(t => !asset.codings.includes(t) && !this.useless.has(`${asset.identity.etag}:${t}`))
  }

  private kick (first = false): void {
    if (!this.started || this.running !== undefined || (this.queue.size === 0 && !first)) return
    this.running = this.drain(first).finally(() => { this.running = undefined; if (!this.closed) this.kick() })
  }

  private async drain (first: boolean): Promise<void> {
    const cache = await this.cacheReady
    // Every file of the root is in the queue now: what it will read back from the cache counts as
    // more recently used than what it will not (encodings of files since changed or removed).
    if (first) cache?.promote(new Set([...this.queue.values()].map(keyOf)))
    for (const [path, asset] of this.queue) {
      this.queue.delete(path)
      if (this.closed) return
      try {
        await this.encodeAsset(asset)
      } catch (err) {
        if (this.closed) return
        // Out of descriptors it fails for every file at once: the catalog already says so, every 10 s.
        if (isTransient(err)) this.opts.log.debug({ err, path }, 'on-the-fly compression failed for now; the file is served as identity')
        else this.opts.log.warn({ err, path }, 'on-the-fly compression failed; the file is served as identity')
      }
      // After the new encodings joined the catalog, so those it streams from disk are kept.
      await cache?.prune()
    }
    if (!this.closed) await cache?.prune()
  }

  private async encodeAsset (asset: Asset): Promise<void> {
    const key = keyOf(asset)
    const started = performance.now()
    const madeBefore = this.made
    const reps: Loaded[] = []
    for (const token of this.missing(asset)) {
      const rep = asset.identity.body !== null
        ? await this.fromMemory({ name: `${key}.${token}`, token, asset })
        : await this.fromDisk({ key, token, asset })
      if (rep === 'changed') return // changed on disk since it was indexed: its re-index schedules it again
      if (rep === 'later') continue // a follower: not made yet; the encoder says when it is
      if (rep === undefined) this.useless.add(`${asset.identity.etag}:${token}`)
      else reps.push(rep)
    }
    if (reps.length === 0 || !this.catalog.addEncodings(asset.path, asset.identity.etag, reps)) return
    const encodings = reps.map(r => `${r.coding} ${r.size}`)
    if (this.follows) {
      this.opts.log.debug({ path: asset.path, encodings }, 'encodings read from the cache directory (made by another worker)')
      return
    }
    this.opts.log.info({ path: asset.path, encodings, ms: Math.round(performance.now() - started) }, 'compressed on the fly')
    if (this.made > madeBefore) this.opts.share?.made(asset.path, asset.identity.etag)
  }

  private level (size: number): Level { return size > DENSE_ABOVE ? 'dense' : 'max' }

  /** A file held in memory: encode the buffer, keep the result in memory if it fits, and in the cache dir. */
  private async fromMemory (input: { name: string, token: EncodingToken, asset: Asset }): Promise<Loaded | 'later' | undefined> {
    const { name, token, asset } = input
    const bytes = asset.identity.body!
    const cache = await this.cacheReady
    const hit = cache === null ? undefined : await cache.read(name, asset.path)
    let out = hit?.bytes
    let onDisk = hit?.stats
    if (out === undefined && this.follows) return 'later'
    if (out === undefined) {
      // The encoder's working memory is charged to the budget too (measured: brotli over a root that
      // fills a 64 MB budget added ~35 MB of RSS): without headroom only gzip is made here.
      if (token !== 'gzip' && !this.catalog.fits(ENCODER_WORKING_MEMORY)) return undefined
      out = await encodeAbortable(bytes, token, this.level(bytes.length), this.abort.signal)
      this.made++
      if (out.length >= bytes.length) return undefined // would not be smaller (D4, like siblings in D3)
      onDisk = await cache?.write(name, out, asset.path)
    }
    const inMemory = this.catalog.fits(out.length)
    if (!inMemory && onDisk === undefined) return undefined
    return { coding: token, file: onDisk === undefined ? '' : cache!.path(name), size: out.length, stamp: onDisk === undefined ? null : stampOf(onDisk), etag: `"${await hashBufferAsync(out)}"`, body: inMemory ? out : null }
  }

  /**
   * A file beyond the memory budget: stream it from disk through the encoder into the cache dir, so
   * neither the file nor its encoding is ever whole in memory. Only gzip is made here: brotli and
   * zstd at their dense settings need 60–120 MB of working memory on a large module, which would
   * break the budget the user set (an encoding already in the cache is used whatever its kind).
   * Precompress such files with `wasm-serve compress` for br and zstd. Without a cache dir: nothing.
   */
  private async fromDisk (input: { key: string, token: EncodingToken, asset: Asset }): Promise<Loaded | 'changed' | 'later' | undefined> {
    const { key, token, asset } = input
    const cache = await this.cacheReady
    if (cache === null) return undefined
    const name = `${key}.${token}`
    const file = cache.path(name)
    let cached = await cache.lookup(name, asset.path)
    let etag: string | undefined
    if (cached === undefined && this.follows) return 'later'
    if (cached === undefined && token !== 'gzip') return undefined
    if (cached === undefined) {
      const result = await encodeFile({ src: asset.identity.file, dest: file, size: asset.identity.size, token, level: this.level(asset.identity.size), signal: this.abort.signal })
      this.made++
      if (result.inputHash !== key) { await cache.discard(name); return 'changed' }
      if (result.size >= asset.identity.size) { await cache.discard(name); return undefined }
      etag = `"${result.outputHash}"`
      cached = await cache.added(name, asset.path)
    }
    const body = this.catalog.fits(cached.size) ? await readFile(file) : null
    if (etag === undefined) etag = body !== null ? `"${await hashBufferAsync(body)}"` : await etagOfFile(file)
    return { coding: token, file, size: cached.size, stamp: stampOf(cached), etag, body }
  }
}
