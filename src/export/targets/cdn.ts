/**
 * What the CDN targets (Netlify, Cloudflare Pages, Vercel) share: which of wasm-serve's headers a
 * CDN's header rules are told, how they are spelled, and the warnings every CDN needs about files
 * whose delivery depends on a response header those rules cannot set.
 */
import { printable } from '../../printable.js'
import type { SiteFile } from '../site.js'

/**
 * Headers the CDN makes itself and must not be told: each of these platforms compresses responses on
 * its own and sends its own `Vary: Accept-Encoding` (a rule's Vary would be joined to it and name the
 * header twice).
 */
const CDN_OWNED = new Set(['vary'])

/**
 * The headers a CDN rule must send for `file`, names in lower case, sorted. A direct sibling
 * (`game.wasm.br`, D3) keeps its type only together with `Content-Encoding`, which these rules cannot
 * set (see `directWarning`): without it the CDN's own type is the lesser harm, since the bytes
 * labelled `application/wasm` would fail to compile with no hint that they are brotli.
 */
export function ruleHeaders (file: SiteFile): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(file.headers)) {
    if (CDN_OWNED.has(name)) continue
    if (name === 'content-type' && file.direct !== undefined) continue
    out[name] = value
  }
  return out
}

/** `cache-control` → `Cache-Control`: the spelling the platforms' docs use (header names are case-insensitive, RFC 9110 §5.1). */
export function headerName (lower: string): string {
  return lower.split('-').map(part => part.charAt(0).toUpperCase() + part.slice(1)).join('-')
}

/** Files named in a warning, at most (as in notes.ts). */
const NAMED = 3

export function named (paths: string[]): string {
  const shown = paths.slice(0, NAMED).join(', ')
  return paths.length > NAMED ? `${shown}, and ${paths.length - NAMED} more` : shown
}

/** The warning for direct siblings on a CDN that cannot be told their Content-Encoding, or undefined. */
export function directWarning (engine: string, files: SiteFile[], why: string): string | undefined {
  const direct = files.filter(f => f.direct !== undefined)
  if (direct.length === 0) return undefined
  return `${engine} cannot send Content-Encoding on files requested by their compressed name (${named(direct.map(f => f.path))}): ${why}; build with the loader's decompression fallback (Unity: Decompression Fallback) or deploy the uncompressed files (D3)`
}

/** `a/b` is inside `a`; '' is the root and holds everything. */
export function isUnder (path: string, dir: string): boolean {
  return dir === '' || path.startsWith(dir + '/')
}

/** `#` comment lines for a file's head: the warnings, one per line (the formats have no multi-line comments). */
export function commentLines (title: string[], warnings: string[]): string[] {
  // printable: a file name with a line break must not end the comment and start a rule.
  return [...title.map(line => `# ${printable(line)}`), ...warnings.map(w => `# warning: ${printable(w)}`)]
}
