/**
 * Unity WebGL's `.unityweb` files (D1, D3 in docs/delivery.md). With "Decompression Fallback" on,
 * Unity names every build file `<name>.<ext>.unityweb` whatever the compression: gzip, brotli or
 * none. The name says nothing about the encoding, so the first bytes are read, as Unity's own loader
 * does before it decompresses in JavaScript
 * (https://docs.unity3d.com/Manual/webgl-deploying.html, PlayerSettings.WebGL.decompressionFallback):
 *
 * - gzip: the magic 1f 8b and deflate (RFC 1952 §2.3.1); Unity also puts
 *   "UnityWeb Compressed Content (gzip)" in the FCOMMENT field, but any gzip member decodes the same.
 * - brotli has no magic number. Unity's compressor starts every file with a metadata meta-block
 *   (RFC 7932 §9.2, MNIBBLES 0) holding the text "UnityWeb Compressed Content (brotli)"; the loader
 *   recognises a file by that block, and so does this module. A brotli file without it stays identity.
 * - anything else is the file itself (compression "Disabled").
 */
import { open } from 'node:fs/promises'
import type { EncodingToken } from './encodings.js'

const SUFFIX = '.unityweb'
const BROTLI_MARKER = Buffer.from('UnityWeb Compressed Content (brotli)', 'latin1')
/** Enough for brotli's WBITS, the metadata header (at most 3 bytes here) and the marker. */
export const UNITYWEB_HEAD = 64

/** The name a `.unityweb` file stands for (`game.wasm.unityweb` → `game.wasm`), or undefined for any other name. */
export function unityWebInner (name: string): string | undefined {
  return name.toLowerCase().endsWith(SUFFIX) ? name.slice(0, -SUFFIX.length) : undefined
}

/** The content coding of a `.unityweb` file from its first bytes; undefined: not encoded (identity). */
export function sniffUnityWeb (head: Buffer): EncodingToken | undefined {
  if (head.length >= 3 && head[0] === 0x1f && head[1] === 0x8b && head[2] === 8) return 'gzip'
  return hasBrotliMarker(head) ? 'br' : undefined
}

/**
 * RFC 7932: the stream starts with WBITS (§9.1: 1, 4 or 7 bits), then Unity's metadata meta-block
 * header, least significant bit first: ISLAST 0, MNIBBLES "11" (value 3: a metadata block), a reserved
 * 0, MSKIPBYTES 1, MSKIPLEN-1 = 35 in one byte; padding to the byte boundary, then the 36 bytes.
 */
function hasBrotliMarker (head: Buffer): boolean {
  if (head.length === 0) return false
  const first = head[0]!
  const wbitsLength = (first & 1) === 0 ? 1 : (first & 0x0e) !== 0 ? 4 : 7
  const wbits = first & ((1 << wbitsLength) - 1)
  if (wbits === 0x11) return false // the 7-bit value 0010001 is invalid (§9.1)
  const header = wbits + ((0b110 | (1 << 4) | ((BROTLI_MARKER.length - 1) << 6)) << wbitsLength)
  const headerBytes = Math.ceil((wbitsLength + 14) / 8)
  if (head.length < headerBytes + BROTLI_MARKER.length) return false
  for (let i = 0; i < headerBytes; i++) if (head[i] !== ((header >>> (8 * i)) & 0xff)) return false
  return head.subarray(headerBytes, headerBytes + BROTLI_MARKER.length).equals(BROTLI_MARKER)
}

/** Reads a file's first bytes and sniffs them. */
export async function sniffUnityWebFile (file: string): Promise<EncodingToken | undefined> {
  const fh = await open(file, 'r')
  try {
    const { buffer, bytesRead } = await fh.read(Buffer.alloc(UNITYWEB_HEAD), 0, UNITYWEB_HEAD, 0)
    return sniffUnityWeb(buffer.subarray(0, bytesRead))
  } finally {
    await fh.close()
  }
}
