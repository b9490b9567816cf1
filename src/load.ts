/**
 * Reading one file of the root into a representation's bytes: held in memory when the budget
 * allows, otherwise hashed by streaming and left on disk. The bytes and their hash are always of one
 * version of the file (D16 in docs/delivery.md).
 */
import { open, stat } from 'node:fs/promises'
import type { Coding } from './encodings.js'
import { hashHandle, sha256Async, tagOf } from './etag.js'
import { sameFile, stampOf, type FileStamp } from './file-identity.js'
import type { Loaded } from './types.js'
import type { FileFacts } from './walk.js'

/** A file modified this recently may still be being written (a copy in place truncates first). */
const QUIET_MS = 100
const SETTLE_MS = 40
const ATTEMPTS = 10
/**
 * fs.readFile refuses files of 2 GiB and more (ERR_FS_FILE_TOO_LARGE), whatever the memory budget:
 * such files are streamed like any file beyond the budget.
 */
export const MAX_IN_MEMORY = 2 ** 31 - 1

/**
 * Reads (or hashes) a file through one file handle and makes sure it did not change meanwhile. A
 * file modified within the last QUIET_MS is waited for until it has been quiet, so a half-written
 * file is not indexed while the previous entry can still be served. `inMemory` decides from the
 * file's size whether its bytes are kept.
 */
export async function loadFile (facts: FileFacts, coding: Coding, inMemory: (size: number) => boolean): Promise<Loaded> {
  for (let attempt = 0; ; attempt++) {
    const settled = await readSettled(facts.abs, inMemory)
    if (settled !== undefined) {
      const { body, sha256, stamp } = settled
      return { coding, file: facts.abs, size: stamp.size, stamp, etag: `"${tagOf(sha256)}"`, body, sha256 }
    }
    if (attempt + 1 >= ATTEMPTS) throw Object.assign(new Error(`${facts.rel} keeps changing`), { code: 'WASM_SERVE_CHANGING' })
    await delay(SETTLE_MS)
    await stat(facts.abs) // gone now: the caller's error path reports it
  }
}

async function readSettled (file: string, inMemory: (size: number) => boolean): Promise<{ body: Buffer | null, sha256: Buffer, stamp: FileStamp } | undefined> {
  const fh = await open(file, 'r')
  try {
    const before = stampOf(await fh.stat())
    const age = Date.now() - before.mtimeMs
    if (age >= 0 && age < QUIET_MS) await delay(QUIET_MS - age)
    const quiet = stampOf(await fh.stat())
    if (!sameFile(before, quiet)) return undefined
    const body = quiet.size <= MAX_IN_MEMORY && inMemory(quiet.size) ? await fh.readFile() : null
    const sha256 = body !== null ? await sha256Async(body) : await hashHandle(fh, quiet.size)
    const after = stampOf(await fh.stat())
    if (!sameFile(quiet, after) || (body !== null && body.length !== after.size)) return undefined
    return { body, sha256, stamp: after }
  } finally {
    await fh.close()
  }
}

const delay = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))
