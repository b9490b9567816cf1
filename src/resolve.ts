/**
 * URL path → catalog path, with the safety rules of D14 in docs/delivery.md. Runs before any
 * lookup, on the raw request target, so nothing a client sends is normalized into a path it should
 * not reach: a `..` segment, NUL or backslash after one or two rounds of percent-decoding is
 * refused outright.
 */
export type Resolution =
  /** `lookup`: the catalog path to try first, the directory's index.html for a directory URL. */
  | { ok: true, path: string, directory: boolean, lookup: string }
  | { ok: false, status: 400 | 404 | 414 }

/** Longer paths get 414 (RFC 9110 §15.5.15); no file system allows a longer relative path anyway. */
const MAX_PATH = 4096
// eslint-disable-next-line no-control-regex -- control characters are exactly what it refuses
const FORBIDDEN = /[\0-\x1f\x7f\\]/

const memo = { deny: new Map<string, Resolution>(), allow: new Map<string, Resolution>() }
const MEMO_LIMIT = 4096

/** Resolutions are pure functions of the raw path, so the hot ones are remembered (bounded). */
export function resolvePath (rawPath: string, dotfiles: 'deny' | 'allow'): Resolution {
  const cache = memo[dotfiles]
  let resolution = cache.get(rawPath)
  if (resolution === undefined) {
    resolution = resolveUncached(rawPath, dotfiles)
    if (cache.size >= MEMO_LIMIT) cache.clear()
    if (rawPath.length <= 1024) cache.set(rawPath, resolution)
  }
  return resolution
}

function resolveUncached (rawPath: string, dotfiles: 'deny' | 'allow'): Resolution {
  if (rawPath.length > MAX_PATH) return { ok: false, status: 414 }
  if (FORBIDDEN.test(rawPath)) return { ok: false, status: 400 }
  const decoded = decodeOnce(rawPath)
  if (decoded === undefined || isHostile(decoded)) return { ok: false, status: 400 }
  // Double-encoded attacks (%252e%252e) only work against a server that decodes twice; refuse them
  // anyway (D14), but a name that merely contains '%' still resolves with one decoding.
  if (decoded.includes('%')) {
    const twice = decodeOnce(decoded)
    if (twice !== undefined && isHostile(twice)) return { ok: false, status: 400 }
  }
  const segments = decoded.split('/').filter(s => s !== '')
  if (dotfiles === 'deny' && isHiddenPath(segments)) {
    return { ok: false, status: 404 }
  }
  const path = segments.join('/')
  const directory = decoded.endsWith('/') || segments.length === 0
  return { ok: true, path, directory, lookup: directory ? (path === '' ? 'index.html' : `${path}/index.html`) : path }
}

/** A dotfile or a path through a dot-directory; `.well-known` at the top is public (RFC 8615). */
export function isHiddenPath (segments: string[]): boolean {
  return segments.some((s, i) => s.startsWith('.') && !(i === 0 && s === '.well-known'))
}

function decodeOnce (s: string): string | undefined {
  try { return decodeURIComponent(s) } catch { return undefined } // malformed or overlong UTF-8
}

function isHostile (path: string): boolean {
  return FORBIDDEN.test(path) || path.split('/').some(s => s === '..' || s === '.')
}
