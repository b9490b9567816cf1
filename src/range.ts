/**
 * `Range: bytes=…` (RFC 9110 §14.1.2) for one representation size (D8 in docs/delivery.md). The
 * answer is the satisfiable ranges in ascending order, overlapping and adjacent ones merged (§15.3.7
 * allows it whatever order they were asked in), so one range stays one range and several cannot
 * ask for a byte twice; 'unsatisfiable' (416) when none is satisfiable; undefined when the header
 * is ignored and the whole file sent (§14.2 allows it): it does not parse, a range ends before it
 * starts (§14.1.1 makes the whole set invalid), or it lists more than MAX_RANGES ranges.
 */
export interface ByteRange { start: number, end: number }

/**
 * More range-specs than this are ignored: §14.2 names many small ranges as a sign of a broken
 * client or an attack. Apache httpd's MaxRanges default; range readers (SQLite over HTTP,
 * DuckDB-wasm, Emscripten's lazy files) ask for one at a time.
 */
export const MAX_RANGES = 200

export function parseRanges (header: string, size: number): ByteRange[] | 'unsatisfiable' | undefined {
  const m = /^\s*bytes\s*=(.*)$/i.exec(header)
  if (m === null) return undefined
  // A list may hold empty elements, which a recipient must accept and skip (RFC 9110 §5.6.1).
  const specs = m[1]!.split(',').map(s => s.trim()).filter(s => s !== '')
  if (specs.length === 0 || specs.length > MAX_RANGES) return undefined
  const ranges: ByteRange[] = []
  for (const spec of specs) {
    const range = parseSpec(spec, size)
    if (range === undefined) return undefined
    if (range !== 'unsatisfiable') ranges.push(range)
  }
  return ranges.length === 0 ? 'unsatisfiable' : ranges.length === 1 ? ranges : coalesce(ranges)
}

/** One `first-last`, `first-` or `-suffix`, clamped to the size. */
function parseSpec (spec: string, size: number): ByteRange | 'unsatisfiable' | undefined {
  const m = /^(\d*)\s*-\s*(\d*)$/.exec(spec)
  if (m === null) return undefined
  const [, first = '', last = ''] = m
  if (first === '' && last === '') return undefined
  if (first === '') {
    const suffix = Number(last)
    if (suffix === 0 || size === 0) return 'unsatisfiable'
    return { start: Math.max(0, size - suffix), end: size - 1 }
  }
  const start = Number(first)
  if (last !== '' && Number(last) < start) return undefined
  if (start >= size) return 'unsatisfiable'
  return { start, end: last === '' ? size - 1 : Math.min(Number(last), size - 1) }
}

function coalesce (ranges: ByteRange[]): ByteRange[] {
  const sorted = ranges.sort((a, b) => a.start - b.start)
  const merged = [sorted[0]!]
  for (const range of sorted.slice(1)) {
    const last = merged[merged.length - 1]!
    if (range.start <= last.end + 1) last.end = Math.max(last.end, range.end)
    else merged.push(range)
  }
  return merged
}
