/**
 * The content hash behind every ETag (D6): sha256, base64url, first 27 characters (160 bits). One
 * recipe: the on-the-fly cache compares hashes made while encoding with the catalog's ETags.
 */
import { createHash, type Hash } from 'node:crypto'

export const digestOf = (hash: Hash): string => hash.digest('base64url').slice(0, 27)

export const hashBuffer = (buf: Buffer): string => digestOf(createHash('sha256').update(buf))
