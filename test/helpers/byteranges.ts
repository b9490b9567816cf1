/**
 * A strict reader of `multipart/byteranges` bodies (RFC 9110 §14.6, RFC 2046 §5.1.1), for tests of
 * responses to several ranges (D8): parts are found by their boundary, never by the lengths the
 * server announces, so a wrong Content-Range or a body that runs into the next delimiter fails.
 */
export interface Part {
  /** Header lines of the part, by lower-case name. */
  headers: Record<string, string>
  start: number
  end: number
  /** The complete length the part's Content-Range names. */
  size: number
  body: Buffer
}

export function parseByteranges (contentType: string | undefined, body: Buffer): Part[] {
  const m = /^multipart\/byteranges\s*;\s*boundary=(?:"([^"]+)"|([^\s;]+))\s*$/i.exec(contentType ?? '')
  if (m === null) throw new Error(`not multipart/byteranges: ${String(contentType)}`)
  const boundary = m[1] ?? m[2]!
  if (boundary.length > 70) throw new Error(`a boundary may have at most 70 characters (RFC 2046 §5.1.1): ${boundary}`)
  // The CRLF before a boundary line belongs to the delimiter; one is put in front so the first line matches like the others.
  const text = Buffer.concat([Buffer.from('\r\n'), body])
  const delimiter = Buffer.from(`\r\n--${boundary}`, 'latin1')
  let at = text.indexOf(delimiter)
  if (at === -1) throw new Error('no boundary line in the body')
  const parts: Part[] = []
  for (;;) {
    at += delimiter.length
    if (text.subarray(at, at + 2).toString('latin1') === '--') {
      if (!/^\s*$/.test(text.subarray(at + 2).toString('latin1'))) throw new Error('bytes after the closing boundary')
      return parts
    }
    const lineEnd = text.indexOf('\r\n', at)
    if (lineEnd === -1 || !/^[ \t]*$/.test(text.subarray(at, lineEnd).toString('latin1'))) throw new Error('a boundary line is not ended by CRLF')
    const headEnd = text.indexOf('\r\n\r\n', lineEnd)
    const next = headEnd === -1 ? -1 : text.indexOf(delimiter, headEnd + 4)
    if (next === -1) throw new Error(`part ${parts.length + 1} is not followed by a boundary line`)
    const lines = headEnd === lineEnd ? [] : text.subarray(lineEnd + 2, headEnd).toString('latin1').split('\r\n')
    parts.push(part(lines, text.subarray(headEnd + 4, next)))
    at = next
  }
}

function part (lines: string[], body: Buffer): Part {
  const headers: Record<string, string> = {}
  for (const line of lines) {
    const colon = line.indexOf(':')
    if (colon <= 0) throw new Error(`not a header line: ${line}`)
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
  }
  const range = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(headers['content-range'] ?? '')
  if (range === null) throw new Error(`a part without a byte Content-Range: ${JSON.stringify(headers)}`)
  const [start, end, size] = range.slice(1).map(Number) as [number, number, number]
  if (body.length !== end - start + 1) throw new Error(`part ${start}-${end} has ${body.length} bytes`)
  return { headers, start, end, size, body }
}
