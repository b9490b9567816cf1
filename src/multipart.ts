/**
 * `multipart/byteranges` bodies (RFC 9110 §14.6, §15.3.7.2) for a request for several ranges (D8 in
 * docs/delivery.md), laid out as nginx lays them out: every part opens with CRLF, the boundary
 * line, its own Content-Type and Content-Range and an empty line; the body ends with the closing
 * boundary line. The layout (the part headers and the file spans between them) is made before a
 * byte is read, so the response has an exact Content-Length (D5), and the same layout is cut from
 * a file in memory or streamed from disk span by span (file-body.ts), never reading the rest.
 */
import { randomBytes } from 'node:crypto'
import type { ByteRange } from './range.js'

/** A body as a sequence of file spans and the literal bytes between them. */
export type Piece = ByteRange | Buffer

export interface Multipart {
  /** The response's Content-Type, naming the boundary. */
  type: string
  /** The exact length of the body. */
  length: number
  pieces: Piece[]
}

export function multipart (ranges: readonly ByteRange[], size: number, type: string): Multipart {
  // 128 random bits, new for every response: no file can be made to hold the boundary of a response
  // not yet sent, which a fixed or counted boundary (nginx's) does not promise (RFC 2046 §5.1.1).
  const boundary = randomBytes(16).toString('hex')
  const pieces: Piece[] = []
  let length = 0
  for (const range of ranges) {
    const head = Buffer.from(`\r\n--${boundary}\r\nContent-Type: ${type}\r\nContent-Range: bytes ${range.start}-${range.end}/${size}\r\n\r\n`, 'latin1')
    pieces.push(head, range)
    length += head.length + range.end - range.start + 1
  }
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`, 'latin1')
  pieces.push(tail)
  return { type: `multipart/byteranges; boundary=${boundary}`, length: length + tail.length, pieces }
}

/** The whole body, cut from the bytes of a file held in memory. */
export function joinPieces (pieces: readonly Piece[], bytes: Buffer): Buffer {
  return Buffer.concat(pieces.map(piece => Buffer.isBuffer(piece) ? piece : bytes.subarray(piece.start, piece.end + 1)))
}

export const isSpan = (piece: Piece): piece is ByteRange => !Buffer.isBuffer(piece)
