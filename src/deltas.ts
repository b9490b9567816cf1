/**
 * Delta updates (RFC 9842; docs/delivery.md, "Delta updates"): which dictionaries the server holds,
 * and the deltas made against them. A dictionary is the exact bytes of a module a browser stored
 * earlier, named by their SHA-256: a file still in the root (a deploy that keeps the previous
 * release's hashed files), or a file of a `dictionaries` directory (earlier releases shipped beside
 * the new one, read but never served). A request that names one it holds, for a URL that
 * dictionary's match pattern covers, gets the module compressed against it once the delta is made
 * (off the event loop, once, kept in memory); until then, and for anything else, the ordinary
 * negotiation. A dictionary whose bytes no longer hash to their name is never used.
 * A delta `wasm-serve compress --dictionary-from` wrote next to the module (delta-files.ts) is used
 * instead of making one, from the first request: it is read when the module is indexed, whether or not
 * the server holds the dictionary itself (its header names the whole hash the browser sent).
 */
import type { FastifyRequest } from 'fastify'
import { readFile } from 'node:fs/promises'
import type { Catalog } from './catalog.js'
import { BuiltDeltas } from './delta-files.js'
import { anyDictionarySupport, dictionarySupport, encodeDelta, parseAvailableDictionary, type DictionaryCoding } from './dictionary.js'
import { DictionaryIndex, MAX_DELTA_INPUT, type Dictionary } from './dictionary-index.js'
import { sha256Async, tagOf } from './etag.js'
import { representation } from './headers.js'
import { acceptedCodings } from './negotiate.js'
import type { PolicyOf } from './policy.js'
import type { Asset, Logger } from './types.js'

export interface DeltaOptions {
  catalog: Catalog
  /** Absolute directories of earlier releases. */
  dirs: readonly string[]
  /** URL prefix files are served under. */
  prefix: string
  policy: PolicyOf
  /** Bytes of deltas kept in memory. */
  maxBytes: number
  log: Logger
}

const CODINGS: DictionaryCoding[] = ['dcz', 'dcb']
/** What zstd level 12 or brotli needs beyond its inputs, held free in the memory budget before it runs. */
const ENCODER_WORKING_MEMORY = 32 * 1024 * 1024
const SUPPORTED = CODINGS.filter(c => dictionarySupport[c])
/** Requests that found no delta, remembered at most: any client can name any hash. */
const MAX_USELESS = 10_000

export class Deltas {
  private readonly dictionaries: DictionaryIndex
  /** Assets with a delta representation first, by keyFor; least recently used first. */
  private readonly made = new Map<string, { asset: Asset, bytes: number }>()
  private readonly making = new Set<string>()
  private readonly useless = new Set<string>()
  /** Build-time deltas being read for modules just indexed. */
  private readonly scanning = new Set<Promise<void>>()
  private readonly built: BuiltDeltas
  private bytes = 0
  private queue: Promise<void> = Promise.resolve()

  /** Listens to the catalog from now on: create it before the catalog loads. */
  constructor (private readonly opts: DeltaOptions) {
    this.built = new BuiltDeltas(opts.catalog.root, (obj, msg) => opts.log.warn(obj, msg))
    this.dictionaries = new DictionaryIndex(opts)
    opts.catalog.subscribe(asset => this.remember(asset))
  }

  /** Whether this Node can make deltas at all (zstd or brotli with a raw dictionary). */
  static get supported (): boolean { return anyDictionarySupport }

  /**
   * Hashes the modules of the `dictionaries` directories, and waits for the build-time deltas found
   * while the catalog loaded: once it resolves, the first request naming their dictionary gets one.
   */
  async ready (): Promise<void> {
    for (const dir of this.opts.dirs) await this.dictionaries.indexRelease(dir)
    while (this.scanning.size > 0) await Promise.all(this.scanning)
  }

  /**
   * The asset to answer with: `asset` with a delta first when the request names a dictionary held
   * for this URL and the delta is made (it is then started for the next request), else undefined.
   */
  answerFor (request: FastifyRequest, asset: Asset): Asset | undefined {
    const header = request.headers['available-dictionary']
    if (header === undefined || asset.policy.headers['use-as-dictionary'] === undefined || request.headers.range !== undefined) return undefined
    const hash = parseAvailableDictionary(header)
    const codings = this.codingsFor(request.headers['accept-encoding'])
    if (hash === undefined || codings.length === 0) return undefined
    const name = hash.toString('base64')
    for (const coding of codings) {
      const key = keyFor(asset, name, coding)
      const ready = this.made.get(key)
      if (ready === undefined) continue
      this.made.delete(key)
      this.made.set(key, ready)
      return ready.asset
    }
    // Build-time deltas are read when their module is indexed: only a dictionary held here can give
    // a new one, so a client naming random hashes costs a map look-up, never the disk.
    const dictionary = this.dictionaries.heldFor(name, asset)
    const key = keyFor(asset, name, codings[0]!)
    if (dictionary !== undefined && !this.making.has(key) && !this.useless.has(key)) this.enqueue({ key, asset, hash, dictionary, coding: codings[0]! })
    return undefined
  }

  /**
   * Deltas are made one at a time, as on-the-fly encodings are (D4): each holds a module and a
   * dictionary whole and keeps a thread of libuv's pool busy, which file reads need too.
   */
  private enqueue (job: { key: string, asset: Asset, hash: Buffer, dictionary: Dictionary, coding: DictionaryCoding }): void {
    this.making.add(job.key)
    this.queue = this.queue.then(() => this.make(job))
  }

  /** Resolves when no delta is being made or read (tests). */
  async idle (): Promise<void> {
    while (this.making.size > 0 || this.scanning.size > 0) await new Promise(resolve => setTimeout(resolve, 10))
  }

  private codingsFor (acceptEncoding: string | undefined): DictionaryCoding[] {
    return acceptEncoding === undefined ? [] : acceptedCodings(acceptEncoding, SUPPORTED) as DictionaryCoding[]
  }

  /** A module indexed in the root: a dictionary, and maybe the target of build-time deltas. */
  private remember (asset: Asset): void {
    const announced = asset.policy.headers['use-as-dictionary']
    if (announced === undefined) return
    // Deltas of what this path held before are never asked for again (their key names its old content).
    for (const [key, entry] of this.made) {
      if (entry.asset.path === asset.path && entry.asset.identity.etag !== asset.identity.etag) { this.made.delete(key); this.bytes -= entry.bytes }
    }
    const scan = this.findBuilt(asset).finally(() => this.scanning.delete(scan))
    this.scanning.add(scan)
    this.dictionaries.remember(asset, announced)
  }

  /**
   * The delta for one request's key: the build-time one when there is a usable one, else made on the
   * fly against a dictionary held here; none (the ordinary negotiation from then on) otherwise.
   */
  private async make (job: { key: string, asset: Asset, hash: Buffer, dictionary: Dictionary | undefined, coding: DictionaryCoding }): Promise<void> {
    const { key, asset, hash, coding } = job
    const started = performance.now()
    try {
      const built = await this.built.find(asset, hash, coding)
      if (built !== undefined && await this.keepDelta(asset, coding, built.body, key)) return
      const body = job.dictionary === undefined ? undefined : await this.encode(asset, { dictionary: job.dictionary, hash, coding })
      if (body === undefined || !(await this.keepDelta(asset, coding, body, key))) return this.noDelta(key)
      this.opts.log.info({ path: asset.path, dictionary: job.dictionary!.path, coding, bytes: body.length, ms: Math.round(performance.now() - started) }, 'delta made')
    } catch (err) {
      this.noDelta(key)
      this.opts.log.warn({ err, path: asset.path }, 'could not make a delta; the module is served as usual')
    } finally {
      this.making.delete(key)
    }
  }

  private async encode (asset: Asset, input: { dictionary: Dictionary, hash: Buffer, coding: DictionaryCoding }): Promise<Buffer | undefined> {
    const [target, dictionary] = await Promise.all([this.bytesOf(asset), this.dictionaries.bytes(input.dictionary, input.hash)])
    if (target === undefined || dictionary === undefined) return undefined
    // The encoder's working memory comes on top of both inputs: without that headroom in the budget, none.
    if (!this.opts.catalog.fits(target.length + dictionary.length + ENCODER_WORKING_MEMORY)) return undefined
    return encodeDelta({ target, dictionary, dictionaryHash: input.hash, coding: input.coding, level: 'fast' })
  }

  /** Keeps `asset` with the delta first, when the delta is smaller than every other representation. */
  private async keepDelta (asset: Asset, coding: DictionaryCoding, body: Buffer, key: string): Promise<boolean> {
    if (body.length >= Math.min(...asset.reps.map(r => r.size))) return false
    const delta = representation({ coding, file: '', size: body.length, stamp: null, etag: `"${tagOf(await sha256Async(body))}"`, body }, { type: asset.type, decodedSize: asset.identity.size, vary: true, lastModifiedMs: asset.lastModifiedMs, policy: asset.policy.headers })
    this.keep(key, { ...asset, reps: [delta, ...asset.reps], codings: [coding, ...asset.codings] }, body.length)
    return true
  }

  private noDelta (key: string): void {
    if (this.useless.size >= MAX_USELESS) this.useless.clear()
    this.useless.add(key)
  }

  /** The build-time deltas next to a module just indexed, read now so that the first request gets one. */
  private async findBuilt (asset: Asset): Promise<void> {
    try {
      for (const { hash, coding, body } of await this.built.allFor(asset, CODINGS.filter(c => dictionarySupport[c]))) {
        const key = keyFor(asset, hash.toString('base64'), coding)
        if (!this.made.has(key)) await this.keepDelta(asset, coding, body, key)
      }
    } catch (err) {
      this.opts.log.warn({ err, path: asset.path }, 'could not read the build-time deltas of a module; they are not used')
    }
  }

  private keep (key: string, asset: Asset, bytes: number): void {
    const previous = this.made.get(key)
    if (previous !== undefined) { this.made.delete(key); this.bytes -= previous.bytes }
    this.made.set(key, { asset, bytes })
    this.bytes += bytes
    for (const [old, entry] of this.made) {
      if (this.bytes <= this.opts.maxBytes || old === key) break
      this.made.delete(old)
      this.bytes -= entry.bytes
    }
  }

  private async bytesOf (asset: Asset): Promise<Buffer | undefined> {
    if (asset.identity.size > MAX_DELTA_INPUT) return undefined
    if (asset.identity.body !== null) return asset.identity.body
    const bytes = await readFile(asset.identity.file).catch(() => undefined)
    return bytes !== undefined && `"${tagOf(await sha256Async(bytes))}"` === asset.identity.etag ? bytes : undefined
  }
}

/**
 * A delta is kept per module (its path: two URLs of the same bytes have their own headers and
 * patterns), content, dictionary (its hash in base64) and coding.
 */
const keyFor = (asset: Asset, dictionary: string, coding: DictionaryCoding) => `${asset.path}|${asset.identity.etag}|${dictionary}|${coding}`
