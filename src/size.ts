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

/** The grammar as a JSON Schema `pattern` (no regex flags there, hence the explicit cases). */
export const SIZE_PATTERN = '^\\s*\\d+(\\.\\d+)?\\s*(([kKmMgGtTpP][iI]?)?[bB]|[bB][yY][tT][eE][sS]?)?\\s*$'
const SIZE = new RegExp(SIZE_PATTERN)

/** What a size may look like, for error messages and doc text. */
export const SIZE_EXPECTED = 'a byte count or a size like 64MB, 1.5MiB or "512 KB" (KB = KiB = 1024 bytes)'

/** The size in whole bytes, or undefined when `value` is not a size (or more than 2^53 bytes). */
export function parseSize (value: string | number): number | undefined {
  if (typeof value === 'string') {
    if (!SIZE.test(value)) return undefined
    // `bytes` knows B and KB…PB only: it would read "1KiB" or "1 bytes" with parseInt, as 1.
    value = Math.floor(bytes.parse(value.trim().replace(/i?b(ytes?)?$/i, 'B')) ?? NaN)
  }
  return Number.isSafeInteger(value) && value >= 0 ? value : undefined
}
