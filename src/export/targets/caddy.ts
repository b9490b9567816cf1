/**
 * `wasm-serve export --target caddy`: one Caddyfile site block. Everything runs in one `route`, so
 * the order is the order written (Caddy sorts directives outside a route by its own table). Files
 * with identical headers share a named matcher (an anchored path_regexp listing their paths), and
 * their headers, Content-Type included (Caddy's MIME table differs from wasm-serve's), are set as
 * data from the site model (site.ts). Tested by loading it into Debian's Caddy 2.6
 * (test/export-engines.test.ts).
 */
import { compare, type Site, type SiteFile } from '../site.js'
import { commonWarnings, type Capabilities } from '../notes.js'
import type { Target } from '../target.js'

const CAN: Capabilities = {
  engine: 'Caddy',
  siblings: 'served',
  codings: ['br', 'zstd', 'gzip'],
  // A header directive cannot see which file file_server picked, so it cannot say the decoded size only on encoded responses.
  decodedLength: false,
  earlyHints: false,
  corsOriginList: true,
  // Caddy 2.6 sends precompressed files chunked (fixed in 2.10, caddyserver/caddy#7251).
  encodedLength: false,
}

const CADDY_WARNINGS = [
  'Caddy answers a Range request from a client that accepts a precompressed coding with a range of the encoded bytes, not of the identity bytes (D8)',
  'Caddy picks the first coding of file_server\'s precompressed list the client accepts, whatever its q-values, and sends identity rather than 406 when nothing is acceptable (D2)',
]

const ACCEPT_TOKEN: Record<string, string> = { br: 'br', zstd: 'zstd', gzip: '(?:x-)?gzip' }

export const caddy: Target = (site) => {
  const warnings = [...commonWarnings(site, CAN), ...CADDY_WARNINGS]
  const files = site.files.filter(f => usable(f, warnings))
  const body = [
    ...rootLines(site, warnings),
    ...guards(site),
    ...redirects(site, files),
    ...spa(site, warnings),
    ...headerLines(site, files),
    ...directLines(files),
    ...fileServer(site),
  ]
  const text = [...header(site, warnings), '{$SITE_ADDRESS::8080} {', '\troute {', ...body.map(l => l === '' ? '' : '\t\t' + l), '\t}', '}', ''].join('\n')
  return { files: [{ name: 'Caddyfile', text }], warnings }
}

/**
 * A header value with braces would be read as a placeholder (`{path}`), and `{$` anywhere in a
 * Caddyfile as an environment variable: such files are left out, said once each.
 */
function usable (file: SiteFile, warnings: string[]): boolean {
  const bad = Object.entries(file.headers).find(([, v]) => /[{}\\]/.test(v))
  // eslint-disable-next-line no-control-regex -- control characters cannot be written into a Caddyfile token
  if (bad === undefined && !/[\0-\x1f\x7f]/.test(file.path)) return true
  warnings.push(bad !== undefined
    ? `${file.path}: its ${bad[0]} value has a brace or a backslash, which Caddy reads as a placeholder or an escape: left out (served with the defaults for unlisted files)`
    : `"${JSON.stringify(file.path).slice(1, -1)}" has a control character in its name: left out of the Caddyfile (served with the defaults for unlisted files)`)
  return false
}

function header (site: Site, warnings: string[]): string[] {
  return [
    `# wasm-serve export --target caddy: ${site.files.length} files.`,
    '# A site block: put it after your global options (e.g. { admin off }). The address is taken from the',
    '# environment variable SITE_ADDRESS (e.g. SITE_ADDRESS=example.com, or http://127.0.0.1:8080), :8080 without it.',
    '# Headers are per file as exported: re-run the export after each deploy. A file added since gets',
    '# Cache-Control: no-cache, the headers every exported file shares, and Caddy\'s own Content-Type.',
    '#',
    '# What Caddy will not do as wasm-serve does (also printed as warnings):',
    ...warnings.map(w => `# - ${w}`.replace(/[\r\n]/g, ' ')),
    '',
  ]
}

function rootLines (site: Site, warnings: string[]): string[] {
  if (/[{}]/.test(site.root)) warnings.push(`the root path ${site.root} has a brace, which Caddy reads as a placeholder: edit the root line`)
  return [`root * ${token(site.root)}`, '']
}

/** Methods (D17), preflight (D13), hidden paths (D14), build-time deltas (D18): answered before any file. */
function guards (site: Site): string[] {
  const cors = site.opts.cors
  const allow = cors === false ? 'GET, HEAD' : 'GET, HEAD, OPTIONS'
  const out = [
    '# D17: other methods get 405 with Allow.',
    `@ws_method not method GET HEAD${cors === false ? '' : ' OPTIONS'}`,
    `header @ws_method Allow ${token(allow)}`,
    'respond @ws_method 405',
    '',
  ]
  if (cors !== false) {
    const list = cors.origin === '*' ? undefined : [...cors.origin].sort(compare)
    // The header matcher takes one value a line; lines for the same field are alternatives.
    const origins = (list ?? ['*']).map(o => `\theader Origin ${o === '*' ? '*' : token(o)}`)
    out.push(
      '# D13: a preflight gets 204 with Allow; an allowed Origin also gets the methods, the asked headers and a day of caching.',
      '@ws_options method OPTIONS',
      `header @ws_options Allow ${token(allow)}`,
      ...(list === undefined ? [] : ['header @ws_options Vary Origin']),
      '@ws_preflight {', '\tmethod OPTIONS', ...origins, '}',
      '@ws_preflight_headers {', '\tmethod OPTIONS', ...origins, '\theader Access-Control-Request-Headers *', '}',
      'header @ws_preflight {',
      `\tAccess-Control-Allow-Origin ${list === undefined ? '*' : '{http.request.header.Origin}'}`,
      '\tAccess-Control-Allow-Methods "GET, HEAD, OPTIONS"',
      '\tAccess-Control-Max-Age 86400',
      '}',
      'header @ws_preflight_headers Access-Control-Allow-Headers {http.request.header.Access-Control-Request-Headers}',
      'respond @ws_options 204',
      ''
    )
    if (list !== undefined) {
      out.push('# D13: an allowed Origin is echoed on every file response.', '@ws_origin {', ...origins, '}', 'header @ws_origin Access-Control-Allow-Origin {http.request.header.Origin}', '')
    }
  }
  if (site.opts.dotfiles === 'deny') {
    // RE2 has no lookahead: a dot segment at the top unless .well-known, or one anywhere below.
    out.push(
      '# D14: dotfiles and dot-directories are 404, except .well-known at the top (RFC 8615).',
      '@ws_hidden_top {', '\tpath_regexp ^/\\.', '\tnot path_regexp ^/\\.well-known(?:/|$)', '}',
      '@ws_hidden_below path_regexp ^/.+/\\.',
      'respond @ws_hidden_top 404',
      'respond @ws_hidden_below 404',
      ''
    )
  }
  out.push('# D18: build-time deltas (<module>.<16 hex>.dcz|dcb) are never served as files.', `@ws_delta path_regexp (?i)\\.${'[0-9a-f]'.repeat(16)}\\.dc[zb]$`, 'respond @ws_delta 404', '')
  return out
}

/** D14: a directory with an index.html, asked for without its slash: 301 to the slash, each segment percent-encoded. */
function redirects (site: Site, files: SiteFile[]): string[] {
  const indexed = new Set(files.filter(f => f.path === 'index.html' || f.path.endsWith('/index.html')).map(f => f.path.slice(0, -'/index.html'.length)))
  const dirs = site.dirs.filter(d => d !== '' && indexed.has(d))
  if (dirs.length === 0) return []
  const out = ['# D14: a directory URL without its slash is redirected to it (301, relative).']
  for (const [i, dir] of dirs.entries()) {
    const location = '/' + dir.split('/').map(encodeURIComponent).join('/') + '/'
    out.push(`@ws_dir${i} path_regexp ${exact(['/' + dir])}`, `redir @ws_dir${i} ${token(location)} 301`)
  }
  return [...out, '']
}

/** D15: an extension-less path that names no file, from a request that accepts HTML, gets the SPA page. */
function spa (site: Site, warnings: string[]): string[] {
  const page = site.opts.spa
  if (page === false) return []
  const path = '/' + page.replace(/^\/+/, '')
  if (/[{}]/.test(path)) { warnings.push(`the SPA page "${page}" has a brace, which Caddy reads as a placeholder: no SPA fallback (D15)`); return [] }
  return [
    '# D15: the SPA page, only for extension-less paths that name no file and requests that accept HTML.',
    '@ws_spa {',
    '\tnot file',
    '\tpath_regexp ^(?:.*/)?[^/.]+/*$|^/*$',
    '\theader_regexp Accept text/html|application/xhtml\\+xml',
    '}',
    `rewrite @ws_spa ${token(path)}`,
    '',
  ]
}

/**
 * Per-file headers: first what an unlisted file gets, then each group's, replacing. Deferred, so
 * they apply when the response is written: file_server's own Vary and Content-Type are overwritten,
 * and a file that must not Vary has it removed.
 */
function headerLines (site: Site, files: SiteFile[]): string[] {
  const groups = new Map<string, { headers: Record<string, string>, paths: string[], direct: boolean }>()
  for (const file of files) {
    const own = { ...file.headers }
    if (file.direct !== undefined) delete own['content-type'] // set per request below: raw or encoded
    const key = JSON.stringify([file.direct !== undefined, own])
    const group = groups.get(key) ?? { headers: own, paths: [], direct: file.direct !== undefined }
    group.paths.push('/' + file.path)
    // file_server answers /dir/ with dir/index.html without changing the path the matchers see.
    if (file.path === 'index.html' || file.path.endsWith('/index.html')) group.paths.push('/' + file.path.slice(0, -'index.html'.length))
    groups.set(key, group)
  }
  const names = [...new Set(files.flatMap(f => Object.keys(f.headers)))].sort(compare)
  const out = ['# The headers wasm-serve sends, per group of files that share them.']
  for (const [i, group] of [...groups.values()].entries()) {
    // A direct sibling's Content-Type is set per request below; left alone here.
    const set = names.filter(n => group.headers[n] !== undefined || !(n === 'content-type' && group.direct)).map(n => group.headers[n] === undefined ? `\t-${n}` : `\t${n} ${token(group.headers[n])}`)
    out.push(`@ws_g${i} path_regexp ${exact(group.paths)}`, `header @ws_g${i} {`, '\tdefer', ...set, '}')
  }
  out.push(
    '',
    '# D10: what a file added after the export gets: revalidation, and the headers every exported file shares.',
    '# Written after the groups on purpose: deferred header ops of an inner handler run first, so the groups\' win.',
    'header {', '\tdefer', ...Object.entries(unlisted(site)).map(([n, v]) => `\t${n} ${token(v)}`), '}'
  )
  return [...out, '']
}

function unlisted (site: Site): Record<string, string> {
  const [first, ...rest] = site.files
  const shared: Record<string, string> = {}
  for (const [name, value] of Object.entries(first?.headers ?? {})) {
    if (name !== 'content-type' && name !== 'cache-control' && rest.every(f => f.headers[name] === value)) shared[name] = value
  }
  return { 'cache-control': 'no-cache', ...shared }
}

/** D3: a sibling asked for by name gets the original's type and its coding when accepted, else the raw bytes. */
function directLines (files: SiteFile[]): string[] {
  const direct = files.filter(f => f.direct !== undefined)
  if (direct.length === 0) return []
  const out = ['# D3: siblings asked for by name (Unity\'s Build/*.wasm.br).']
  for (const [i, file] of direct.entries()) {
    const accepts = `(?i)(?:^|,)\\s*${ACCEPT_TOKEN[file.direct!]!}\\s*(?:;\\s*q\\s*=\\s*(?:1(?:\\.0?0?0?)?|0?\\.\\d?\\d?[1-9])\\s*)?(?:,|$)`
    out.push(
      `@ws_direct${i} {`, `\tpath_regexp ${exact(['/' + file.path])}`, `\theader_regexp Accept-Encoding ${token(accepts)}`, '}',
      `@ws_raw${i} {`, `\tpath_regexp ${exact(['/' + file.path])}`, `\tnot header_regexp Accept-Encoding ${token(accepts)}`, '}',
      `header @ws_direct${i} {`, '\tdefer', `\tContent-Type ${token(file.type)}`, `\tContent-Encoding ${file.direct!}`, '}',
      `header @ws_raw${i} {`, '\tdefer', '\tContent-Type application/octet-stream', '}'
    )
  }
  return [...out, '']
}

function fileServer (site: Site): string[] {
  const order = site.opts.precompressed.join(' ')
  return [
    '# D3: precompressed siblings in wasm-serve\'s preference order; nothing compressed on the fly (no encode).',
    'file_server {',
    ...(order === '' ? [] : [`\tprecompressed ${order}`]),
    '}',
  ]
}

/**
 * An anchored RE2 pattern matching exactly these paths. Characters the Caddyfile would read
 * (quotes, backslash before a quote, braces for placeholders, `{$` for the environment) are
 * written as \x escapes, so the token needs no quoting rules beyond the double quotes.
 */
function exact (paths: string[]): string {
  const alternatives = paths.map(p => [...p].map(escapeRegexChar).join(''))
  return `"^(?:${alternatives.join('|')})$"`
}

function escapeRegexChar (c: string): string {
  const code = c.codePointAt(0)!
  if (/[\\"{}$`'#\s]/.test(c)) return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\x{${code.toString(16)}}`
  return /[.*+?^()|[\]]/.test(c) ? `\\${c}` : c
}

/**
 * A Caddyfile token in double quotes. The lexer unescapes only `\\"` and keeps any other backslash
 * (caddyconfig/caddyfile/lexer.go), so only quotes are escaped; values with a backslash are refused
 * before they get here.
 */
function token (s: string): string {
  return `"${s.replace(/"/g, '\\"')}"`
}
