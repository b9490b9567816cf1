/**
 * The site as wasm-serve would serve it, read once for `wasm-serve export`: every servable path with
 * the headers wasm-serve sends for it, from the same catalog and route policy the server uses, so an
 * exported configuration states what the server does rather than a second copy of its rules.
 * Representation headers an engine makes itself (Content-Length, ETag, Last-Modified, Accept-Ranges)
 * are left out; the ones it must be told (type, Vary, policy) are kept.
 */
import { Catalog } from '../catalog.js'
import type { EncodingToken } from '../encodings.js'
import type { ResolvedOptions } from '../options.js'
import { compilePolicy, isHashedName } from '../policy.js'
import type { Asset, Logger } from '../types.js'

/** A precompressed sibling wasm-serve serves for a file (D3), in server preference order. */
export interface SiteEncoding {
  coding: EncodingToken
  /** The sibling's path relative to the root, e.g. `app.wasm.br`. */
  file: string
  size: number
}

export interface SiteFile {
  /** Path relative to the root, `/`-separated, not percent-encoded: `assets/app.3f2a1b9c.wasm`. */
  path: string
  /** The URL path a browser requests it at: `/` + each segment percent-encoded. */
  url: string
  /** Content-Type exactly as wasm-serve sends it (D1: `application/wasm`, never a charset on it). */
  type: string
  /** Bytes of the file as stored (identity). */
  size: number
  /** Usable precompressed siblings, best first; empty when the file has none. */
  encodings: SiteEncoding[]
  /**
   * Every header wasm-serve sends on a 200 for this path that an engine must be told, names in lower
   * case, sorted: content-type, vary, cache-control, isolation, static CORS, route headers, link.
   * Encoded responses add content-encoding and x-decoded-content-length (see `decodedSize`).
   */
  headers: Record<string, string>
  /** Preload link values on an HTML page (D11), also in `headers.link`. */
  links: string[]
  isHtml: boolean
  /** The name carries a content hash (D10). */
  hashed: boolean
  /**
   * A sibling requested by its own name with no original beside it (Unity's `game.wasm.br`): sent
   * with this Content-Encoding and the original's type to a client that accepts it (D3).
   */
  direct?: EncodingToken
  /** X-Decoded-Content-Length on an encoded response (D5), when known. */
  decodedSize?: number
  /** Compressible and at least `compress.minSize`, yet with no sibling: wasm-serve would encode it on the fly (D4). */
  wantsSiblings: boolean
}

export interface Site {
  /** The root as given. */
  root: string
  opts: ResolvedOptions
  /** Sorted by path (code-point order), so every output built from it is deterministic. */
  files: SiteFile[]
  /** Directories relative to the root ('' is the root), sorted: `/dir` redirects to `/dir/` when it has an index.html. */
  dirs: string[]
}

/** Headers an engine computes per representation and request itself; never exported. */
const PER_REPRESENTATION = new Set(['content-length', 'etag', 'last-modified', 'accept-ranges', 'content-encoding', 'x-decoded-content-length'])

const QUIET: Logger = { info: () => {}, warn: () => {}, debug: () => {} }

/**
 * Walks and indexes `opts.root` as the server would (no watching, no on-the-fly encodings, no
 * delta announcements: an engine exported to cannot make deltas), and returns every served path.
 */
export async function readSite (opts: ResolvedOptions & { root: string }, log: Logger = QUIET): Promise<Site> {
  const catalog = await Catalog.open({
    root: opts.root,
    memoryBudget: 0,
    precompressed: opts.precompressed,
    dotfiles: opts.dotfiles,
    policy: compilePolicy(opts),
    log,
    watch: false,
    encodable: () => false,
    revalidateMs: 0,
  })
  try {
    await catalog.load()
    const files = [...catalog.assets()].map(asset => siteFile(asset, opts)).sort((a, b) => compare(a.path, b.path))
    const dirs = [...catalog.dirs().keys()].sort(compare)
    return { root: opts.root, opts, files, dirs }
  } finally {
    catalog.close()
  }
}

function siteFile (asset: Asset, opts: ResolvedOptions): SiteFile {
  const encoded = asset.reps.filter(r => r !== asset.identity)
  const headers: Record<string, string> = {}
  const direct = asset.identity.headers['content-type'] !== asset.type ? encoded[0]?.coding as EncodingToken | undefined : undefined
  // A direct sibling's headers are those of its encoded response; anything else's, its identity's.
  const source = direct !== undefined ? encoded[0]!.headers : asset.identity.headers
  for (const name of Object.keys(source).sort()) if (!PER_REPRESENTATION.has(name)) headers[name] = source[name]!
  const decoded = encoded[0]?.headers['x-decoded-content-length']
  return {
    path: asset.path,
    url: '/' + asset.path.split('/').map(encodeURIComponent).join('/'),
    type: asset.type,
    size: asset.identity.size,
    encodings: direct !== undefined ? [] : encoded.map(r => ({ coding: r.coding as EncodingToken, file: siblingPath(r.file, asset), size: r.size })),
    headers,
    links: asset.policy.links,
    isHtml: asset.isHtml,
    hashed: isHashedName(asset.path),
    ...(direct !== undefined ? { direct } : {}),
    ...(decoded !== undefined ? { decodedSize: Number(decoded) } : {}),
    wantsSiblings: direct === undefined && encoded.length === 0 && asset.compressible && asset.identity.size >= opts.compress.minSize,
  }
}

/** The sibling's path relative to the root: the asset's path plus the suffix its file on disk has. */
function siblingPath (abs: string, asset: Asset): string {
  const suffix = /\.(br|zst|gz)$/.exec(abs)?.[0] ?? ''
  return asset.path + suffix
}

/** Code-point order, independent of locale: the same input gives the same bytes everywhere. */
export function compare (a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}
