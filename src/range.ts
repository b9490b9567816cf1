/**
 * `Range: bytes=…` (RFC 9110 §14.1.2) for one representation size. One satisfiable range gives
 * {start, end}; several ranges, or a header that does not parse, give undefined (the whole file is
 * sent, which §14.2 allows); a syntactically valid but unsatisfiable one gives 'unsatisfiable' (416).
 */
export function parseRange (header: string, size: number): { start: number, end: number } | 'unsatisfiable' | undefined {
  const m = /^\s*bytes\s*=\s*([^,]*)$/i.exec(header)
  if (m === null) return undefined
  const spec = /^(\d*)\s*-\s*(\d*)$/.exec(m[1]!.trim())
  if (spec === null) return undefined
  const [, first = '', last = ''] = spec
  if (first === '' && last === '') return undefined
  if (first === '') {
    const suffix = Number(last)
    if (suffix === 0 || size === 0) return 'unsatisfiable'
    return { start: Math.max(0, size - suffix), end: size - 1 }
  }
  const start = Number(first)
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1)
  if (last !== '' && Number(last) < start) return undefined
  if (start >= size) return 'unsatisfiable'
  return { start, end }
}
