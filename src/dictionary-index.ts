/**
 * The dictionaries the server holds (D18 in docs/delivery.md), by the SHA-256 a browser names them
 * with: modules of the root (a deploy that keeps the previous release's hashed files) as the catalog
 * indexes them, and modules of the `dictionaries` directories (earlier releases shipped beside the
 * new one, hashed once at start-up, read again only to make a delta, never served). A dictionary's
 * bytes are handed out only while they still hash to its name.
 */
import { open, readdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import type { Catalog } from './catalog.js'
import { contentTypeFor } from './content-type.js'
import { patternCovers } from './dictionary.js'
import { hashHandle, sha256Async } from './etag.js'
import type { Asset, FilePolicy, Logger } from './types.js'

export interface Dictionary {
  /** Root-relative path: the URL it was served at (its release's). */
  path: string
  /** The match pattern it was announced with. */
  pattern: string
  /** Where its bytes are: a file of a `dictionaries` directory, or undefined for a catalog asset. */
  file?: string
}

/** Larger dictionaries are not read to make deltas on the fly (time and memory). */
export const MAX_DELTA_INPUT = 128 * 1024 * 1024

export class DictionaryIndex {
  /** By SHA-256 (base64). */
  private readonly known = new Map<string, Dictionary>()

  constructor (private readonly opts: { catalog: Catalog, policy: (path: string, type: string, size?: number) => FilePolicy, prefix: string, log: Logger }) {}

  /** A module indexed in the root: a dictionary for the URLs its announced pattern covers. */
  remember (asset: Asset, announced: string): void {
    const sha256 = asset.identity.sha256
    if (sha256 !== undefined) this.known.set(sha256.toString('base64'), { path: asset.path, pattern: patternOf(announced) })
  }

  /** Every module of an earlier release: hashed once at start-up. */
  async indexRelease (dir: string): Promise<void> {
    for (const rel of await filesUnder(dir)) {
      const file = join(dir, ...rel.split('/'))
      const size = (await stat(file).catch(() => undefined))?.size
      if (size === undefined) continue
      const announced = this.opts.policy(rel, contentTypeFor(rel), size).headers['use-as-dictionary']
      if (announced === undefined) continue
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

  /** The dictionary with this name (base64 SHA-256) held here, when its pattern covers the asset's URL. */
  heldFor (name: string, asset: Asset): Dictionary | undefined {
    const dictionary = this.known.get(name)
    return dictionary !== undefined && patternCovers(dictionary.pattern, `${this.opts.prefix}/${asset.path}`) ? dictionary : undefined
  }

  /** The dictionary's bytes, only while they still hash to the name the browser sent. */
  async bytes (dictionary: Dictionary, hash: Buffer): Promise<Buffer | undefined> {
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
