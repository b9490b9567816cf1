/**
 * Content codings wasm-serve knows, as a table (STYLE 5): the Accept-Encoding token and the file
 * suffix of a precompressed sibling. Order is server preference for ties (SPEC D2: br > zstd > gzip).
 */
export const ENCODINGS = [
  { token: 'br', suffix: '.br' },
  { token: 'zstd', suffix: '.zst' },
  { token: 'gzip', suffix: '.gz' },
] as const

export type EncodingToken = (typeof ENCODINGS)[number]['token']
export type Coding = EncodingToken | 'identity'

/** The encoding a sibling suffix stands for (`.br` → br), or undefined. */
export function encodingOfSuffix (name: string): (typeof ENCODINGS)[number] | undefined {
  return ENCODINGS.find(e => name.endsWith(e.suffix))
}
