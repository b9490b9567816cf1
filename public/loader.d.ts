// Types for the wasm-serve loader (public/loader.js), also exported as `wasm-serve/loader`.

/** One progress event. `loaded` counts decoded bytes (what `response.body` yields). */
export interface WasmProgress {
  loaded: number;
  /** Decoded size, or undefined when unknown (indeterminate). Never less than `loaded`. */
  total: number | undefined;
  /** True on the last event, which always has `loaded === total`. */
  done: boolean;
}

export interface LoadWasmOptions {
  onProgress?: (progress: WasmProgress) => void;
  signal?: AbortSignal;
  /** Extra attempts after a network error or a 502/503/504 (default 2). Never after a 4xx. */
  retries?: number;
  /** First backoff delay in ms, doubled per attempt, capped at 5 s (default 300). */
  retryDelay?: number;
  /** Passed to fetch (e.g. `{ cache: 'reload' }`, `{ integrity }`); `signal` is added. */
  init?: RequestInit;
  /** Injected fetch (tests, service workers). Default: globalThis.fetch. */
  fetch?: (input: string, init?: RequestInit) => Promise<Response>;
}

/** An import object, or a function that builds it from the compiled module. */
export type WasmImports = WebAssembly.Imports | ((module: WebAssembly.Module) => WebAssembly.Imports)

export interface LoadedWasm {
  instance: WebAssembly.Instance;
  module: WebAssembly.Module;
  /** The original response (its body is consumed); read its headers. */
  response: Response;
  url: string;
  status: number;
  contentType: string;
  /** `Content-Encoding` ('br', 'gzip', 'zstd', 'identity'), or undefined when hidden cross-origin. */
  encoding: string | undefined;
  /** `Content-Length` header: bytes on the wire for the body (encoded size). */
  contentLength: number | undefined;
  /** The decoded total announced before the download, if any. */
  total: number | undefined;
  /** Decoded bytes actually received. */
  decodedSize: number;
  /** True when compiled with instantiateStreaming/compileStreaming (code cache eligible). */
  streamed: boolean;
  /** Number of attempts it took (1 without retries). */
  attempts: number;
  /** Resource Timing entry, when the runtime records one (browsers). */
  resource: PerformanceResourceTiming | undefined;
  /** Resource Timing transferSize: 0 when served from the HTTP cache. */
  transferSize: number | undefined;
  /** Resource Timing encodedBodySize. */
  encodedSize: number | undefined;
  /** 'cache' (HTTP cache, no request), 'revalidated' (304), 'network' (full 200); undefined if unknown. */
  cache: 'cache' | 'revalidated' | 'network' | undefined;
  /** performance.now() marks: request start, headers received, last byte read, instance ready. */
  timing: { start: number; headers: number; downloaded: number; ready: number };
}

export declare class WasmLoadError extends Error {
  name: 'WasmLoadError'
  url: string | undefined
  /** HTTP status when the server answered with a non-ok status. */
  status: number | undefined
  retryable: boolean
}

/**
 * Fetches, compiles (streaming when the server sends `Content-Type: application/wasm`) and
 * instantiates a module, reporting decoded-byte progress that ends at exactly 100 %.
 * Rejects with a WasmLoadError on a non-ok status or a body that is not wasm, with the signal's
 * reason on abort, and with WebAssembly.CompileError/LinkError for a broken module or imports.
 */
export declare function loadWasm (url: string | URL, imports?: WasmImports, options?: LoadWasmOptions): Promise<LoadedWasm>

/** True only for exactly `application/wasm` (no parameters), as streaming compilation requires. */
export declare function isWasmType (contentType: string | null | undefined): boolean

export interface WasmFeatures {
  simd: boolean;
  relaxedSimd: boolean;
  /** Shared memory + atomics validate AND SharedArrayBuffer is available (cross-origin isolated). */
  threads: boolean;
  /** Legacy exception handling (`try`/`catch`, Emscripten -fwasm-exceptions). */
  exceptions: boolean;
  /** Final exception handling (`try_table`, exnref). */
  exnref: boolean;
  tailCall: boolean;
  bulkMemory: boolean;
  signExtension: boolean;
  memory64: boolean;
  gc: boolean;
}

export type WasmFeature = keyof WasmFeatures

/** Synchronous feature detection with tiny WebAssembly.validate probes. */
export declare function detectFeatures (): WasmFeatures

/**
 * Returns the first variant (in object order) whose required features are all supported.
 * Throws when none fits; end the list with a variant that requires nothing.
 */
export declare function pickVariant<K extends string> (
  variants: Record<K, readonly WasmFeature[]>,
  features?: Partial<WasmFeatures>,
): K
