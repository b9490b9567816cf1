/**
 * Build-time deltas on disk (RFC 9842; rules: docs/delivery.md, "Delta updates"). `wasm-serve
 * compress --dictionary-from <old-dist>` writes a module's delta against a file of an earlier release
 * next to the module, as `<module>.<id>.dcz` / `.dcb`, the id being the first 16 hex digits of the
 * dictionary's SHA-256 (`app.5e6f7a8b.wasm.1a2b3c4d5e6f7a8b.dcz`). The server answers a request naming
 * that dictionary with it (deltas.ts, through BuiltDeltas here), and never serves such a file as one
 * of its own (walk.ts). Both sides decide here whether a delta file is usable: its header names the
 * dictionary, and a dcz records the module's size.
 */
import type { Stats } from 'node:fs'
import { readdir, readFile, stat } from 'node:fs/promises'
import { namedDictionary, type DictionaryCoding } from './dictionary.js'
import { zstdContentSize } from './encodings.js'
import { sameFile, stampOf } from './file-identity.js'
import type { Asset } from './types.js'

/** A name `compress` gives a delta; hidden from the catalog (walk.ts). Case-insensitive: some file systems are. */
const BUILT_DELTA = /\.[0-9a-f]{16}\.dc[zb]$/i

/** The id in a delta's name: enough of the hash to tell releases apart; the header names the whole hash. */
export const deltaId = (dictionarySha256: Buffer): string => dictionarySha256.subarray(0, 8).toString('hex')

/** Where the delta of `module` (a path) against the dictionary with this id (deltaId) is written. */
export function builtDeltaPath (module: string, id: string, coding: DictionaryCoding): string {
  return `${module}.${id}.${coding}`
}

/** Whether a file name is one `compress` gives a delta. */
export function isBuiltDelta (name: string): boolean {
  return BUILT_DELTA.test(name)
}

/** The id and coding in a delta's name, when it is the delta name of `moduleName`. */
export function parseBuiltDelta (name: string, moduleName: string): { id: string, coding: DictionaryCoding } | undefined {
  if (!name.startsWith(moduleName + '.') || !isBuiltDelta(name) || name.length !== moduleName.length + 21) return undefined
  return { id: name.slice(-20, -4).toLowerCase(), coding: name.slice(-3).toLowerCase() as DictionaryCoding }
}

/** Bytes of a delta file to read for `deltaHeadProblem`: the RFC 9842 header and a zstd frame header. */
export const DELTA_HEAD_BYTES = 40 + 18

/**
 * Why the first bytes of a delta file do not make it a delta of a module of `moduleSize` bytes against
 * this dictionary, or undefined when they do. Whether it is newer than the module is the caller's
 * check, with its own tolerance, as for siblings.
 */
export function deltaHeadProblem (head: Buffer, expected: { dictionarySha256: Buffer, coding: DictionaryCoding, moduleSize: number }): string | undefined {
  const named = namedDictionary(head, expected.coding)
  if (named === undefined) return `not a ${expected.coding} file`
  if (!named.equals(expected.dictionarySha256)) return 'its header names another dictionary'
  if (expected.coding === 'dcb') return undefined // brotli records no size
  let size: number | undefined
  try { size = zstdContentSize(head) } catch { return 'not a dcz file' }
  return size === undefined || size === expected.moduleSize ? undefined : `it decodes to ${size} bytes, the module has ${expected.moduleSize}`
}

/** The served root as far as build-time deltas need it (walk.ts RootDir). */
interface Root {
  abs: (dir: string) => string
  statInside: (rel: string) => Promise<{ rel: string, abs: string, stats: Stats } | undefined>
}

/** A usable build-time delta: the dictionary its header names, and its bytes. */
export interface BuiltDelta { hash: Buffer, coding: DictionaryCoding, body: Buffer }

/** A build-time delta may be a little older than its module after a copy or checkout, as a sibling may (D3). */
const MTIME_TOLERANCE_MS = 2000

/** The server's side: the build-time deltas next to a module of the served root, read when usable. */
export class BuiltDeltas {
  /** The delta names in each directory of modules, while the directory is unchanged. */
  private readonly listings = new Map<string, { stamp: string, names: Promise<string[]> }>()

  constructor (private readonly root: Root, private readonly warn: (obj: object, msg: string) => void) {}

  /** Every usable delta next to the module, for the codings given. */
  async allFor (asset: Asset, codings: readonly DictionaryCoding[]): Promise<BuiltDelta[]> {
    const slash = asset.path.lastIndexOf('/')
    const found: BuiltDelta[] = []
    for (const name of await this.deltaNames(asset.path.slice(0, slash + 1))) {
      const parsed = parseBuiltDelta(name, asset.path.slice(slash + 1))
      if (parsed === undefined || !codings.includes(parsed.coding)) continue
      const delta = await this.read(asset, { id: parsed.id }, parsed.coding)
      if (delta !== undefined) found.push(delta)
    }
    return found
  }

  /** The usable delta of the module against the dictionary with this hash, in this coding, if there is one. */
  async find (asset: Asset, hash: Buffer, coding: DictionaryCoding): Promise<BuiltDelta | undefined> {
    return this.read(asset, { hash }, coding)
  }

  /** The delta names in a directory of the root ('' or ending in '/'), listed again only when it changed. */
  private async deltaNames (dir: string): Promise<string[]> {
    const abs = this.root.abs(dir)
    const st = await stat(abs).catch(() => undefined)
    if (st === undefined) return []
    const stamp = `${st.ino}:${st.mtimeMs}`
    let listing = this.listings.get(dir)
    if (listing?.stamp !== stamp) {
      listing = { stamp, names: readdir(abs).then(names => names.filter(isBuiltDelta), () => []) }
      this.listings.set(dir, listing)
    }
    return listing.names
  }

  /**
   * The delta against the dictionary with this hash (or id), when it is usable: its header names the
   * dictionary, it is not older than the module (a stale one is ignored, as a stale sibling is, D3),
   * the module on disk is still the one indexed, and it is smaller than what is served without it.
   */
  private async read (asset: Asset, dictionary: { hash: Buffer } | { id: string }, coding: DictionaryCoding): Promise<BuiltDelta | undefined> {
    const id = 'id' in dictionary ? dictionary.id : deltaId(dictionary.hash)
    const [facts, module] = await Promise.all([this.root.statInside(builtDeltaPath(asset.path, id, coding)), this.root.statInside(asset.path)])
    if (facts === undefined || module === undefined || !facts.stats.isFile() || !stillIndexed(asset, module.stats)) return undefined
    if (facts.stats.mtimeMs + MTIME_TOLERANCE_MS < module.stats.mtimeMs || facts.stats.size >= Math.min(...asset.reps.map(r => r.size))) return undefined
    const body = await readFile(facts.abs)
    const hash = 'hash' in dictionary ? dictionary.hash : namedDictionary(body, coding)
    if (hash === undefined || deltaId(hash) !== id) return undefined
    const problem = deltaHeadProblem(body.subarray(0, DELTA_HEAD_BYTES), { dictionarySha256: hash, coding, moduleSize: asset.identity.size })
    if (problem !== undefined) {
      this.warn({ delta: facts.rel, problem }, 'ignoring a build-time delta')
      return undefined
    }
    return { hash, coding, body }
  }
}

/** Whether the module on disk is the one the asset was indexed from (else the catalog is about to index it again). */
function stillIndexed (asset: Asset, stats: Stats): boolean {
  const stamp = asset.identity.stamp
  return stamp === null ? stats.mtimeMs === asset.lastModifiedMs : sameFile(stamp, stampOf(stats))
}
