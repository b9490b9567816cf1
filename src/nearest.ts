/**
 * What the user meant, for messages: the known name nearest to a mistyped one ("did you mean
 * --isolate?": a flag, an option key, a value), and the allowed values listed. Used by the CLI's
 * usage errors and the options' unknown keys; a few lines rather than a dependency.
 */

/**
 * The candidate nearest to `word`: the closest by edit distance (an adjacent swap counts one, case is
 * ignored), or the only one `word` begins; undefined when nothing is close (within a third of the
 * word, at least one edit, unless `slack` says otherwise).
 */
export function nearest (word: string, candidates: readonly string[], slack = Math.max(1, Math.floor(word.length / 3))): string | undefined {
  const w = word.toLowerCase()
  let best: { candidate: string, distance: number } | undefined
  for (const candidate of candidates) {
    const distance = editDistance(w, candidate.toLowerCase())
    if (distance <= slack && (best === undefined || distance < best.distance)) best = { candidate, distance }
  }
  if (best !== undefined) return best.candidate
  const prefixed = w.length >= 3 ? candidates.filter(c => c.toLowerCase().startsWith(w)) : []
  return prefixed.length === 1 ? prefixed[0] : undefined
}

/** Optimal string alignment distance: Levenshtein plus adjacent transpositions ("prot" → "port" is 1). */
function editDistance (a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => i === 0 ? j : j === 0 ? i : 0))
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1)
    }
  }
  return d[a.length]![b.length]!
}

/** "a or b", "a, b or c": no comma after the last, so a following ", got …" reads apart. */
export function oneOf (values: readonly string[]): string {
  return values.length < 2 ? values.join('') : `${values.slice(0, -1).join(', ')} or ${values.at(-1)!}`
}
