/**
 * Bounded concurrency for start-up's filesystem work. Each fs promise waits on libuv's thread pool
 * (4 threads by default); a few more in flight than threads keep the pool busy while the event loop
 * handles completions, and a bound keeps a root of 100,000 files from queuing 100,000 operations at once.
 */

/** A gate: `run(fn)` starts fn once fewer than `n` runs are under way. */
export function limiter (n: number): <T>(fn: () => Promise<T>) => Promise<T> {
  let active = 0
  // A queue with a moving head: Array#shift on 100,000 waiters (a walk queues one per file) is quadratic.
  let waiting: Array<() => void> = []
  let head = 0
  const handOver = () => {
    const next = waiting[head++]
    if (head === waiting.length) { waiting = []; head = 0 }
    return next
  }
  return async fn => {
    // A finished run hands its slot straight to the next waiter, so `n` is never exceeded.
    if (active < n) active++
    else await new Promise<void>(resolve => waiting.push(resolve))
    try { return await fn() } finally {
      const next = head < waiting.length ? handOver() : undefined
      if (next !== undefined) next()
      else active--
    }
  }
}

/** Calls `each` for every item, at most `n` at once (a steady pool, not batches that wait for their slowest). */
export async function forEachLimited<T> (items: readonly T[], n: number, each: (item: T) => Promise<void>): Promise<void> {
  let at = 0
  const worker = async () => { while (at < items.length) await each(items[at++]!) }
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker))
}
