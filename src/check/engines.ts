/**
 * The server behind a URL, recognised from its `Server` header (and wasm-serve, which sends none, from
 * its content ETags and decoded lengths), and the fix for each rule in that engine's terms: nginx
 * directives, a Caddyfile line, a `_headers` file, S3 object metadata. Where `wasm-serve export`
 * writes the whole configuration for the engine, the fix says so.
 */
import type { IncomingHttpHeaders } from 'node:http'
import { header } from './http.js'
import type { RuleId } from './rules.js'

export type Engine = 'wasm-serve' | 'nginx' | 'caddy' | 'apache' | 'cloudflare' | 'netlify' | 'vercel' | 's3' | 'github-pages' | 'litespeed' | 'iis'

const BY_SERVER: Array<[RegExp, Engine]> = [
  [/^nginx|openresty/i, 'nginx'],
  [/^caddy/i, 'caddy'],
  [/^apache/i, 'apache'],
  [/^cloudflare/i, 'cloudflare'],
  [/^netlify/i, 'netlify'],
  [/^vercel/i, 'vercel'],
  [/^amazons3/i, 's3'],
  [/^github\.com/i, 'github-pages'],
  [/^litespeed/i, 'litespeed'],
  [/^microsoft-iis/i, 'iis'],
]

/** wasm-serve's ETag: 27 base64url characters of SHA-256 (D6 in docs/delivery.md). */
const WASM_SERVE_ETAG = /^"[A-Za-z0-9_-]{27}"$/

export function recogniseEngine (headers: IncomingHttpHeaders): Engine | undefined {
  const server = header(headers, 'server')
  if (server !== undefined) return BY_SERVER.find(([re]) => re.test(server.trim()))?.[1]
  const etag = header(headers, 'etag')
  if (etag !== undefined && WASM_SERVE_ETAG.test(etag) && header(headers, 'accept-ranges') === 'bytes') return 'wasm-serve'
  return undefined
}

/** `wasm-serve export --target` names, where one exists for the engine. */
const EXPORT_TARGET: Partial<Record<Engine, string>> = { nginx: 'nginx', caddy: 'caddy', netlify: 'netlify', cloudflare: 'cloudflare-pages', vercel: 'vercel', s3: 's3' }

type Fixes = Partial<Record<Engine | 'any', string>>

const HEADERS_FILE = 'in _headers: a block for the path with the header'

const FIXES: Partial<Record<RuleId, Fixes>> = {
  reachable: { any: 'make the URL answer 200 (check the path, the deploy, and any redirect loop)' },
  'content-type': {
    any: 'serve .wasm as exactly "application/wasm", no charset or other parameter',
    nginx: 'types { application/wasm wasm; } and no charset for it (charset_types must not list application/wasm)',
    caddy: 'header *.wasm Content-Type application/wasm',
    apache: 'AddType application/wasm .wasm (and no AddDefaultCharset for it)',
    netlify: `${HEADERS_FILE} Content-Type: application/wasm`,
    cloudflare: `${HEADERS_FILE} Content-Type: application/wasm`,
    s3: 'upload with --content-type application/wasm (aws s3 cp … --content-type application/wasm)',
  },
  encoding: {
    any: 'precompress modules (wasm-serve compress <dir>) and serve the siblings for the coding asked; never encode for a request without Accept-Encoding',
    nginx: 'gzip_static on; brotli_static on; (ngx_brotli) with siblings from wasm-serve compress',
    caddy: 'file_server { precompressed br zstd gzip } with siblings from wasm-serve compress',
    apache: 'mod_brotli/mod_deflate with AddOutputFilterByType for application/wasm, or RewriteRule to .br siblings',
  },
  'q-values': { any: 'negotiate by q-value (RFC 9110 §12.5.3): a coding with q=0 is refused, never matched by substring' },
  'content-length': {
    any: 'send encoded modules from precompressed files, whose length is known (on-the-fly compression goes chunked)',
    nginx: 'gzip_static on; brotli_static on; instead of gzip on; (which streams chunked)',
    caddy: 'file_server { precompressed br zstd gzip } instead of encode (which streams chunked), on a Caddy that has caddyserver/caddy#7251 (merged September 2025): older ones send precompressed files chunked too',
  },
  vary: {
    any: 'send Vary: Accept-Encoding on every response of a file that has encodings',
    nginx: 'gzip_vary on;',
    caddy: 'file_server precompressed adds Vary itself; for encode, header Vary Accept-Encoding',
    apache: 'Header append Vary Accept-Encoding',
  },
  etag: {
    any: 'give each encoding its own ETag (a hash of its bytes), or a weak one',
    nginx: 'etag on; with precompressed siblings (each file has its own ETag)',
  },
  'not-modified': { any: 'answer If-None-Match with the current ETag by 304 (RFC 9110 §13.1.2)' },
  range: {
    any: 'answer Range over the identity bytes with 206 and Content-Range (RFC 9110 §14)',
    nginx: 'leave max_ranges unset (ranges are on by default for static files)',
  },
  head: { any: 'answer HEAD with the headers GET would send (RFC 9110 §9.3.2)' },
  'cache-policy': {
    any: 'hashed names: Cache-Control: public, max-age=31536000, immutable; other modules and pages: no-cache',
    nginx: 'location ~ \\.[0-9a-f]{8,}\\. { add_header Cache-Control "public, max-age=31536000, immutable"; } and add_header Cache-Control no-cache; for the rest',
    caddy: 'header /assets/* Cache-Control "public, max-age=31536000, immutable" and header *.html Cache-Control no-cache',
    netlify: `${HEADERS_FILE} Cache-Control`,
    cloudflare: `${HEADERS_FILE} Cache-Control`,
    s3: 'upload with --cache-control per file (no-cache for pages)',
  },
  preload: {
    any: 'Link: <module.wasm>; rel=preload; as=fetch; crossorigin on the page (crossorigin: fetch() is a CORS request, w3c/preload#100)',
    nginx: 'add_header Link "</app.wasm>; rel=preload; as=fetch; crossorigin"; in the page\'s location',
    caddy: 'header /index.html Link "</app.wasm>; rel=preload; as=fetch; crossorigin"',
    netlify: `${HEADERS_FILE} Link: </app.wasm>; rel=preload; as=fetch; crossorigin`,
    cloudflare: `${HEADERS_FILE} Link: </app.wasm>; rel=preload; as=fetch; crossorigin (Cloudflare turns it into 103 Early Hints)`,
    'wasm-serve': '--preload /app.wasm (or a route\'s preload)',
  },
  isolation: {
    any: 'send Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp (or credentialless) on the page; cross-origin modules need CORS or Cross-Origin-Resource-Policy: cross-origin',
    nginx: 'add_header Cross-Origin-Opener-Policy same-origin always; add_header Cross-Origin-Embedder-Policy require-corp always;',
    caddy: 'header Cross-Origin-Opener-Policy same-origin and header Cross-Origin-Embedder-Policy require-corp',
    netlify: `${HEADERS_FILE}s Cross-Origin-Opener-Policy and Cross-Origin-Embedder-Policy`,
    cloudflare: `${HEADERS_FILE}s Cross-Origin-Opener-Policy and Cross-Origin-Embedder-Policy`,
    'github-pages': 'GitHub Pages cannot set headers: use coi-serviceworker, or a host that can',
    'wasm-serve': '--isolate',
  },
  'secure-context': { any: 'serve the page over HTTPS (browsers treat only https and localhost as secure contexts)' },
  cors: {
    any: 'Access-Control-Allow-Origin for the pages that use the module, and Access-Control-Expose-Headers: X-Decoded-Content-Length',
    nginx: 'add_header Access-Control-Allow-Origin * always; add_header Access-Control-Expose-Headers X-Decoded-Content-Length always;',
    caddy: 'header Access-Control-Allow-Origin * and header Access-Control-Expose-Headers X-Decoded-Content-Length',
    'wasm-serve': '--cors',
  },
  'early-hints': {
    any: 'send the page\'s preload links in a 103 Early Hints response (RFC 8297; Chrome uses it over HTTP/2)',
    // Neither sends a 103 of its own for a static page: Caddy relays one from a proxied backend
    // (caddyserver/caddy#4860), and a CDN such as Cloudflare makes one from the page's Link header.
    nginx: 'nginx makes no 103 for a static page; put a CDN that turns Link into Early Hints (Cloudflare) in front',
    caddy: 'Caddy relays a backend\'s 103 but makes none for a static page (caddyserver/caddy#4860); a CDN in front can',
    cloudflare: 'turn on Early Hints (Speed › Optimization); it sends the Link headers of the page as 103',
    'wasm-serve': '--early-hints',
  },
  'decoded-length': { any: 'send X-Decoded-Content-Length: <identity size> with encoded modules, so progress can end at 100 % (whatwg/fetch#1358)' },
  dotfiles: {
    any: 'refuse dotfiles and dot-directories with 404 (and remove them from the deploy)',
    nginx: 'location ~ /\\. { return 404; }',
    caddy: '@dot path */.* and respond @dot 404',
    apache: 'RedirectMatch 404 /\\.',
  },
  'spa-fallback': {
    any: 'answer a missing file with an extension 404; keep the SPA fallback for extension-less paths that accept HTML',
    nginx: 'location ~ \\.\\w+$ { try_files $uri =404; } before the try_files … /index.html fallback',
    caddy: 'try_files {path} /index.html only for paths without a dot: @route not path *.* then try_files',
    netlify: 'in _redirects: /* /index.html 200 applies only to missing files; do not rewrite *.wasm',
  },
}

/**
 * What an engine's exported configuration cannot do either (the warnings `wasm-serve export` prints
 * for it): the export is not offered as the fix for these.
 */
const BEYOND_EXPORT: Partial<Record<Engine, RuleId[]>> = {
  nginx: ['early-hints'],
  caddy: ['early-hints', 'content-length', 'decoded-length'],
  netlify: ['early-hints', 'decoded-length', 'spa-fallback', 'encoding', 'content-length'],
  cloudflare: ['decoded-length', 'spa-fallback', 'encoding', 'content-length'],
  vercel: ['early-hints', 'decoded-length', 'encoding', 'content-length'],
  s3: ['early-hints', 'decoded-length', 'spa-fallback', 'encoding', 'vary', 'isolation', 'preload'],
}

/** The fix for `rule` on this engine, with the export command where it would fix it. */
export function fixFor (rule: RuleId, engine: Engine | undefined): string {
  const fixes = FIXES[rule] ?? {}
  const specific = engine === undefined ? undefined : fixes[engine]
  const text = specific !== undefined ? `${engine}: ${specific}` : fixes.any ?? 'see docs/delivery.md'
  const target = engine === undefined ? undefined : EXPORT_TARGET[engine]
  const exportable = rule !== 'reachable' && rule !== 'secure-context' && rule !== 'q-values' && rule !== 'not-modified' && rule !== 'head' &&
    !(engine !== undefined && BEYOND_EXPORT[engine]?.includes(rule) === true)
  return target !== undefined && exportable ? `${text} (or: wasm-serve export --target ${target} <dir>)` : text
}
