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
import { open, readdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import type { Catalog } from './catalog.js'
import { contentTypeFor } from './content-type.js'
import { BuiltDeltas } from './delta-files.js'
import { anyDictionarySupport, dictionarySupport, encodeDelta, parseAvailableDictionary, patternCovers, type DictionaryCoding } from './dictionary.js'
import { hashHandle, sha256Async, tagOf } from './etag.js'
import { representation } from './headers.js'
import { parseAcceptEncoding } from './negotiate.js'
import type { Asset, FilePolicy, Logger } from './types.js'

export interface DeltaOptions {
  catalog: Catalog
  /** Absolute directories of earlier releases. */
  dirs: readonly string[]
  /** URL prefix files are served under. */
  prefix: string
  policy: (path: string, type: string, size?: number) => FilePolicy
  /** Bytes of deltas kept in memory. */
  maxBytes: number
  log: Logger
}

interface Dictionary {
  /** Root-relative path: the URL it was served at (its release's). */
  path: string
  /** The match pattern it was announced with. */
  pattern: string
  /** Where its bytes are: a file of a `dictionaries` directory, or undefined for a catalog asset. */
  file?: string
}

/** Larger modules are not delta-encoded on the fly (time and memory); precompress them instead. */
const MAX_DELTA_INPUT = 128 * 1024 * 1024
const CODINGS: DictionaryCoding[] = ['dcz', 'dcb']
/** Requests that found no delta, remembered at most: any client can name any hash. */
const MAX_USELESS = 10_000

export class Deltas {
  /** Dictionaries by SHA-256 (base64): catalog assets (checked against the catalog when used) and older releases. */
  private readonly known = new Map<string, Dictionary>()
  /** Assets with a delta representation first, by keyFor; least recently used first. */
  private readonly made = new Map<string, { asset: Asset, bytes: number }>()
  private readonly making = new Set<string>()
  private readonly useless = new Set<string>()
  /** Build-time deltas being read for modules just indexed. */
  private readonly scanning = new Set<Promise<void>>()
  private readonly built: BuiltDeltas
  private bytes = 0

  /** Listens to the catalog from now on: create it before the catalog loads. */
  constructor (private readonly opts: DeltaOptions) {
    this.built = new BuiltDeltas(opts.catalog.root, (obj, msg) => opts.log.warn(obj, msg))
    opts.catalog.subscribe(asset => this.remember(asset))
  }

  /** Whether this Node can make deltas at all (zstd or brotli with a raw dictionary). */
  static get supported (): boolean { return anyDictionarySupport }

  /**
   * Hashes the modules of the `dictionaries` directories, and waits for the build-time deltas found
   * while the catalog loaded: once it resolves, the first request naming their dictionary gets one.
   */
  async ready (): Promise<void> {
    for (const dir of this.opts.dirs) await this.indexRelease(dir)
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
    const keyOf = (coding: DictionaryCoding) => keyFor(asset, name, coding)
    for (const coding of codings) {
      const ready = this.made.get(keyOf(coding))
      if (ready === undefined) continue
      this.made.delete(keyOf(coding))
      this.made.set(keyOf(coding), ready)
      return ready.asset
    }
    const coding = codings[0]!
    const key = keyOf(coding)
    if (!this.making.has(key) && !this.useless.has(key)) void this.make({ key, asset, hash, dictionary: this.heldFor(name, asset), coding })
    return undefined
  }

  /** Resolves when no delta is being made or read (tests). */
  async idle (): Promise<void> {
    while (this.making.size > 0 || this.scanning.size > 0) await new Promise(resolve => setTimeout(resolve, 10))
  }

  private codingsFor (acceptEncoding: string | undefined): DictionaryCoding[] {
    if (acceptEncoding === undefined) return []
    const q = parseAcceptEncoding(acceptEncoding)
    return CODINGS.filter(c => dictionarySupport[c] && (q.get(c) ?? 0) > 0)
  }

  /** A dictionary held here whose pattern covers the asset's URL: a delta against it can be made on the fly. */
  private heldFor (name: string, asset: Asset): Dictionary | undefined {
    const dictionary = this.known.get(name)
    return dictionary !== undefined && patternCovers(dictionary.pattern, `${this.opts.prefix}/${asset.path}`) ? dictionary : undefined
  }

  /** A module indexed in the root is a dictionary for the URLs its announced pattern covers. */
  private remember (asset: Asset): void {
    const announced = asset.policy.headers['use-as-dictionary']
    if (announced === undefined) return
    const scan = this.findBuilt(asset).finally(() => this.scanning.delete(scan))
    this.scanning.add(scan)
    const sha256 = asset.identity.sha256
    if (sha256 !== undefined) this.known.set(sha256.toString('base64'), { path: asset.path, pattern: patternOf(announced) })
  }

  /** Every module of an earlier release: hashed once at start-up, read again only to make a delta. */
  private async indexRelease (dir: string): Promise<void> {
    for (const rel of await filesUnder(dir)) {
      const size = (await stat(join(dir, ...rel.split('/'))).catch(() => undefined))?.size
      if (size === undefined) continue
      const policy = this.opts.policy(rel, contentTypeFor(rel), size)
      const announced = policy.headers['use-as-dictionary']
      if (announced === undefined) continue
      const file = join(dir, ...rel.split('/'))
      try {
        const fh = await open(file, 'r')
        try {
          const sha256 = await hashHandle(fh, (await fh.stat()).size)
          this.known.set(sha256.toString('base64'), { path: rel, pattern: patternOf(announced), file })
        } finally { await fh.close() }
      } catch (err) {
        this.opts.log.warn({ file, code: (err as NodeJS.ErrnoException).code }, 'cannot read a file of an earlier release; it is not used as a dictionary')
      }
    }
  }

  /**
   * The delta for one request's key: the build-time one when there is a usable one, else made on the
   * fly against a dictionary held here; none (the ordinary negotiation from then on) otherwise.
   */
  private async make (job: { key: string, asset: Asset, hash: Buffer, dictionary: Dictionary | undefined, coding: DictionaryCoding }): Promise<void> {
    const { key, asset, hash, coding } = job
    this.making.add(key)
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
    const [target, dictionary] = await Promise.all([this.bytesOf(asset), this.dictionaryBytes(input.dictionary, input.hash)])
    if (target === undefined || dictionary === undefined) return undefined
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

  /** The dictionary's bytes, only while they still hash to the name the browser sent. */
  private async dictionaryBytes (dictionary: Dictionary, hash: Buffer): Promise<Buffer | undefined> {
    let bytes: Buffer | undefined
    if (dictionary.file === undefined) {
      const asset = this.opts.catalog.get(dictionary.path)
      if (asset?.identity.sha256?.equals(hash) !== true) return this.forget(hash)
      bytes = asset.identity.body ?? await readFile(asset.identity.file).catch(() => undefined)
    } else {
      const size = (await stat(dictionary.file).catch(() => undefined))?.size
      bytes = size === undefined || size > MAX_DELTA_INPUT ? undefined : await readFile(dictionary.file).catch(() => undefined)
    }
    if (bytes === undefined || !(await sha256Async(bytes)).equals(hash)) return this.forget(hash)
    return bytes
  }

  private forget (hash: Buffer): undefined {
    this.known.delete(hash.toString('base64'))
    return undefined
  }
}

/**
 * A delta is kept per module (its path: two URLs of the same bytes have their own headers and
 * patterns), content, dictionary (its hash in base64) and coding.
 */
const keyFor = (asset: Asset, dictionary: string, coding: DictionaryCoding) => `${asset.path}|${asset.identity.etag}|${dictionary}|${coding}`

/** The pattern inside an announced `match="…"` (an sf-string, unescaped). */
function patternOf (announced: string): string {
  const m = /match="((?:[^"\\]|\\.)*)"/.exec(announced)
  return (m?.[1] ?? '').replace(/\\(.)/g, '$1')
}

/** Root-relative paths of the regular files below `dir`, dotfiles left out. */
async function filesUnder (dir: string, rel = ''): Promise<string[]> {
  const entries = await readdir(join(dir, rel), { withFileTypes: true }).catch(() => [])
  const out: string[] = []
  for (const e of entries) {
    if (e.name.startsWith('.')) continue
    const path = rel === '' ? e.name : `${rel}/${e.name}`
    if (e.isDirectory()) out.push(...await filesUnder(dir, path))
    else if (e.isFile()) out.push(path)
  }
  return out
}
