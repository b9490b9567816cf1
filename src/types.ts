/**
 * The plain data every stage passes along (walk → index → catalog → send): what a served file is and
 * how each of its representations goes out. Kept apart from the modules that build and use it, so
 * none of them imports another's internals.
 */
import type { Coding } from './encodings.js'
import type { FileStamp } from './file-identity.js'

export interface FilePolicy {
  /** Headers for every response for the file: 200, 206, 304 and HEAD alike. */
  headers: Record<string, string>
  /** Preload link values for HTML responses (also sent as 103 Early Hints when on). */
  links: string[]
  /** Headers sent over HTTPS only (Strict-Transport-Security, D19), added per request. */
  https?: Record<string, string>
}

export interface Logger {
  info: (obj: object, msg: string) => void
  warn: (obj: object, msg: string) => void
  debug: (obj: object, msg: string) => void
}

/** The bytes of one representation, as read from disk or made on the fly, before headers. */
export interface Loaded {
  coding: Coding
  /** Absolute path of the bytes on disk ('' for an encoding kept in memory only). */
  file: string
  size: number
  /** The file the bytes came from, checked again before they are streamed (D16); null when only in memory. */
  stamp: FileStamp | null
  etag: string
  /** The bytes when held in memory; null means stream them from `file`. */
  body: Buffer | null
  /** The full sha256 of the bytes, where the file was read from the root (a dictionary's name, RFC 9842). */
  sha256?: Buffer
}

export interface Representation extends Loaded {
  /** Headers of a 200 (and HEAD) response with this representation. */
  headers: Record<string, string>
  /** Headers of a 304 for this representation (D6: ETag, Cache-Control, Vary, type; no length). */
  notModified: Record<string, string>
}

export interface Asset {
  /** Path relative to the root, `/`-separated. */
  path: string
  /** Representations in server preference order; identity (or the raw bytes of a sibling) last. */
  reps: Representation[]
  codings: Coding[]
  /** The bytes ranges are cut from (D8): the identity representation. */
  identity: Representation
  lastModifiedMs: number
  policy: FilePolicy
  isHtml: boolean
  type: string
  /** Whether the server may encode it on the fly (D4): compressible, and not a sibling itself. */
  compressible: boolean
}
