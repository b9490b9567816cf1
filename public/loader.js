// wasm-serve loader: fetch + compile + instantiate a WebAssembly module the way browsers reward.
// Dependency-free ES module; types in loader.d.ts. Works in browsers, workers and Node >= 20.
//
// Why it is built this way (the server's side is docs/delivery.md in the wasm-serve repository, D1 and D5):
// - It hands the ORIGINAL Response to instantiateStreaming/compileStreaming. Chrome's compiled-code
//   cache only applies to those streaming APIs on a network Response; a `new Response(stream)` built
//   in JS gets no code cache. Progress is counted on `response.clone()` instead (a tee of the body).
// - `response.body` yields DECODED bytes while Content-Length is the ENCODED size (whatwg/fetch#1358),
//   which is why progress bars elsewhere stop at 40 % or exceed 100 % (emscripten#24144,
//   ffmpeg.wasm#803, aspnetcore#46549). The total comes from X-Decoded-Content-Length (sent by
//   wasm-serve on encoded responses), else Content-Length when the response is not encoded, else
//   progress is indeterminate. The last progress event always has loaded === total.

const WASM_MAGIC = [0x00, 0x61, 0x73, 0x6d]
const RETRYABLE_STATUS = new Set([502, 503, 504])
const MAX_RETRY_DELAY = 5000

/** Error for everything that is the server's fault rather than the module's. */
export class WasmLoadError extends Error {
  constructor (message, { url, status, cause, retryable = false } = {}) {
    super(message, cause === undefined ? undefined : { cause })
    this.name = 'WasmLoadError'
    this.url = url
    this.status = status
    this.retryable = retryable
  }
}

/**
 * Fetches, compiles and instantiates a module.
 * `imports` is an import object, or a function `(module) => importObject` (the module is then
 * compiled with compileStreaming first, so its imports can be inspected before instantiating).
 */
export async function loadWasm (url, imports = {}, options = {}) {
  const opts = {
    fetch: globalThis.fetch.bind(globalThis),
    retries: 2,
    retryDelay: 300,
    ...options,
    warned: false,
  }
  const href = String(url)
  for (let attempt = 0; ; attempt++) {
    throwIfAborted(opts.signal)
    try {
      const result = await loadOnce(href, imports, opts)
      return { ...result, attempts: attempt + 1 }
    } catch (err) {
      if (opts.signal?.aborted) throw opts.signal.reason ?? err
      if (!isRetryable(err) || attempt >= opts.retries) throw err
      await sleep(Math.min(opts.retryDelay * 2 ** attempt, MAX_RETRY_DELAY), opts.signal)
    }
  }
}

async function loadOnce (url, imports, opts) {
  const start = now()
  let response
  try {
    response = await opts.fetch(url, { ...opts.init, signal: opts.signal })
  } catch (err) {
    throw networkError(url, err)
  }
  const headersAt = now()
  if (!response.ok) {
    throw new WasmLoadError(
      `Could not load WebAssembly module ${url}: HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ''}`,
      { url, status: response.status, retryable: RETRYABLE_STATUS.has(response.status) }
    )
  }
  const meta = describeResponse(response)
  const progress = progressReporter(opts.onProgress, meta.total)
  const streamable = meta.wasmType && typeof WebAssembly.compileStreaming === 'function'
  if (!meta.wasmType) warnWrongType(url, meta.contentType, opts)
  const loaded = streamable
    ? await compileStreamed(url, response, { imports, progress })
    : await compileBuffered(url, response, { imports, progress, contentType: meta.contentType })
  const readyAt = loaded.readyAt ?? now()
  const resource = await findResourceTiming(response.url || url)
  return {
    instance: loaded.instance,
    module: loaded.module,
    response,
    url: response.url || url,
    status: response.status,
    contentType: meta.contentType,
    encoding: meta.encoding,
    contentLength: meta.contentLength,
    total: meta.total,
    decodedSize: loaded.bytes,
    streamed: streamable,
    ...resourceFacts(resource),
    timing: { start, headers: headersAt, downloaded: loaded.downloadedAt, ready: readyAt },
  }
}

/** What the headers say about the body. Content-Encoding is not CORS-safelisted: cross-origin it
 *  is invisible unless exposed, so there `encoding` is undefined (unknown) and Content-Length,
 *  which may be the encoded size, is not trusted as a decoded total. */
function describeResponse (response) {
  const h = response.headers
  const contentType = h.get('content-type') ?? ''
  const rawEncoding = h.get('content-encoding')?.trim().toLowerCase() || null
  const crossOrigin = response.type === 'cors'
  const encoding = rawEncoding ?? (crossOrigin ? undefined : 'identity')
  const contentLength = toLength(h.get('content-length'))
  const decodedLength = toLength(h.get('x-decoded-content-length'))
  const total = decodedLength ?? (encoding === 'identity' ? contentLength : undefined)
  return { contentType, encoding, contentLength, total, wasmType: isWasmType(contentType) }
}

/** WebAssembly web API: the type must be exactly application/wasm — no parameters, not even `;`. */
export function isWasmType (contentType) {
  return typeof contentType === 'string' && contentType.trim().toLowerCase() === 'application/wasm'
}

function toLength (value) {
  if (value === null || !/^\s*\d+\s*$/.test(value)) return undefined
  return Number(value)
}

function warnWrongType (url, contentType, opts) {
  if (opts.warned) return
  opts.warned = true
  console.warn(
    `[wasm-serve loader] ${url} was served with Content-Type "${contentType || '(none)'}": streaming ` +
      'compilation needs exactly "Content-Type: application/wasm" (no charset). Falling back to ' +
      'arrayBuffer() + WebAssembly.instantiate, which is slower and skips the compiled-code cache. ' +
      'Fix the server to send Content-Type: application/wasm.'
  )
}

/** Streaming path: compile the original response, count bytes on a clone. */
async function compileStreamed (url, response, { imports, progress }) {
  const counter = countBody(response.clone().body, progress)
  const compiling = typeof imports === 'function'
    ? WebAssembly.compileStreaming(response).then(async (module) => ({
      module,
      instance: await WebAssembly.instantiate(module, imports(module)),
    }))
    : WebAssembly.instantiateStreaming(response, imports)
  let compiled
  try {
    compiled = await compiling
    compiled.readyAt = now()
  } catch (err) {
    const seen = await counter.stop(err)
    if (seen.readError) throw networkError(url, seen.readError)
    if (!seen.isWasm) throw notWasmError(url, response.headers.get('content-type'), seen.head, err)
    throw err
  }
  const counted = await counter.done.catch((err) => {
    throw networkError(url, err)
  })
  return { ...compiled, bytes: counted.bytes, downloadedAt: counted.endedAt }
}

/** Fallback path for a wrong Content-Type (or a runtime without compileStreaming). */
async function compileBuffered (url, response, { imports, progress, contentType }) {
  const chunks = []
  const counter = countBody(response.body, progress, (chunk) => chunks.push(chunk))
  const counted = await counter.done.catch((err) => {
    throw networkError(url, err)
  })
  if (!counted.isWasm) throw notWasmError(url, contentType, counted.head)
  const bytes = concat(chunks, counted.bytes)
  const module = await WebAssembly.compile(bytes)
  const importObject = typeof imports === 'function' ? imports(module) : imports
  const instance = await WebAssembly.instantiate(module, importObject)
  return { module, instance, bytes: counted.bytes, downloadedAt: counted.endedAt, readyAt: now() }
}

/**
 * Reads a body to the end, reporting progress and remembering the first bytes (to recognise an
 * HTML page served in place of a module). `done` resolves with the counts or rejects with the read
 * error; `stop(reason)` cancels the read and resolves (never rejects) with what was seen.
 */
function countBody (body, progress, onChunk) {
  const head = []
  let bytes = 0
  let stopped = false
  const reader = body?.getReader()
  const seen = () => ({ bytes, head, isWasm: head.length < 4 || isWasmHead(head) })
  const done = (async () => {
    progress(0, false)
    // eslint-disable-next-line no-unmodified-loop-condition -- cleared by abort(), from outside this loop
    while (reader) {
      const { value, done: end } = await reader.read()
      if (end) break
      for (let i = 0; head.length < 4 && i < value.length; i++) head.push(value[i])
      bytes += value.length
      onChunk?.(value)
      progress(bytes, false)
    }
    if (!stopped) progress(bytes, true)
    return { ...seen(), isWasm: isWasmHead(head), endedAt: now() }
  })()
  done.catch(() => {}) // observed later (by `done` or `stop`); never an unhandled rejection
  const stop = async (reason) => {
    stopped = true
    reader?.cancel(reason).catch(() => {})
    // After cancel() pending reads resolve as done, so a rejection here is a genuine read error.
    return done.then(seen, (readError) => ({ ...seen(), readError }))
  }
  return { done, stop }
}

function isWasmHead (head) {
  return head.length === 4 && head.every((b, i) => b === WASM_MAGIC[i])
}

/** Progress events: loaded never exceeds total; the final event has loaded === total. */
function progressReporter (onProgress, declaredTotal) {
  let total = declaredTotal
  return (loaded, done) => {
    if (total !== undefined && loaded > total) total = undefined // the header lied: say "unknown"
    if (!onProgress) return
    onProgress({ loaded, total: done ? loaded : total, done })
  }
}

function notWasmError (url, contentType, head, cause) {
  const text = String.fromCharCode(...head.filter((b) => b >= 0x20 && b < 0x7f))
  return new WasmLoadError(
    `${url} is not a WebAssembly module (Content-Type "${contentType || '(none)'}", starts with ` +
      `${JSON.stringify(text)} instead of "\\0asm"); is the server answering a missing file with an HTML page?`,
    { url, cause }
  )
}

function networkError (url, cause) {
  if (cause instanceof WasmLoadError || cause?.name === 'AbortError') return cause
  return new WasmLoadError(`Network error while loading ${url}: ${cause?.message ?? cause}`, {
    url,
    cause,
    retryable: true,
  })
}

function isRetryable (err) {
  return err instanceof WasmLoadError && err.retryable
}

function concat (chunks, length) {
  if (chunks.length === 1) return chunks[0]
  const out = new Uint8Array(length)
  let offset = 0
  for (const c of chunks) {
    out.set(c, offset)
    offset += c.length
  }
  return out
}

function throwIfAborted (signal) {
  if (signal?.aborted) throw signal.reason ?? new DOMException('The operation was aborted.', 'AbortError')
}

function sleep (ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    function onAbort () {
      clearTimeout(timer)
      reject(signal.reason)
    }
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

function now () {
  return globalThis.performance?.now() ?? Date.now()
}

/** The Resource Timing entry of the response, if the runtime records one (browsers do). It is
 *  queued at the end of the response, so give it one task to appear. */
async function findResourceTiming (url) {
  const perf = globalThis.performance
  if (typeof perf?.getEntriesByName !== 'function' || !URL.canParse?.(url, globalThis.location?.href)) return undefined
  const abs = new URL(url, globalThis.location?.href).href
  for (let i = 0; i < 2; i++) {
    const entries = perf.getEntriesByName(abs, 'resource')
    if (entries.length) return entries[entries.length - 1]
    await new Promise((resolve) => setTimeout(resolve, 0))
  }
  return undefined
}

/** transferSize 0 with a body = served from the HTTP cache; headers-only transfer = 304. Both are
 *  0 cross-origin without Timing-Allow-Origin, hence `cache: undefined` then. */
function resourceFacts (entry) {
  if (!entry) return { resource: undefined, transferSize: undefined, encodedSize: undefined, cache: undefined }
  const { transferSize, encodedBodySize, decodedBodySize } = entry
  let cache
  if (decodedBodySize > 0) {
    if (transferSize === 0) cache = 'cache'
    else if (transferSize < encodedBodySize) cache = 'revalidated'
    else cache = 'network'
  }
  return { resource: entry, transferSize, encodedSize: encodedBodySize, cache }
}

// ---------------------------------------------------------------------------------------------
// Feature detection: tiny modules that only validate when the engine supports the feature.
// Each is a type section `() -> ()` (or as noted), one function, and a body using the feature.

const HEADER = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]
const VOID_FN = [0x01, 0x04, 0x01, 0x60, 0x00, 0x00, 0x03, 0x02, 0x01, 0x00]

function moduleWith (sections, body) {
  const code = [0x00, ...body, 0x0b] // no locals, body, end
  const codeSection = [0x01, code.length, ...code]
  return new Uint8Array([...HEADER, ...VOID_FN, ...sections, 0x0a, codeSection.length, ...codeSection])
}

const PROBES = {
  // v128.const 0 ; drop
  simd: () => moduleWith([], [0xfd, 0x0c, ...new Array(16).fill(0), 0x1a]),
  // v128.const 0 x3 ; i8x16.relaxed_laneselect ; drop
  relaxedSimd: () =>
    moduleWith([], [
      ...[0, 1, 2].flatMap(() => [0xfd, 0x0c, ...new Array(16).fill(0)]),
      0xfd, 0x89, 0x02, 0x1a,
    ]),
  // shared memory (min 1, max 1) ; i32.const 0 ; i32.atomic.load ; drop
  threads: () => moduleWith([0x05, 0x04, 0x01, 0x03, 0x01, 0x01], [0x41, 0x00, 0xfe, 0x10, 0x02, 0x00, 0x1a]),
  // try (legacy exception handling, what Emscripten -fwasm-exceptions emits) ; end
  exceptions: () => moduleWith([], [0x06, 0x40, 0x0b]),
  // try_table (exnref, the final exception-handling proposal) with no catches ; end
  exnref: () => moduleWith([], [0x1f, 0x40, 0x00, 0x0b]),
  // return_call 0
  tailCall: () => moduleWith([], [0x12, 0x00]),
  // memory (min 1) ; memory.fill 0 0 0
  bulkMemory: () => moduleWith([0x05, 0x03, 0x01, 0x00, 0x01], [0x41, 0x00, 0x41, 0x00, 0x41, 0x00, 0xfc, 0x0b, 0x00]),
  // i32.const 0 ; i32.extend8_s ; drop
  signExtension: () => moduleWith([], [0x41, 0x00, 0xc0, 0x1a]),
  // memory64 (flags 0x04, min 1) ; i64.const 0 ; i32.load ; drop
  memory64: () => moduleWith([0x05, 0x03, 0x01, 0x04, 0x01], [0x42, 0x00, 0x28, 0x02, 0x00, 0x1a]),
  // ref.null struct ; drop (WasmGC abstract heap type 0x6b)
  gc: () => moduleWith([], [0xd0, 0x6b, 0x1a]),
}

/** Which WebAssembly features this engine supports. `threads` also requires SharedArrayBuffer,
 *  which browsers only expose to cross-origin isolated pages (COOP + COEP). Synchronous. */
export function detectFeatures () {
  const features = {}
  for (const [name, probe] of Object.entries(PROBES)) {
    try {
      features[name] = WebAssembly.validate(probe())
    } catch {
      features[name] = false
    }
  }
  features.threads &&= typeof SharedArrayBuffer === 'function' && globalThis.crossOriginIsolated !== false
  return features
}

/**
 * Picks the first variant whose required features are all supported, e.g.
 * `pickVariant({ 'app.simd-threads.wasm': ['simd', 'threads'], 'app.simd.wasm': ['simd'], 'app.wasm': [] })`.
 * Order is preference. Throws if none fits (end the list with a variant that needs nothing).
 */
export function pickVariant (variants, features = detectFeatures()) {
  for (const [name, required] of Object.entries(variants)) {
    if (required.every((f) => features[f] === true)) return name
  }
  const missing = Object.entries(variants).map(([n, r]) => `${n} needs ${r.filter((f) => !features[f]).join(', ')}`)
  throw new Error(`No WebAssembly variant fits this browser: ${missing.join('; ')}`)
}
