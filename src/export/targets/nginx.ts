/**
 * `wasm-serve export --target nginx`: one file to `include` inside `http {}`: the maps that hold the
 * per-file headers (maps live in the http context), then one `server {}`. Every header comes from the
 * site model (site.ts) as data: a map from the request's path to a group of files with identical
 * headers, and a map per header from the group to its value, all sent by `add_header` at the server
 * level only (a location with an add_header of its own would drop the server's, nginx docs,
 * ngx_http_headers_module). Tested by loading it into Debian's nginx 1.22 (test/export-engines.test.ts).
 */
import { compare, type Site, type SiteFile } from '../site.js'
import { commonWarnings, type Capabilities } from '../notes.js'
import type { Target } from '../target.js'

const CAN: Capabilities = {
  engine: 'nginx',
  siblings: 'served',
  // gzip_static is core; brotli_static is ngx_brotli's static module; Debian has no zstd static module.
  codings: ['br', 'gzip'],
  decodedLength: true,
  earlyHints: false,
  corsOriginList: true,
  encodedLength: true,
}

/** The codings a direct sibling (`game.wasm.br`) may be labelled with, and how Accept-Encoding names them. */
const ACCEPT_TOKEN: Record<string, string> = { br: 'br', zstd: 'zstd', gzip: '(?:x-)?gzip' }

/** What nginx itself does differently from wasm-serve, whatever the site. */
const NGINX_WARNINGS = [
  'nginx picks br over gzip whenever a client accepts both, whatever their q-values, and sends identity rather than 406 when nothing is acceptable (D2)',
  'nginx answers a Range request from a client that accepts br or gzip with the whole precompressed file (200), not a 206 of the identity bytes; without Accept-Encoding ranges work (D8)',
]

export const nginx: Target = (site) => {
  const warnings = [...commonWarnings(site, CAN), ...NGINX_WARNINGS]
  const served = site.files.filter(f => usableName(f.path, warnings))
  const spaPage = spaPageOf(site, warnings)
  const text = [header(site, warnings), hashSizes(served), maps(site, served, spaPage), server(site, served, spaPage)].filter(s => s !== '').join('\n')
  return { files: [{ name: 'nginx.conf', text }], warnings }
}

/** A name nginx's configuration cannot carry (control characters; nginx decodes $uri) is left out, said once. */
function usableName (path: string, warnings: string[]): boolean {
  // eslint-disable-next-line no-control-regex -- control characters are what cannot be written into nginx.conf
  if (!/[\0-\x1f\x7f]/.test(path)) return true
  warnings.push(`"${JSON.stringify(path).slice(1, -1)}" has a control character in its name: left out of the nginx configuration (served with the defaults for unlisted files)`)
  return false
}

function spaPageOf (site: Site, warnings: string[]): string | undefined {
  const page = site.opts.spa
  if (page === false) return undefined
  const path = '/' + page.replace(/^\/+/, '')
  // rewrite takes a `?` in its replacement as the start of the query (nginx docs, ngx_http_rewrite_module).
  if (path.includes('?')) { warnings.push(`the SPA page "${page}" has a "?" in its name, which nginx's rewrite cannot express: no SPA fallback (D15)`); return undefined }
  return path
}

function header (site: Site, warnings: string[]): string {
  const lines = [
    `wasm-serve export --target nginx: ${site.files.length} files.`,
    'Include this file inside http {}: it holds maps (http context) and one server {} block; edit its listen line.',
    'brotli_static needs ngx_brotli\'s static module (Debian: libnginx-mod-http-brotli-static), loaded in the main context:',
    '  load_module modules/ngx_http_brotli_static_module.so;',
    'Without it nginx refuses this file ("unknown directive brotli_static"): delete that line and br siblings are not served.',
    'gzip_static is part of nginx (Debian builds it in). Nothing is detected at export time.',
    'Headers are per file as exported: re-run the export after each deploy. A file added since gets',
    'Cache-Control: no-cache and the headers every exported file shares.',
    '',
    'What nginx will not do as wasm-serve does (also printed as warnings):',
    ...warnings.map(w => `- ${w}`),
  ]
  return lines.map(l => comment(l)).join('\n') + '\n'
}

/** A comment line; a name with a newline in it cannot end the comment (names with controls are refused anyway). */
function comment (line: string): string {
  return `# ${line}`.replace(/[\r\n]/g, ' ').trimEnd()
}

/**
 * Map hashes must hold the longest key: nginx's defaults (64-byte buckets, 2048 entries) refuse
 * long paths ("could not build map_hash"). Set only when needed: they may appear once per http {}.
 */
function hashSizes (files: SiteFile[]): string {
  const longest = Math.max(0, ...files.map(f => Buffer.byteLength(f.path) + 1))
  const bucket = powerOfTwoAtLeast(longest + 32)
  const size = powerOfTwoAtLeast(files.length * 2)
  const lines: string[] = []
  if (bucket > 64) lines.push(`map_hash_bucket_size ${bucket};`)
  if (size > 2048) lines.push(`map_hash_max_size ${size};`)
  return lines.length === 0 ? '' : '# Long or many paths: larger map hashes than the defaults (set them once per http {}).\n' + lines.join('\n') + '\n'
}

function powerOfTwoAtLeast (n: number): number {
  let p = 64
  while (p < n) p *= 2
  return p
}

/** Headers that nginx makes itself (types, charset) or that are added per response below. */
const NOT_MAPPED = new Set(['content-type'])

interface Groups {
  /** Path → group number (1…); 0 is a file added after the export. */
  byPath: Map<string, number>
  /** Group number → its headers. */
  headers: Array<Record<string, string>>
}

/** Files with identical headers share a group; numbered in path order, so the output is deterministic. */
function groupFiles (site: Site, files: SiteFile[]): Groups {
  const ids = new Map<string, number>()
  const headers: Array<Record<string, string>> = [unlistedHeaders(site)]
  const byPath = new Map<string, number>()
  for (const file of files) {
    const own = Object.fromEntries(Object.entries(file.headers).filter(([name]) => !NOT_MAPPED.has(name)))
    const key = JSON.stringify(own)
    let id = ids.get(key)
    if (id === undefined) { id = headers.length; ids.set(key, id); headers.push(own) }
    byPath.set('/' + file.path, id)
  }
  return { byPath, headers }
}

/** A file the export did not see: revalidated, with the headers every exported file has (CORS, CORP). */
function unlistedHeaders (site: Site): Record<string, string> {
  const [first, ...rest] = site.files
  const shared: Record<string, string> = {}
  for (const [name, value] of Object.entries(first?.headers ?? {})) {
    if (!NOT_MAPPED.has(name) && name !== 'cache-control' && rest.every(f => f.headers[name] === value)) shared[name] = value
  }
  return { ...shared, 'cache-control': 'no-cache' }
}

function maps (site: Site, files: SiteFile[], spaPage: string | undefined): string {
  const groups = groupFiles(site, files)
  const out: string[] = [
    '# "$" in a value: nginx has no escape for it in strings, a geo value is taken literally.',
    'geo $ws_dollar { default "$"; }',
    '',
    '# The file a GET or HEAD names ($uri is decoded, and after an index or SPA redirect names the file sent).',
    '# A preflight and a redirect get none of a file\'s headers (a 304 keeps them).',
    'map "$request_method $status" $ws_file { "~^OPTIONS " ""; "~ 30[1278]$" ""; default $uri; }',
    block('map $ws_file $ws_group', [['default', '0'], ['""', '""'], ...[...groups.byPath].map(([path, id]) => [str(path), String(id)] as [string, string])]),
  ]
  for (const [i, name] of headerNames(groups).entries()) {
    const entries = groups.headers.flatMap((h, id) => h[name] === undefined ? [] : [[String(id), value(h[name])] as [string, string]])
    out.push(block(`map $ws_group ${headerVar(i, name)}`, [['default', '""'], ...entries]))
  }
  out.push(...decodedLengthMaps(files), ...directMaps(files), ...methodMaps(site), ...corsMaps(site))
  if (spaPage !== undefined) out.push(...spaMaps())
  return out.join('\n') + '\n'
}

function headerNames (groups: Groups): string[] {
  return [...new Set(groups.headers.flatMap(h => Object.keys(h)))].sort(compare)
}

function headerVar (i: number, name: string): string {
  return `$ws_h${i}_${name.replace(/[^a-z0-9]/g, '_')}`
}

/** D5: X-Decoded-Content-Length only when the response went out encoded, read when headers are sent. */
function decodedLengthMaps (files: SiteFile[]): string[] {
  const sized = files.filter(f => f.decodedSize !== undefined && (f.encodings.length > 0 || f.direct !== undefined))
  if (sized.length === 0) return []
  return [
    '',
    '# D5: the decoded size, sent only on an encoded response (gzip_static, brotli_static or a direct sibling set Content-Encoding).',
    block('map $uri $ws_decoded_size', [['default', '""'], ...sized.map(f => [str('/' + f.path), String(f.decodedSize)] as [string, string])]),
    'map $sent_http_content_encoding $ws_x_decoded_content_length { "" ""; default $ws_decoded_size; }',
  ]
}

/** D3: `game.wasm.br` asked for by name is labelled br when br is accepted, else sent raw from @ws_raw. */
function directMaps (files: SiteFile[]): string[] {
  const direct = files.filter(f => f.direct !== undefined)
  if (direct.length === 0) return []
  const codings = [...new Set(direct.map(f => f.direct!))].sort(compare)
  return [
    '',
    '# D3: siblings asked for by name (Unity\'s Build/*.wasm.br), labelled with their coding unless sent raw.',
    block('map $uri $ws_direct', [['default', '""'], ...direct.map(f => [str('/' + f.path), f.direct!] as [string, string])]),
    'map $ws_raw $ws_content_encoding { "" $ws_direct; default ""; }',
    ...codings.map(c => block(`map $http_accept_encoding $ws_accepts_${c}`, [['default', '""'], [str(`~*${acceptsPattern(c)}`), '1']])),
  ]
}

/** A token in Accept-Encoding with a q-value above 0 (RFC 9110 §12.5.3); `*` is not counted. */
function acceptsPattern (coding: string): string {
  return `(?:^|,)\\s*${ACCEPT_TOKEN[coding]!}\\s*(?:;\\s*q\\s*=\\s*(?:1(?:\\.0{0,3})?|0?\\.\\d{0,2}[1-9])\\s*)?(?:,|$)`
}

/** D17: GET and HEAD (and OPTIONS with CORS); anything else 405 with Allow. */
function methodMaps (site: Site): string[] {
  const allow = site.opts.cors === false ? 'GET, HEAD' : 'GET, HEAD, OPTIONS'
  const entries: Array<[string, string]> = [['default', str(allow)], ['GET', '""'], ['HEAD', '""']]
  if (site.opts.cors !== false) entries.push(['OPTIONS', str(allow)])
  return ['', '# D17: the Allow header, on a 405 and on a preflight.', block('map $request_method $ws_allow', entries),
    block('map $request_method $ws_method_ok', [['default', '""'], ['GET', '1'], ['HEAD', '1'], ...(site.opts.cors !== false ? [['OPTIONS', '1'] as [string, string]] : [])])]
}

/** D13: the echo of an allowed Origin (a list), and the preflight's headers (src/cors.ts). */
function corsMaps (site: Site): string[] {
  const cors = site.opts.cors
  if (cors === false) return []
  const list = cors.origin === '*' ? undefined : [...cors.origin].sort(compare)
  const origin = list === undefined
    ? 'map $http_origin $ws_origin { "" ""; default "*"; }'
    : block('map $http_origin $ws_origin', [['default', '""'], ...list.map(o => [str(o), '$http_origin'] as [string, string])])
  return [
    '',
    '# D13: CORS. A preflight (OPTIONS with an allowed Origin) gets 204 with the methods, the asked headers and a day of caching.',
    origin,
    'map "$request_method:$ws_origin" $ws_preflight { default ""; "~^OPTIONS:." 1; }',
    'map $ws_preflight $ws_preflight_origin { "" ""; default $ws_origin; }',
    'map $ws_preflight $ws_preflight_methods { "" ""; default "GET, HEAD, OPTIONS"; }',
    'map $ws_preflight $ws_preflight_headers { "" ""; default $http_access_control_request_headers; }',
    'map $ws_preflight $ws_preflight_max_age { "" ""; default 86400; }',
    ...(list === undefined
      ? []
      : [
          '# A list of origins: the echo goes on every file response; a preflight varies on Origin.',
          'map $ws_file $ws_file_origin { "" ""; default $ws_origin; }',
          'map $request_method $ws_preflight_vary { OPTIONS Origin; default ""; }',
        ]),
  ]
}

/** D15: extension-less paths (the last segment has no ".") from a request that accepts HTML (src/plugin.ts spaFallback). */
function spaMaps (): string[] {
  return [
    '',
    '# D15: the SPA page only for an extension-less path and a request that accepts HTML.',
    'map $uri $ws_no_extension { default ""; "~^(?:.*/)?[^/.]+/*$" 1; "~^/*$" 1; }',
    'map $http_accept $ws_accepts_html { default ""; "~text/html|application/xhtml\\+xml" 1; }',
    'map "$ws_no_extension$ws_accepts_html" $ws_spa { default ""; 11 1; }',
  ]
}

function server (site: Site, files: SiteFile[], spaPage: string | undefined): string {
  const groups = groupFiles(site, files)
  const names = headerNames(groups)
  const cors = site.opts.cors
  const lines: string[] = [
    'server {',
    '    listen 8080;',
    `    root ${value(site.root)};`,
    '    # Redirects (/dir → /dir/) with a relative Location, as wasm-serve sends them (D14).',
    '    absolute_redirect off;',
    '    index index.html;',
    '    autoindex off;',
    '',
    '    # D1: the exact types wasm-serve sends; a charset only on the text types (never on application/wasm).',
    ...typesBlock(files).map(l => '    ' + l),
    '',
    '    # D3: precompressed siblings, chosen per request; nothing is compressed on the fly (gzip off).',
    '    # Vary comes from the per-file headers below (gzip_vary off), so only files with siblings Vary (D7).',
    '    gzip off;',
    '    gzip_vary off;',
    '    gzip_static on;',
    '    brotli_static on;',
    '',
    '    set $ws_raw "";',
    '    # D17: other methods get 405 with Allow.',
    '    if ($ws_method_ok = "") { return 405; }',
    ...(cors !== false ? ['    if ($request_method = OPTIONS) { return 204; }'] : []),
    '',
    '    # Every header here, none in a location: a location with add_header would drop these.',
    ...names.map((name, i) => `    add_header ${headerName(name)} ${headerVar(i, name)};`),
    '    add_header Allow $ws_allow always;',
    ...(files.some(f => f.decodedSize !== undefined && (f.encodings.length > 0 || f.direct !== undefined)) ? ['    add_header X-Decoded-Content-Length $ws_x_decoded_content_length;'] : []),
    ...(files.some(f => f.direct !== undefined) ? ['    add_header Content-Encoding $ws_content_encoding;'] : []),
    ...(cors !== false
      ? [
          '    add_header Access-Control-Allow-Origin $ws_preflight_origin;',
          '    add_header Access-Control-Allow-Methods $ws_preflight_methods;',
          '    add_header Access-Control-Allow-Headers $ws_preflight_headers;',
          '    add_header Access-Control-Max-Age $ws_preflight_max_age;',
          ...(cors.origin !== '*' ? ['    add_header Access-Control-Allow-Origin $ws_file_origin;', '    add_header Vary $ws_preflight_vary;'] : []),
        ]
      : []),
    '',
    ...locations(site, files, spaPage).map(l => l === '' ? '' : '    ' + l),
    '}',
  ]
  return lines.join('\n') + '\n'
}

/** Canonical capitalisation for the header names nginx sends (HTTP names are case-insensitive). */
function headerName (name: string): string {
  const special: Record<string, string> = { etag: 'ETag' }
  return special[name] ?? name.split('-').map(w => w.charAt(0).toUpperCase() + w.slice(1)).join('-')
}

/** One entry per extension present; types with `; charset=utf-8` also get charset_types. */
function typesBlock (files: SiteFile[]): string[] {
  const byExt = new Map<string, string>()
  for (const file of files) {
    if (file.direct !== undefined) continue
    const name = file.path.slice(file.path.lastIndexOf('/') + 1)
    const dot = name.lastIndexOf('.')
    if (dot <= 0) continue
    byExt.set(name.slice(dot + 1).toLowerCase(), file.type)
  }
  const types = [...byExt].sort(([a], [b]) => compare(a, b)).map(([ext, type]) => `    ${type.split(';')[0]!} ${str(ext)};`)
  const charset = [...new Set([...byExt.values()].filter(t => /;\s*charset=utf-8/i.test(t)).map(t => t.split(';')[0]!))].filter(t => t !== 'text/html').sort(compare)
  return [
    'types {', ...types, '}',
    'default_type application/octet-stream;',
    'charset utf-8;',
    // text/html is always in charset_types (nginx docs, ngx_http_charset_module).
    ...(charset.length > 0 ? [`charset_types ${charset.join(' ')};`] : []),
  ]
}

function locations (site: Site, files: SiteFile[], spaPage: string | undefined): string[] {
  const out: string[] = []
  out.push(
    '# Misses: the SPA page where D15 allows it, else 404 (a directory without index.html too: nginx says 403).',
    'location / {',
    '    error_page 403 404 = @ws_miss;',
    '}',
    'location @ws_miss {',
    ...(spaPage !== undefined ? ['    if ($ws_spa = "") { return 404; }', `    rewrite ^ ${value(spaPage)} last;`] : ['    return 404;']),
    '}'
  )
  if (site.opts.dotfiles === 'deny') {
    out.push('', '# D14: dotfiles and dot-directories are 404, except .well-known at the top (RFC 8615).', 'location ~ "^/\\.(?!well-known(?:/|$))|^/.+/\\." {', '    return 404;', '}')
  }
  out.push('', '# Build-time deltas (<module>.<16 hex>.dcz|dcb) are never served as files (D18).', 'location ~* "\\.[0-9a-f]{16}\\.dc[zb]$" {', '    return 404;', '}')
  const direct = files.filter(f => f.direct !== undefined)
  if (direct.length > 0) {
    out.push('', '# D3: a sibling asked for by name: the original\'s type with its coding, or the raw bytes to a client that does not accept it.')
    for (const file of direct) {
      out.push(
        `location = ${str('/' + file.path)} {`,
        `    types { } default_type ${file.type.split(';')[0]!};`,
        '    error_page 418 = @ws_raw;',
        `    if ($ws_accepts_${file.direct!} = "") { return 418; }`,
        '}'
      )
    }
    out.push('location @ws_raw {', '    set $ws_raw 1;', '    types { } default_type application/octet-stream;', '}')
  }
  return out
}

/** A map or block body, one entry a line. */
function block (head: string, entries: Array<[string, string]>): string {
  return [`${head} {`, ...entries.map(([k, v]) => `    ${k} ${v};`), '}'].join('\n')
}

/** A literal in nginx's grammar: double-quoted, with `"` and `\` escaped (nginx docs, "Configuration file measurement units" and the parser's escapes). */
function str (s: string): string {
  return `"${s.replace(/[\\"]/g, '\\$&')}"`
}

/** A value nginx compiles as a script: also every `$` written as the geo variable that holds one. */
function value (s: string): string {
  return str(s).replace(/\$/g, '$' + '{ws_dollar}')
}
