/**
 * Indexing: a group of files on disk (a file and its precompressed siblings, D3 in
 * docs/delivery.md) in, fully built assets out. Plain functions; the catalog decides when to call
 * them and swaps their result in.
 */
import { readFile } from 'node:fs/promises'
import { contentTypeFor, originalName } from './content-type.js'
import { decodesToSize, isCompressible, recordedDecodedSize } from './codecs.js'
import { ENCODINGS, type EncodingToken } from './encodings.js'
import { representation } from './headers.js'
import { loadFile } from './load.js'
import { isTransient } from './transient.js'
import { sniffUnityWebFile, unityWebInner } from './unityweb.js'
import type { Asset, FilePolicy, Loaded } from './types.js'
import type { PolicyOf } from './policy.js'
import type { FileFacts, RootDir, WarnOnce } from './walk.js'

export interface IndexContext {
  root: RootDir
  precompressed: readonly EncodingToken[]
  policy: PolicyOf
  /** Whether a file without siblings may still get encodings (on the fly): then it Varies (D7). */
  encodable: (path: string, size: number) => boolean
  /** Whether a file's bytes are held in memory (the memory budget). */
  inMemory: (rel: string, size: number) => boolean
  warn: WarnOnce
  /**
   * The files a walk has just found and stat'ed (start-up): a name it did not find is no file, so
   * a group is indexed without a realpath and a stat for each sibling name that may exist.
   */
  walked?: ReadonlyMap<string, FileFacts>
}

/** The largest HTML page read again for its policy when its bytes are not held in memory. */
const MAX_PAGE_READ = 4 * 1024 * 1024

/** Siblings may be a little older than their original after a copy or checkout (D3). */
const MTIME_TOLERANCE_MS = 2000

/** Every path of a group: the file and each sibling name (undefined where nothing is served). */
export async function indexGroup (ctx: IndexContext, base: string): Promise<Map<string, Asset | undefined>> {
  const facts = (rel: string) => ctx.walked !== undefined ? ctx.walked.get(rel) : ctx.root.statFile(rel)
  const original = await facts(base)
  const siblings = await Promise.all(ENCODINGS.map(e => facts(base + e.suffix)))
  const loaded = new Map<string, Promise<Loaded>>()
  const load = (facts: FileFacts, coding: Loaded['coding']): Promise<Loaded> => {
    let bytes = loaded.get(facts.rel)
    if (bytes === undefined) loaded.set(facts.rel, bytes = loadFile(facts, coding, size => ctx.inMemory(facts.rel, size)))
    return bytes
  }
  const next = new Map<string, Asset | undefined>()
  // Unity's `game.wasm.unityweb` is gzip, brotli or neither, whatever its name: an encoded one is
  // answered as a lone sibling would be, with its coding when the client accepts it (D3).
  const unityCoding = original !== undefined && unityWebInner(base) !== undefined ? await sniffUnityWebFile(original.abs) : undefined
  if (original !== undefined && unityCoding !== undefined) next.set(base, await directAsset(ctx, { sib: original, token: unityCoding, encoded: await load(original, unityCoding), original: undefined }))
  else next.set(base, original === undefined ? undefined : await originalAsset(ctx, { original, siblings, load }))
  for (const [i, sib] of siblings.entries()) {
    const { token, suffix } = ENCODINGS[i]!
    if (sib === undefined) next.set(base + suffix, undefined)
    // `data.tar.gz` alone is an archive to download, not an encoding of data.tar: only web assets
    // (`game.wasm.br` without game.wasm, as Unity ships them) are answered with Content-Encoding.
    else if (original === undefined && !isCompressible(base)) next.set(base + suffix, await plainAsset(ctx, sib, await load(sib, 'identity')))
    else next.set(base + suffix, await directAsset(ctx, { sib, token, encoded: await load(sib, token), original }))
  }
  return next
}

interface Group {
  original: FileFacts
  siblings: Array<FileFacts | undefined>
  load: (facts: FileFacts, coding: Loaded['coding']) => Promise<Loaded>
}

async function originalAsset (ctx: IndexContext, group: Group): Promise<Asset> {
  const { original, siblings, load } = group
  const encoded: Loaded[] = []
  for (const [i, sib] of siblings.entries()) {
    const { token } = ENCODINGS[i]!
    if (sib === undefined || !ctx.precompressed.includes(token)) continue
    if (await usableSibling(ctx, { original, sib, token })) encoded.push(await load(sib, token))
  }
  const identity = await load(original, 'identity')
  const type = contentTypeFor(original.rel)
  // A page's bytes give its CSP the hashes of its inline scripts (D19): read again when not held.
  const page = identity.body === null && type.startsWith('text/html') && identity.size <= MAX_PAGE_READ ? await readFile(original.abs).catch(() => null) : identity.body
  const policy = ctx.policy(original.rel, type, identity.size, page)
  // A module that may be sent as a delta (D18) varies on Accept-Encoding too, siblings or not.
  const vary = encoded.length > 0 || ctx.encodable(original.rel, identity.size) || policy.headers['use-as-dictionary'] !== undefined
  return buildAsset({ path: original.rel, type, encoded, identity, vary, lastModifiedMs: original.stats.mtimeMs, decodedSize: identity.size, policy, order: ctx.precompressed })
}

function plainAsset (ctx: IndexContext, file: FileFacts, bytes: Loaded): Asset {
  const type = contentTypeFor(file.rel)
  return buildAsset({ path: file.rel, type, encoded: [], identity: bytes, vary: false, lastModifiedMs: file.stats.mtimeMs, rawType: type, policy: ctx.policy(file.rel, type), order: ctx.precompressed })
}

/** A direct request for `x.wasm.br` gets x.wasm's type with Content-Encoding br when br is accepted, else the raw bytes (D3). */
async function directAsset (ctx: IndexContext, input: { sib: FileFacts, token: EncodingToken, encoded: Loaded, original: FileFacts | undefined }): Promise<Asset> {
  const { sib, token, encoded, original } = input
  const type = contentTypeFor(originalName(sib.rel))
  const raw: Loaded = { ...encoded, coding: 'identity', etag: encoded.etag.replace(/"$/, '.raw"') }
  const usable = original !== undefined && await usableSibling(ctx, { original, sib, token, quiet: true })
  // Without a usable original (a Unity build ships only x.wasm.br / .gz): the size gzip and zstd
  // record about themselves (gzip's is mod 4 GiB, exact for any module), so progress still ends at 100 % (D5).
  const decodedSize = usable ? original.stats.size : await recordedDecodedSize(sib.abs, sib.stats.size, token).catch(() => undefined)
  return buildAsset({ path: sib.rel, type, encoded: [encoded], identity: raw, vary: true, lastModifiedMs: sib.stats.mtimeMs, decodedSize, rawType: 'application/octet-stream', policy: ctx.policy(sib.rel, type), order: [token] })
}

interface AssetSpec {
  path: string
  type: string
  /** Encoded representations, in any order; sorted by `order` (server preference). */
  encoded: Loaded[]
  identity: Loaded
  vary: boolean
  lastModifiedMs: number
  decodedSize?: number
  /** Content-Type of the identity bytes when it differs from `type` (a sibling's raw bytes). */
  rawType?: string
  policy: FilePolicy
  order: readonly EncodingToken[]
}

/** The one place an asset and its representations are made, headers included. */
function buildAsset (spec: AssetSpec): Asset {
  const { path, type, lastModifiedMs, policy } = spec
  const common = { vary: spec.vary, lastModifiedMs, policy: policy.headers }
  const rank = (l: Loaded) => spec.order.indexOf(l.coding as EncodingToken)
  const reps = [...spec.encoded].sort((a, b) => rank(a) - rank(b)).map(l => representation(l, { ...common, type, decodedSize: spec.decodedSize }))
  const identity = representation(spec.identity, { ...common, type: spec.rawType ?? type, decodedSize: undefined })
  reps.push(identity)
  const compressible = spec.rawType === undefined && isCompressible(path)
  return { path, reps, codings: reps.map(r => r.coding), identity, lastModifiedMs, policy, isHtml: type.startsWith('text/html'), type, compressible }
}

/** The same asset with encodings made on the fly added; they then behave exactly like siblings (D4–D7). */
export function withEncodings (asset: Asset, added: Loaded[], order: readonly EncodingToken[]): Asset {
  const encoded = [...asset.reps.filter(r => r !== asset.identity), ...added]
  return buildAsset({ path: asset.path, type: asset.type, encoded, identity: asset.identity, vary: true, lastModifiedMs: asset.lastModifiedMs, decodedSize: asset.identity.size, policy: asset.policy, order })
}

/** D3: a sibling is served only when it is smaller, not older than its original, and (where cheaply known) decodes to its size. */
async function usableSibling (ctx: IndexContext, input: { original: FileFacts, sib: FileFacts, token: EncodingToken, quiet?: boolean }): Promise<boolean> {
  const { original, sib, token } = input
  let reason: string | undefined
  if (sib.stats.size >= original.stats.size) reason = 'it is not smaller than the original'
  else if (sib.stats.mtimeMs + MTIME_TOLERANCE_MS < original.stats.mtimeMs) reason = 'it is older than the original'
  else {
    // Not a readable file of its format: never serve it as one.
    const decoded = await recordedDecodedSize(sib.abs, sib.stats.size, token).catch(err => {
      if (isTransient(err)) throw err // out of descriptors says nothing about the file
      return -1
    })
    if (decoded === -1) reason = `it is not a readable ${token} file`
    else if (!decodesToSize(decoded, original.stats.size, token)) reason = `it decodes to ${String(decoded)} bytes, the original has ${original.stats.size}`
  }
  if (reason !== undefined && input.quiet !== true) ctx.warn(`${sib.rel}:${sib.stats.mtimeMs}`, { sibling: sib.rel }, `ignoring precompressed sibling: ${reason}`)
  return reason === undefined
}
