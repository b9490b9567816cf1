/**
 * Every option wasm-serve has, defined once: type, default and doc text live in this JSON
 * Schema, written with TypeBox so the plugin's TypeScript types come from it too. It is used for
 * types only at run time: `npm run schema` writes it to src/options.schema.json, which the server
 * loads (TypeBox's modules cost 3–4 MB of RSS), and test/config.test.ts fails when the
 * two differ. The config-file validation, `config.example.json`, `--help` and the README's option
 * list all come from it.
 */
import { Type, type TSchema } from '@sinclair/typebox'
import { SIZE_EXPECTED, SIZE_PATTERN } from './size.js'

/** `expected` is our own keyword: the one-line description used in error messages for unions. */
const oneOf = <T extends TSchema[]>(schemas: [...T], expected: string, extra: object) =>
  Type.Union(schemas, { expected, ...extra })

/** A size: a byte count, or a string in the one size grammar of src/size.ts ("64MB", "1.5MiB"). */
const size = (extra: object) => oneOf([Type.Integer({ minimum: 0 }), Type.String({ pattern: SIZE_PATTERN })], SIZE_EXPECTED, extra)
const SIZE_DOC = 'A byte count or a size: B, KB, MB, GB, TB or KiB … TiB, any case, decimals allowed ("1.5MB"); KB = KiB = 1024 bytes.'

/** A match pattern: an absolute path with no control characters or double quotes (it goes into an sf-string). */
const DICTIONARY_PATTERN = '^/[^\\x00-\\x1f\\x7f"]*$'

/** A header value as Node sends it (RFC 9110 §5.5): tab, visible ASCII, Latin-1; never CR, LF or NUL. */
const HEADER_VALUE = '^[\\t\\x20-\\x7e\\x80-\\xff]*$'

/** Referrer-Policy tokens (w3c.github.io/webappsec-referrer-policy §3). */
const REFERRER_POLICIES = ['no-referrer', 'no-referrer-when-downgrade', 'same-origin', 'origin', 'strict-origin', 'origin-when-cross-origin', 'strict-origin-when-cross-origin', 'unsafe-url'] as const

export const Route = Type.Object({
  match: Type.String({ minLength: 1, description: 'Glob over the served file\'s path relative to the root (picomatch syntax), e.g. "**/*.html" or "assets/**". `/` is matched as "index.html".' }),
  cacheControl: Type.Optional(Type.String({ minLength: 1, description: 'Cache-Control value for matching files.' })),
  headers: Type.Optional(Type.Record(Type.String({ pattern: '^[!#$%&\'*+.^_`|~0-9A-Za-z-]+$' }), Type.String(), { description: 'Extra response headers for matching files. Names must be tokens; values may not contain CR, LF or NUL; hop-by-hop headers are refused.' })),
  preload: Type.Optional(Type.Array(Type.String({ pattern: '^/' }), { description: 'Absolute URL paths to announce with `Link: rel=preload` (rel=modulepreload for .js/.mjs) on matching HTML responses, and in a 103 when earlyHints is on.' })),
  dictionary: Type.Optional(Type.Union([Type.Literal(false), Type.String({ pattern: DICTIONARY_PATTERN }), Type.Object({
    match: Type.Optional(Type.String({ pattern: DICTIONARY_PATTERN })),
    id: Type.String({ minLength: 1, maxLength: 1024, pattern: '^[^\\x00-\\x1f\\x7f"\\\\]*$' }),
  }, { additionalProperties: false })], { description: 'Delta updates (RFC 9842) for matching modules: false to announce none; the match pattern to announce (URLPattern pathname, `*` wildcards), e.g. "/assets/app.*.wasm"; or { "match": …, "id": … } to announce an id too (browsers send it back as Dictionary-ID). By default a .wasm or JavaScript file announces its own path with its content hash as `*`.' })),
}, { additionalProperties: false })

export const OptionsSchema = Type.Object({
  root: Type.Optional(Type.Union([Type.String({ minLength: 1 }), Type.Null()], { default: null, description: 'Directory to serve. In a config file it is relative to the file. Without one the CLI serves its bundled demo.' })),
  host: Type.Optional(Type.String({ minLength: 1, default: '127.0.0.1', description: 'Address the CLI binds (env HOST). The Docker image sets 0.0.0.0.' })),
  port: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535, default: 8080, description: 'Port the CLI binds (env PORT); 0 picks a free one. When the default is taken the CLI says so and uses the next free one; a port asked for (flag, environment, config file) that is taken is an error (exit 1).' })),
  precompressed: Type.Optional(Type.Array(Type.Union([Type.Literal('br'), Type.Literal('zstd'), Type.Literal('gzip')]), { uniqueItems: true, default: ['br', 'zstd', 'gzip'], description: 'Which precompressed siblings (x.br, x.zst, x.gz) are served, in server preference order for q-value ties.' })),
  compress: Type.Optional(Type.Object({
    onTheFly: Type.Optional(Type.Boolean({ default: true, description: 'Compress compressible files that have no siblings, once, off the event loop, and cache the result.' })),
    minSize: Type.Optional(size({ default: 1024, description: `Files smaller than this are never encoded (they would grow). ${SIZE_DOC}` })),
    cacheDir: Type.Optional(Type.Union([Type.String({ minLength: 1 }), Type.Null()], { default: null, description: 'Where encodings made on the fly are kept beyond the memory budget; null means wasm-serve-cache-<uid> under the OS temp dir. Never inside the root; refused unless owned by this user and not writable by others.' })),
    cacheMaxSize: Type.Optional(size({ default: '512MB', description: `Bytes the cache directory may hold; beyond it the least recently used encodings are removed (never one being streamed from). ${SIZE_DOC}` })),
  }, { additionalProperties: false, default: {}, description: 'On-the-fly compression of files without siblings.' })),
  crossOriginIsolation: Type.Optional(oneOf([Type.Literal(false), Type.Literal(true), Type.Literal('require-corp'), Type.Literal('credentialless'), Type.Literal('document'), Type.Literal('document-credentialless'), Type.Literal('report')], 'false, true, "require-corp", "credentialless", "document", "document-credentialless" or "report"', { default: false, description: 'Make crossOriginIsolated true (wasm threads, SharedArrayBuffer). "require-corp" or "credentialless": COOP same-origin and that COEP on documents; "document" or "document-credentialless": Document-Isolation-Policy (isolate-and-require-corp or isolate-and-credentialless) on documents instead, which keeps popups and their openers working (Chromium 137+ only); "report": enforce nothing, send the Report-Only forms of COOP and COEP and log what would break, reported to the built-in report sink. Every mode sends CORP on assets. true means "require-corp", as the bare --isolate flag does.' })),
  cors: Type.Optional(oneOf([Type.Literal(false), Type.Object({
    origin: oneOf([Type.Literal('*'), Type.Array(Type.String({ pattern: '^https?://[A-Za-z0-9.\\-]+(:[0-9]{1,5})?$|^https?://\\[[0-9A-Fa-f:.]+\\](:[0-9]{1,5})?$' }), { minItems: 1 })], '"*" or a list of origins like "https://app.example"', {}),
  }, { additionalProperties: false }), Type.Literal(true)], 'false, true or { "origin": "*" | ["https://…"] }', { default: false, description: 'CORS for the served files: Access-Control-Allow-Origin, exposed X-Decoded-Content-Length and ETag, Timing-Allow-Origin, preflight answers. true means { "origin": "*" }, as the bare --cors flag does.' })),
  security: Type.Optional(oneOf([Type.Literal(false), Type.Literal(true), Type.Object({
    contentSecurityPolicy: Type.Optional(Type.Union([Type.Literal(false), Type.String({ minLength: 1, pattern: HEADER_VALUE })], { description: 'The Content-Security-Policy for HTML documents; false sends none. The default lets wasm compile (script-src \'self\' \'wasm-unsafe-eval\') and workers start from the site or blob: URLs; the hashes of each document\'s inline scripts are added to its script-src.' })),
    reportOnly: Type.Optional(Type.Boolean({ description: 'Send the policy as Content-Security-Policy-Report-Only, reporting to the built-in report sink: nothing is blocked, what would be is logged.' })),
    referrerPolicy: Type.Optional(Type.Union([Type.Literal(false), ...REFERRER_POLICIES.map(p => Type.Literal(p))], { description: 'Referrer-Policy on every file (default "strict-origin-when-cross-origin"); false sends none.' })),
    hsts: Type.Optional(Type.Union([Type.Literal(false), Type.Object({
      maxAge: Type.Optional(Type.Integer({ minimum: 0, description: 'Seconds (default 31536000, a year).' })),
      includeSubDomains: Type.Optional(Type.Boolean({ description: 'Default false: subdomains are other sites.' })),
      preload: Type.Optional(Type.Boolean({ description: 'Default false.' })),
    }, { additionalProperties: false })], { description: 'Strict-Transport-Security, sent over HTTPS only and never to localhost or an IP address; false sends none.' })),
    nosniff: Type.Optional(Type.Boolean({ description: 'X-Content-Type-Options: nosniff on every file (default true).' })),
    resourcePolicy: Type.Optional(Type.Union([Type.Literal(false), Type.Literal('same-origin'), Type.Literal('same-site'), Type.Literal('cross-origin')], { description: 'Cross-Origin-Resource-Policy on every file; by default "same-origin", or "cross-origin" when CORS is on.' })),
  }, { additionalProperties: false })], 'false, true or { "contentSecurityPolicy", "reportOnly", "referrerPolicy", "hsts", "nosniff", "resourcePolicy" }', { default: false, description: 'Security headers (CLI --secure): X-Content-Type-Options nosniff, Referrer-Policy and Cross-Origin-Resource-Policy on every file, HSTS over HTTPS, and on HTML documents a Content-Security-Policy under which wasm compiles. true means the defaults; an object tunes each; a route\'s headers override any of them, and an empty value drops one.' })),
  earlyHints: Type.Optional(Type.Boolean({ default: false, description: 'Send preload links first as a 103 Early Hints response (honoured by Chrome over HTTP/2).' })),
  preload: Type.Optional(Type.Array(Type.String({ pattern: '^/' }), { default: [], description: 'Preload links added to every HTML response (CLI --preload URL, repeatable), after any route preloads.' })),
  spa: Type.Optional(oneOf([Type.Literal(false), Type.Literal(true), Type.String({ pattern: '\\.html?$' })], 'false, true or the page to serve, e.g. "index.html"', { default: false, description: 'Answer unknown extension-less paths that accept HTML with this page. Paths with an extension are still 404. true means "index.html", as the bare --spa flag does.' })),
  dotfiles: Type.Optional(Type.Union([Type.Literal('deny'), Type.Literal('allow')], { default: 'deny', description: '"deny" answers 404 for any path with a segment starting with "." (except .well-known); "allow" serves them.' })),
  memoryBudget: Type.Optional(size({ default: '256MB', description: `Bytes of file contents (all representations) held in memory; larger files are streamed from disk with their known length. ${SIZE_DOC}` })),
  revalidate: Type.Optional(Type.Number({ minimum: 0, default: 2, description: 'Seconds between checks of every served file and directory against the disk, for what directory watchers miss (a directory replaced, the root re-pointed, the watch limit reached); content is never staler than this (or ten times one check\'s duration on a very large root). 0 turns the checks off.' })),
  dictionaries: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { default: [], description: 'Directories holding earlier releases of the served files (read, never served): a browser that holds one of their modules gets the new version as a delta against it (RFC 9842). Relative to the config file.' })),
  immutable: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { default: [], description: 'Globs (picomatch, over the path relative to the root) of files to serve "public, max-age=31536000, immutable" whatever their names (CLI --immutable GLOB, repeatable). A route with cacheControl and noCache win over it.' })),
  noCache: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { default: [], description: 'Globs of files to serve "no-cache" (revalidate every time) even when their names look hashed (CLI --no-cache GLOB, repeatable). Wins over immutable; a route with cacheControl wins over it.' })),
  routes: Type.Optional(Type.Array(Route, { default: [], description: 'Cache policy and extra headers by glob; the first matching route wins.' })),
  https: Type.Optional(oneOf([Type.Boolean(), Type.Object({
    cert: Type.String({ minLength: 1, description: 'PEM certificate file (chain), relative to the config file.' }),
    key: Type.String({ minLength: 1, description: 'PEM private key file, relative to the config file.' }),
  }, { additionalProperties: false })], 'false, true (a self-signed certificate for development) or { "cert": FILE, "key": FILE }', { default: false, description: 'Serve HTTPS with HTTP/2 (ALPN, HTTP/1.1 fallback). Chrome honours 103 Early Hints only over HTTP/2 and advertises br only to secure origins. true makes a self-signed certificate for local development.' })),
  limits: Type.Optional(Type.Object({
    headersTimeout: Type.Optional(Type.Number({ exclusiveMinimum: 0, default: 20, description: 'Seconds a client has to send its request headers; a slow sender (slowloris) is answered 408 and cut within this plus 2 s.' })),
    sendTimeout: Type.Optional(Type.Number({ exclusiveMinimum: 0, default: 60, description: 'Seconds a response may make no progress (a client that stops reading) before its connection (HTTP/1) or stream (HTTP/2) is cut, as nginx\'s send_timeout.' })),
    keepAliveTimeout: Type.Optional(Type.Number({ exclusiveMinimum: 0, default: 72, description: 'Seconds an idle keep-alive connection or HTTP/2 session stays open.' })),
    maxConnections: Type.Optional(Type.Union([Type.Integer({ minimum: 1 }), Type.Null()], { default: null, description: 'Connections served at once; more are refused (and logged). null: half the process\'s open-file limit less a reserve, at most 10,000 (each streamed response holds a file too).' })),
    maxStreams: Type.Optional(Type.Integer({ minimum: 1, default: 100, description: 'HTTP/2 streams one connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS).' })),
  }, { additionalProperties: false, default: {}, description: 'Limits that protect the CLI and Docker server from slow, stalled and greedy clients (the plugin leaves them to the app\'s Fastify options).' })),
  healthz: Type.Optional(Type.Boolean({ default: false, description: 'Answer GET /healthz: 200 with the number of files, 503 while the root is missing or empty (on in the CLI and Docker, off by default in the plugin).' })),
  healthzRequireFiles: Type.Optional(Type.Boolean({ default: true, description: 'GET /healthz answers 503 {"status":"empty"} while the root has no file to serve (a forgotten volume mount), as it does 503 {"status":"missing"} while the root is gone; false: an empty root is healthy.' })),
  methodNotAllowed: Type.Optional(Type.Boolean({ default: false, description: 'Answer other methods on static paths with 405 and Allow (on in the CLI and Docker; the plugin leaves the app\'s routes alone by default).' })),
  logLevel: Type.Optional(Type.Union([Type.Literal('fatal'), Type.Literal('error'), Type.Literal('warn'), Type.Literal('info'), Type.Literal('debug'), Type.Literal('trace'), Type.Literal('silent')], { default: 'info', description: 'CLI log level (pino); --quiet is "warn".' })),
  logFormat: Type.Optional(Type.Union([Type.Literal('auto'), Type.Literal('pretty'), Type.Literal('json')], { default: 'auto', description: 'CLI log lines: "pretty" (one human line per request, status coloured on a terminal unless NO_COLOR is set), "json" (pino JSON lines), or "auto": pretty when stdout is a terminal, JSON otherwise.' })),
  listing: Type.Optional(Type.Union([Type.Boolean(), Type.Null()], { default: null, description: 'Answer a directory URL without index.html with a listing of its files (HTML, or JSON on Accept: application/json; dotfiles never listed). null: on in the CLI, off in the plugin and the Docker image (WASM_SERVE_LISTING=false).' })),
  workers: Type.Optional(oneOf([Type.Integer({ minimum: 1, maximum: 1024 }), Type.Literal('auto')], 'an integer 1–1024 or "auto"', { default: 1, description: 'CLI: processes serving the one port (env WASM_SERVE_WORKERS). 1 is one process, as always; N or "auto" (one per core, os.availableParallelism()) starts a primary process that runs N workers, replaces one that crashes, and drains them all on SIGTERM/SIGINT; encodings made on the fly are made once, by one worker, and shared through the cache directory. In a container prefer replicas (README, "Workers").' })),
  open: Type.Optional(Type.Boolean({ default: false, description: 'CLI: open the local URL in the default browser once listening (xdg-open, open or start; WASM_SERVE_OPENER names another command).' })),
}, { additionalProperties: false })
