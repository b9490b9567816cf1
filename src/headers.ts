/**
 * Response headers of one representation, computed once when the catalog indexes a file (STYLE 6),
 * so that sending a response is copying a prepared object.
 */
import type { Representation } from './catalog.js'

export interface HeaderInput {
  rep: Representation
  type: string
  /** Identity size for encoded representations (X-Decoded-Content-Length, D5), when known. */
  decodedSize: number | undefined
  /** Vary: Accept-Encoding (D7) — on every response of a resource that has or could get encodings. */
  vary: boolean
  lastModifiedMs: number
  /** Route policy headers (D10–D13): identical on 200, 206, 304 and HEAD. */
  policy: Record<string, string>
}

export function buildHeaders (input: HeaderInput): Pick<Representation, 'headers' | 'notModified'> {
  const { rep, type, vary } = input
  // The policy may vary too (Origin, for a list of CORS origins): one Vary header naming both.
  const { vary: policyVary, ...policy } = input.policy
  const varies = [...(vary ? ['Accept-Encoding'] : []), ...(policyVary === undefined ? [] : [policyVary])]
  const validators: Record<string, string> = {
    'content-type': type,
    etag: rep.etag,
    'last-modified': new Date(input.lastModifiedMs).toUTCString(),
    ...(varies.length > 0 ? { vary: varies.join(', ') } : {}),
    ...policy,
  }
  const headers: Record<string, string> = {
    ...validators,
    'accept-ranges': 'bytes',
    'content-length': String(rep.size),
  }
  if (rep.coding !== 'identity') {
    headers['content-encoding'] = rep.coding
    // whatwg/fetch#1358: Content-Length counts encoded bytes, response.body yields decoded ones, so a
    // progress bar needs the decoded size to end at exactly 100 % (emscripten#24144, ffmpeg.wasm#803).
    if (input.decodedSize !== undefined) headers['x-decoded-content-length'] = String(input.decodedSize)
  }
  return { headers, notModified: validators }
}
