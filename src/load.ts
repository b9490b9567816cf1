/**
 * Reading one file of the root into a representation's bytes: held in memory when the budget
 * allows, otherwise hashed by streaming and left on disk. The bytes and their hash are always of one
 * version of the file (D16 in docs/delivery.md).
 */
import { readFile } from 'node:fs'
import { open, stat } from 'node:fs/promises'
import { promisify } from 'node:util'
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
 * Reads (or hashes) a file and makes sure it did not change meanwhile. A file modified within the
 * last QUIET_MS is waited for until it has been quiet, so a half-written file is not indexed while
 * the previous entry can still be served. `inMemory` decides from the file's size whether its bytes
 * are kept. `facts.stats` is the stat the caller has just made (the walk's, or a look-up's).
 */
export async function loadFile (facts: FileFacts, coding: Coding, inMemory: (size: number) => boolean): Promise<Loaded> {
  let before = stampOf(facts.stats)
  for (let attempt = 0; ; attempt++) {
    const settled = await readSettled(facts.abs, before, inMemory)
    if (settled !== undefined) {
      const { body, sha256, stamp } = settled
      return { coding, file: facts.abs, size: stamp.size, stamp, etag: `"${tagOf(sha256)}"`, body, sha256 }
    }
    if (attempt + 1 >= ATTEMPTS) throw Object.assign(new Error(`${facts.rel} keeps changing`), { code: 'WASM_SERVE_CHANGING' })
    await delay(SETTLE_MS)
    before = stampOf(await stat(facts.abs)) // gone now: the caller's error path reports it
  }
}

/**
 * The bytes (or their hash) of the version `before` stamped: the file is stat'ed again after the
 * read, and the same size, mtime, ctime and inode on both sides mean one version was read (a file
 * renamed over in between has another inode, one written in place another ctime). That is one read
 * and a stat for a file held in memory, where a handle kept open and stat'ed before and after cost
 * twice the calls, each a round trip through libuv's thread pool (measured in docs/benchmarks.md,
 * "Start-up at scale").
 */
async function readSettled (file: string, before: FileStamp, inMemory: (size: number) => boolean): Promise<{ body: Buffer | null, sha256: Buffer, stamp: FileStamp } | undefined> {
  const age = Date.now() - before.mtimeMs
  if (age >= 0 && age < QUIET_MS) {
    await delay(QUIET_MS - age)
    if (!sameFile(before, stampOf(await stat(file)))) return undefined
  }
  const body = before.size <= MAX_IN_MEMORY && inMemory(before.size) ? await readWhole(file) : null
  const sha256 = body !== null ? await sha256Async(body) : await hashFile(file, before.size)
  const after = stampOf(await stat(file))
  if (!sameFile(before, after) || (body !== null && body.length !== after.size)) return undefined
  return { body, sha256, stamp: after }
}

/** fs.readFile's callback form: over 10,000 small files, 25 % less CPU and under half the wall time of fs/promises' readFile (no FileHandle). */
const readWhole = promisify(readFile)

async function hashFile (file: string, size: number): Promise<Buffer> {
  const fh = await open(file, 'r')
  try { return await hashHandle(fh, size) } finally { await fh.close() }
}

const delay = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))
