/**
 * The one way a test waits for something to happen: ask again until the answer is there, with a
 * deadline, rather than sleeping for a time that is too short on a loaded machine and wasted on an
 * idle one.
 */
import { setTimeout as sleep } from 'node:timers/promises'

type Truthy<T> = Exclude<T, false | 0 | '' | null | undefined>

export interface UntilOptions {
  /** How long to keep asking, in ms (default 5000). */
  timeout?: number
  /** What is awaited, for the error; a function is read when the time is up (e.g. a process's output). */
  what?: string | (() => string)
  /** The pause between two questions, in ms (default 20). */
  interval?: number
}

/**
 * Resolves with the first truthy value `check` returns (it may be async), or rejects once `timeout`
 * has passed without one, saying what was awaited.
 */
export async function until<T> (check: () => T | Promise<T>, { timeout = 5000, what = 'a condition', interval = 20 }: UntilOptions = {}): Promise<Truthy<T>> {
  const deadline = Date.now() + timeout
  for (;;) {
    const value = await check()
    if (value) return value as Truthy<T>
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${typeof what === 'function' ? what() : what}`)
    await sleep(interval)
  }
}
