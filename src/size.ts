/**
 * The one size grammar, for every option and flag that takes a size (`memoryBudget`,
 * `--memory-budget`, `compress.minSize`, `wasm-serve compress --min-size`): a byte count, or a number
 * (decimals allowed) with a unit, in any case, with or without a space: `1024`, `64MB`, `1.5MiB`,
 * `512 kb`, `100 bytes`. Units: B or bytes, KB, MB, GB, TB, PB, and KiB … PiB.
 *
 * Every multiple is binary: KB = KiB = 1024 bytes, MB = MiB = 1024². That is how the `bytes` package
 * (which does the arithmetic) reads KB, and what `memoryBudget: "256MB"` has always meant; reading
 * KiB the same way means a user never has to know which convention is in force.
 */
import bytes from 'bytes'
import { totalmem } from 'node:os'

/** The grammar as a JSON Schema `pattern` (no regex flags there, hence the explicit cases). */
export const SIZE_PATTERN = '^\\s*\\d+(\\.\\d+)?\\s*(([kKmMgGtTpP][iI]?)?[bB]|[bB][yY][tT][eE][sS]?)?\\s*$'
const SIZE = new RegExp(SIZE_PATTERN)

/** What a size may look like, for error messages and doc text. */
export const SIZE_EXPECTED = 'a byte count or a size like 64MB, 1.5MiB or "512 KB" (KB = KiB = 1024 bytes)'

/** The size in whole bytes, or undefined when `value` is not a size (or more than 2^53 bytes). */
export function parseSize (value: string | number): number | undefined {
  const size = bytesIn(value)
  return size !== undefined && Number.isSafeInteger(size) ? size : undefined
}

/**
 * A size that bounds something (`memoryBudget`, `compress.cacheMaxSize`): like parseSize, but more
 * than 2^53 bytes ("9999999TB", 1e30) reads as Number.MAX_SAFE_INTEGER, no bound in practice. A
 * memory budget is then capped to what the machine has (budgetWithinMachine).
 */
export function parseLimit (value: string | number): number | undefined {
  const size = bytesIn(value)
  return size === undefined ? undefined : Math.min(size, Number.MAX_SAFE_INTEGER)
}

/** Whole bytes, however many, or undefined when `value` is not a size. */
function bytesIn (value: string | number): number | undefined {
  if (typeof value === 'string') {
    if (!SIZE.test(value)) return undefined
    // `bytes` knows B and KB…PB only: it would read "1KiB" or "1 bytes" with parseInt, as 1.
    value = Math.floor(bytes.parse(value.trim().replace(/i?b(ytes?)?$/i, 'B')) ?? NaN)
  }
  return Number.isInteger(value) && value >= 0 ? value : value === Infinity ? Infinity : undefined
}

/** Bytes of memory this process can have: its cgroup's limit where there is one, else the machine's RAM. */
export function machineMemory (): number {
  const total = totalmem()
  // Without a limit, Node returns 0, undefined or 2^64 depending on the version and the cgroup.
  const constrained = process.constrainedMemory?.() ?? 0
  return constrained > 0 && constrained < total ? constrained : total
}

/** A memory budget above what the machine has is capped to it, with one warning naming both numbers. */
export function budgetWithinMachine (budget: number, log: { warn: (obj: object, msg: string) => void }): number {
  const available = machineMemory()
  if (budget <= available) return budget
  log.warn({ memoryBudget: budget, available }, `memoryBudget ${bytes.format(budget)} is more than this machine has (${bytes.format(available)}); using ${bytes.format(available)}`)
  return available
}
