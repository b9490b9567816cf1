/**
 * Delta updates (RFC 9842; docs/delivery.md, "Delta updates"): which dictionaries the server holds,
 * and the deltas made against them. A dictionary is the exact bytes of a module a browser stored
 * earlier, named by their SHA-256: a file still in the root (a deploy that keeps the previous
 * release's hashed files), or a file of a `dictionaries` directory (earlier releases shipped beside
 * the new one, read but never served). A request that names one it holds, for a URL that
 * dictionary's match pattern covers, gets the module compressed against it once the delta is made
 * (off the event loop, once, kept in memory); until then, and for anything else, the ordinary
 * negotiation. A dictionary whose bytes no longer hash to their name is never used.
 */
import type { FastifyRequest } from 'fastify'
import { open, readdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import type { Catalog } from './catalog.js'
import { contentTypeFor } from './content-type.js'
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

export class Deltas {
  /** Dictionaries by SHA-256 (base64): catalog assets (checked against the catalog when used) and older releases. */
  private readonly known = new Map<string, Dictionary>()
  /** Assets with a delta representation first, by target ETag, dictionary and coding; least recently used first. */
  private readonly made = new Map<string, { asset: Asset, bytes: number }>()
  private readonly making = new Set<string>()
  private readonly useless = new Set<string>()
  private bytes = 0

  /** Listens to the catalog from now on: create it before the catalog loads. */
  constructor (private readonly opts: DeltaOptions) {
    opts.catalog.subscribe(asset => this.remember(asset))
  }

  /** Whether this Node can make deltas at all (zstd or brotli with a raw dictionary). */
  static get supported (): boolean { return anyDictionarySupport }

  /** Hashes the modules of the `dictionaries` directories. */
  async indexReleases (): Promise<void> {
    for (const dir of this.opts.dirs) await this.indexRelease(dir)
  }

  /**
   * The asset to answer with: `asset` with a delta first when the request names a dictionary held
   * for this URL and the delta is made (it is then started for the next request), else undefined.
   */
  answerFor (request: FastifyRequest, asset: Asset): Asset | undefined {
    const header = request.headers['available-dictionary']
    if (header === undefined || asset.policy.headers['use-as-dictionary'] === undefined || request.headers.range !== undefined) return undefined
    const hash = parseAvailableDictionary(header)
    if (hash === undefined) return undefined
    const coding = this.codingFor(request.headers['accept-encoding'])
    const name = hash.toString('base64')
    const dictionary = this.known.get(name)
    if (coding === undefined || dictionary === undefined || !patternCovers(dictionary.pattern, `${this.opts.prefix}/${asset.path}`)) return undefined
    const key = `${asset.identity.etag}|${name}|${coding}`
    const ready = this.made.get(key)
    if (ready !== undefined) {
      this.made.delete(key)
      this.made.set(key, ready)
      return ready.asset
    }
    if (!this.making.has(key) && !this.useless.has(key)) void this.make({ key, asset, hash, dictionary, coding })
    return undefined
  }

  /** Resolves when no delta is being made (tests). */
  async idle (): Promise<void> {
    while (this.making.size > 0) await new Promise(resolve => setTimeout(resolve, 10))
  }

  private codingFor (acceptEncoding: string | undefined): DictionaryCoding | undefined {
    if (acceptEncoding === undefined) return undefined
    const q = parseAcceptEncoding(acceptEncoding)
    return CODINGS.find(c => dictionarySupport[c] && (q.get(c) ?? 0) > 0)
  }

  /** A module indexed in the root is a dictionary for the URLs its announced pattern covers. */
  private remember (asset: Asset): void {
    const announced = asset.policy.headers['use-as-dictionary']
    const sha256 = asset.identity.sha256
    if (announced === undefined || sha256 === undefined) return
    this.known.set(sha256.toString('base64'), { path: asset.path, pattern: patternOf(announced) })
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

  private async make (job: { key: string, asset: Asset, hash: Buffer, dictionary: Dictionary, coding: DictionaryCoding }): Promise<void> {
    const { key, asset, hash, coding } = job
    this.making.add(key)
    const started = performance.now()
    try {
      const [target, dictionary] = await Promise.all([this.bytesOf(asset), this.dictionaryBytes(job.dictionary, hash)])
      if (target === undefined || dictionary === undefined) { this.useless.add(key); return }
      const body = await encodeDelta({ target, dictionary, dictionaryHash: hash, coding, level: 'fast' })
      const best = Math.min(...asset.reps.map(r => r.size))
      if (body === undefined || body.length >= best) { this.useless.add(key); return }
      const delta = representation({ coding, file: '', size: body.length, stamp: null, etag: `"${tagOf(await sha256Async(body))}"`, body }, { type: asset.type, decodedSize: asset.identity.size, vary: true, lastModifiedMs: asset.lastModifiedMs, policy: asset.policy.headers })
      this.keep(key, { ...asset, reps: [delta, ...asset.reps], codings: [coding, ...asset.codings] }, body.length)
      this.opts.log.info({ path: asset.path, dictionary: job.dictionary.path, coding, bytes: body.length, ms: Math.round(performance.now() - started) }, 'delta made')
    } catch (err) {
      this.useless.add(key)
      this.opts.log.warn({ err, path: asset.path }, 'could not make a delta; the module is served as usual')
    } finally {
      this.making.delete(key)
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
