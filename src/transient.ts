/**
 * Failures that mean "not now" rather than "no such file": out of file descriptors, a file that is
 * being rewritten faster than it can be read. A file that exists is never answered 404 because of
 * one, and never dropped from the catalog: the request gets 503 with Retry-After, and what was
 * being served stays served until the file can be read again.
 */
import { readFileSync } from 'node:fs'

/** Error codes of the system calls the server makes that clear up by themselves (or once the operator acts). */
const TRANSIENT = new Set(['EMFILE', 'ENFILE', 'EAGAIN', 'EBUSY', 'ENOMEM', 'EINTR', 'WASM_SERVE_CHANGING'])

export const isTransient = (err: unknown): boolean =>
  TRANSIENT.has(String((err as NodeJS.ErrnoException | undefined)?.code ?? ''))

/** Seconds a client is asked to wait (Retry-After) before trying again. */
export const RETRY_AFTER_S = 1

/** Thrown to the request that met a transient failure; the plugin answers it with 503. */
export class Unavailable extends Error {
  readonly code = 'WASM_SERVE_UNAVAILABLE'
  constructor (readonly reason: unknown) {
    super(`temporarily unavailable: ${(reason as Error).message}`)
  }
}

const LOG_EVERY_MS = 10_000

/**
 * Logs transient failures at most once every 10 s, with what to do about them and how many more
 * there were: out of descriptors, every request fails at once, and a line each would flood the log.
 */
export function transientLog (log: { warn: (obj: object, msg: string) => void }): (err: unknown, path: string) => void {
  let loggedAt = -Infinity
  let since = 0
  return (err, path) => {
    const now = Date.now()
    if (now - loggedAt < LOG_EVERY_MS) { since++; return }
    log.warn({ path, code: (err as NodeJS.ErrnoException).code, moreSinceLastLine: since }, `cannot read a file just now (503 with Retry-After meanwhile): ${remedy(err)}`)
    loggedAt = now
    since = 0
  }
}

/** What an operator should do about it, for the log line. */
function remedy (err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code
  if (code === 'EMFILE') return `out of file descriptors for this process (limit ${openFilesLimit() ?? 'unknown'}): raise it (ulimit -n, or --ulimit nofile= for a container) or lower limits.maxConnections`
  if (code === 'ENFILE') return 'the system is out of file descriptors (fs.file-max): raise it or lower limits.maxConnections'
  if (code === 'WASM_SERVE_CHANGING') return 'the file is being rewritten faster than it can be read; the previous version is served meanwhile'
  return 'a temporary failure; requests get 503 with Retry-After until it clears'
}

/**
 * The soft limit on open files, from /proc on Linux; undefined where unknown or unlimited. Read once,
 * at start-up: out of descriptors, /proc cannot be read either.
 */
export const openFilesLimit = (): number | undefined => LIMIT
const LIMIT = readOpenFilesLimit()

function readOpenFilesLimit (): number | undefined {
  try {
    const soft = /^Max open files\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1]
    return soft === undefined || soft === 'unlimited' ? undefined : Number(soft)
  } catch {
    return undefined
  }
}
