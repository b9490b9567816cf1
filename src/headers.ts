/**
 * Representations are built here, and only here: the bytes (from the loader or the on-the-fly
 * encoder) plus every response header, computed once when the file is indexed, so that sending a
 * response is copying a prepared object.
 */
import type { Loaded, Representation } from './types.js'

interface HeaderInput {
  type: string
  /** Identity size for encoded representations (X-Decoded-Content-Length, D5), when known. */
  decodedSize: number | undefined
  /** Vary: Accept-Encoding (D7) — on every response of a resource that has or could get encodings. */
  vary: boolean
  lastModifiedMs: number
  /** Route policy headers (D10–D13): identical on 200, 206, 304 and HEAD. */
  policy: Record<string, string>
}

export function representation (loaded: Loaded, input: HeaderInput): Representation {
  const { coding, file, size, stamp, etag, body, sha256 } = loaded
  // The policy may vary too (Origin, for a list of CORS origins): one Vary header naming both.
  const { vary: policyVary, ...policy } = input.policy
  const varies = [...(input.vary ? ['Accept-Encoding'] : []), ...(policyVary === undefined ? [] : [policyVary])]
  const notModified: Record<string, string> = {
    'content-type': input.type,
    etag,
    'last-modified': new Date(input.lastModifiedMs).toUTCString(),
    ...(varies.length > 0 ? { vary: varies.join(', ') } : {}),
    ...policy,
  }
  const headers: Record<string, string> = {
    ...notModified,
    'accept-ranges': 'bytes',
    'content-length': String(size),
  }
  if (coding !== 'identity') {
    headers['content-encoding'] = coding
    // whatwg/fetch#1358: Content-Length counts encoded bytes, response.body yields decoded ones, so a
    // progress bar needs the decoded size to end at exactly 100 % (emscripten#24144, ffmpeg.wasm#803).
    if (input.decodedSize !== undefined) headers['x-decoded-content-length'] = String(input.decodedSize)
  }
  return { coding, file, size, stamp, etag, body, sha256, headers, notModified }
}
