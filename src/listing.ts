/**
 * Directory listings, for a directory URL with no index.html when `listing` is on (the CLI's default;
 * off in the plugin and the Docker image, where a listing would publish what a site never linked).
 * Listed from the catalog, not the disk: exactly what the server would serve, siblings (x.wasm.br)
 * included since they are servable files, dotfiles never (whatever `dotfiles` says: a listing is for
 * looking around, and .env or .git are what nobody meant to show). HTML for a browser, JSON
 * (`[{ name, type, size }]`) for `Accept: application/json`. Sorted (directories first, then by code
 * point), so the same tree always lists the same way.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Catalog } from './catalog.js'
import { isHiddenPath } from './resolve.js'

export interface ListingEntry {
  name: string
  type: 'file' | 'directory'
  /** Bytes of the file as stored (its identity representation); null for a directory. */
  size: number | null
}

/** The entries of directory `dir` (root-relative, '' for the root), or undefined when it is not a served directory. */
export function listEntries (catalog: Pick<Catalog, 'assets' | 'dirs'>, dir: string): ListingEntry[] | undefined {
  if (dir !== '' && (!catalog.dirs().has(dir) || isHiddenPath(dir.split('/')))) return undefined
  const prefix = dir === '' ? '' : `${dir}/`
  const entries = new Map<string, ListingEntry>()
  for (const asset of catalog.assets()) {
    if (!asset.path.startsWith(prefix)) continue
    const rest = asset.path.slice(prefix.length)
    const slash = rest.indexOf('/')
    if (slash === -1) entries.set(rest, { name: rest, type: 'file', size: asset.identity.size })
    else entries.set(rest.slice(0, slash), { name: rest.slice(0, slash), type: 'directory', size: null })
  }
  // Directories with no file in them yet are known only as directories.
  for (const path of catalog.dirs().keys()) {
    if (path === dir || !path.startsWith(prefix) || path.slice(prefix.length).includes('/')) continue
    const name = path.slice(prefix.length)
    if (name !== '') entries.set(name, { name, type: 'directory', size: null })
  }
  return [...entries.values()]
    .filter(e => !e.name.startsWith('.'))
    .sort((a, b) => a.type === b.type ? (a.name < b.name ? -1 : a.name > b.name ? 1 : 0) : a.type === 'directory' ? -1 : 1)
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }
const escapeHtml = (text: string) => text.replace(/[&<>"']/g, c => ESCAPES[c]!)
const href = (name: string) => encodeURIComponent(name).replace(/'/g, '%27')

/** The listing page of `urlPath` (the directory's URL path, ending in '/'). */
export function listingHtml (urlPath: string, entries: ListingEntry[]): string {
  const title = `Index of ${escapeHtml(urlPath)}`
  const rows = entries.map(e => e.type === 'directory'
    ? `<tr><td><a href="${href(e.name)}/">${escapeHtml(e.name)}/</a></td><td></td></tr>`
    : `<tr><td><a href="${href(e.name)}">${escapeHtml(e.name)}</a></td><td>${e.size!.toLocaleString('en-US')}</td></tr>`)
  const parent = urlPath === '/' ? [] : ['<tr><td><a href="../">../</a></td><td></td></tr>']
  return [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">',
    `<title>${title}</title>`,
    '<style>body{font:14px/1.5 system-ui,sans-serif;margin:2em}td{padding:0 1.5em 0 0}td+td{text-align:right;font-variant-numeric:tabular-nums}</style>',
    `</head><body><h1>${title}</h1>`,
    '<table><thead><tr><th align="left">Name</th><th align="right">Bytes</th></tr></thead><tbody>',
    ...parent,
    ...rows,
    '</tbody></table></body></html>',
    '',
  ].join('\n')
}

/** Whether the client asked for JSON rather than a page (a script, `curl -H 'Accept: application/json'`). */
function wantsJson (accept: string | undefined): boolean {
  return accept !== undefined && /\bapplication\/json\b/.test(accept) && !/\btext\/html\b/.test(accept)
}

/**
 * Answers with the listing of `dir`, or returns undefined when there is none. No-cache: a listing
 * changes whenever a file does, and carries no validator of its own.
 */
export function sendListing (request: FastifyRequest, reply: FastifyReply, catalog: Catalog, dir: string, urlPath: string): FastifyReply | undefined {
  const entries = listEntries(catalog, dir)
  if (entries === undefined) return undefined
  const json = wantsJson(request.headers.accept)
  const body = json ? JSON.stringify(entries) : listingHtml(urlPath, entries)
  return reply.code(200).headers({
    'content-type': json ? 'application/json; charset=utf-8' : 'text/html; charset=utf-8',
    'cache-control': 'no-cache',
    vary: 'Accept',
    'x-content-type-options': 'nosniff',
    // The page has no script; names come from the disk, so nothing they hold may ever run.
    'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'",
  }).send(body)
}
