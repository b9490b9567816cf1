/**
 * The warnings every target shares: rules of docs/delivery.md an engine may not be able to express,
 * said once each and only where the site or the options make them matter. A target states what its
 * engine can do; the wording is kept here so every target says the same thing the same way.
 */
import type { Site } from './site.js'

export interface Capabilities {
  /** The engine's product name, as used in the sentences: "nginx", "Caddy", "Netlify". */
  engine: string
  /** Precompressed siblings: served with negotiation, or ignored (the engine compresses itself). */
  siblings: 'served' | 'ignored'
  /** Which sibling codings it can serve (when `siblings` is 'served'). */
  codings?: ReadonlyArray<'br' | 'zstd' | 'gzip'>
  /** X-Decoded-Content-Length on encoded responses (D5). */
  decodedLength: boolean
  /** 103 Early Hints from the preload links (D11). */
  earlyHints: boolean
  /** Echoing one of a list of allowed origins (D13); `*` every engine can send. */
  corsOriginList: boolean
  /** Content-Length on precompressed responses (D5); false where it sends them chunked. */
  encodedLength: boolean
}

/** Files named in a warning, at most. */
const NAMED = 3

export function commonWarnings (site: Site, can: Capabilities): string[] {
  const { engine } = can
  const out: string[] = []
  const encoded = site.files.filter(f => f.encodings.length > 0)
  const bare = site.files.filter(f => f.wantsSiblings)
  if (can.siblings === 'ignored' && encoded.length > 0) {
    out.push(`${engine} does not serve the precompressed siblings (${named(encoded.map(f => f.encodings[0]!.file))}); it compresses responses itself, at its own levels (D3, D4)`)
  } else if (can.siblings === 'served' && bare.length > 0) {
    out.push(`${bare.length} compressible file(s) have no precompressed siblings (${named(bare.map(f => f.path))}): run \`wasm-serve compress <dir>\` before deploying, or ${engine} sends them uncompressed (D4)`)
  }
  if (can.siblings === 'served' && can.codings !== undefined) {
    const lost = [...new Set(encoded.flatMap(f => f.encodings.map(e => e.coding)).filter(c => !can.codings!.includes(c)))].sort()
    if (lost.length > 0) out.push(`${engine} cannot serve ${lost.join(', ')} siblings; browsers get the next coding the file has (D3)`)
  }
  if (can.siblings === 'served' && !can.encodedLength && encoded.length > 0) {
    out.push(`${engine} sends precompressed files chunked, without Content-Length: a download's progress has no total (D5)`)
  }
  if (!can.decodedLength && site.files.some(f => f.decodedSize !== undefined || f.encodings.length > 0)) {
    out.push(`${engine} cannot send X-Decoded-Content-Length on encoded responses: a progress bar over the decoded bytes has no total (D5, whatwg/fetch#1358)`)
  }
  if (!can.earlyHints && site.opts.earlyHints && site.files.some(f => f.links.length > 0)) {
    out.push(`${engine} cannot send 103 Early Hints; the preload links are still sent on the page (D11)`)
  }
  if (!can.corsOriginList && site.opts.cors !== false && site.opts.cors.origin !== '*') {
    out.push(`${engine} cannot echo one of a list of CORS origins; the configured origins get no Access-Control-Allow-Origin (D13)`)
  }
  out.push(`ETags are ${engine}'s own, not content hashes: a file rebuilt with the same bytes but a new date is downloaded again (D6)`)
  if (site.opts.dictionaries.length > 0 || site.opts.routes.some(r => r.dictionary !== undefined && r.dictionary !== false)) {
    out.push(`${engine} cannot send delta updates (RFC 9842); browsers download changed modules whole (D18)`)
  }
  return out
}

function named (paths: string[]): string {
  const shown = paths.slice(0, NAMED).join(', ')
  return paths.length > NAMED ? `${shown}, and ${paths.length - NAMED} more` : shown
}
