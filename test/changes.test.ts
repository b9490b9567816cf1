// D16: files added, replaced (atomic rename, in-place copy or rewrite) or removed while serving are
// picked up without a restart, and no response ever carries a Content-Length or ETag that does not
// match the bytes it sends — also under concurrent requests while the file is being swapped, whether
// it is held in memory or streamed from disk.
import t, { type Test } from 'tap'
import { mkdirSync } from 'node:fs'
import { copyFile, mkdir, rename, rm, utimes, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { brotliCompressSync, brotliDecompressSync, constants as zc, gunzipSync, gzipSync } from 'node:zlib'
import { request } from 'undici'
import { getWith, type Got } from './helpers/http.js'
import { until } from './helpers/poll.js'
import { etagOf, startCliApp, type Running } from './helpers/server.js'
import { SQLITE as A, WEBP as B, tempDir } from './helpers/site.js'

/** How soon a change on disk must be served (A and B: two real modules of different lengths). */
const CHANGE_MS = 2000

/** A short timeout: a response whose Content-Length overstates its bytes fails here, not at tap's. */
function get (server: Running, path: string, acceptEncoding = 'identity'): Promise<Got> {
  return getWith(`${server.url}${path}`, { headers: { 'accept-encoding': acceptEncoding }, timeoutMs: 5000 })
}

/** The first response for `path` that `done` accepts: a change shows up within CHANGE_MS, without a restart. */
function whenServed (server: Running, path: string, done: (got: Got) => boolean, acceptEncoding?: string): Promise<Got> {
  return until(async () => {
    const got = await get(server, path, acceptEncoding)
    return done(got) && got
  }, { timeout: CHANGE_MS, what: `the change to ${path} to be served` })
}

/** base/root is served; base holds what is written next to it. */
function makeRoot (t: Test): { base: string, root: string } {
  const base = tempDir(t, 'changes')
  const root = join(base, 'root')
  mkdirSync(root)
  return { base, root }
}

/** Writes next to the root, then renames over the target: readers see the old or the new file, never a mix. */
async function atomicReplace (base: string, target: string, bytes: Buffer, mtime?: Date): Promise<void> {
  const tmp = join(base, `tmp-${process.hrtime.bigint()}`)
  await writeFile(tmp, bytes)
  if (mtime !== undefined) await utimes(tmp, mtime, mtime)
  await rename(tmp, target)
}

function consistent (t: Test, got: Got, what: string): void {
  t.equal(Number(got.headers['content-length']), got.body.length, `${what}: Content-Length is the body's length`)
  t.equal(got.headers.etag, etagOf(got.body), `${what}: ETag is the body's hash`)
}

t.test('picks up changes on disk without a restart', async (t) => {
  const { base, root } = makeRoot(t)
  await writeFile(join(root, 'app.wasm'), A)
  await writeFile(join(root, 'index.html'), '<!doctype html><title>v1</title>\n')
  const server = await startCliApp(t, { root })

  await t.test('serves a file added after start', async (t) => {
    t.equal((await get(server, '/late.wasm')).status, 404, 'not there yet')
    await writeFile(join(root, 'late.wasm'), B)
    const got = await whenServed(server, '/late.wasm', g => g.status === 200)
    t.equal(got.status, 200, 'served once it exists')
    t.ok(got.body.equals(B), 'with its bytes')
    consistent(t, got, 'the added file')
    t.equal(got.headers['content-type'], 'application/wasm', 'typed as wasm')
  })

  await t.test('serves the new content after an atomic rename, with a new ETag', async (t) => {
    const before = await get(server, '/app.wasm')
    t.ok(before.body.equals(A), 'old content first')
    await atomicReplace(base, join(root, 'app.wasm'), B)
    const got = await whenServed(server, '/app.wasm', g => g.body.equals(B))
    t.ok(got.body.equals(B), 'new content')
    consistent(t, got, 'after the rename')
    t.not(got.headers.etag, before.headers.etag, 'a new ETag')
    const revalidated = await request(`${server.url}/app.wasm`, { headers: { 'if-none-match': before.headers.etag! } })
    await revalidated.body.dump()
    t.equal(revalidated.statusCode, 200, 'the old ETag no longer gets a 304')
  })

  await t.test('serves the new content after an in-place copy over the file', async (t) => {
    const source = join(base, 'a-source.wasm')
    await writeFile(source, A)
    await copyFile(source, join(root, 'app.wasm'))
    const got = await whenServed(server, '/app.wasm', g => g.body.equals(A))
    t.ok(got.body.equals(A), 'new content')
    consistent(t, got, 'after copyFile')
  })

  await t.test('serves the new content after a truncating rewrite', async (t) => {
    await writeFile(join(root, 'index.html'), '<!doctype html><title>v2, longer than before</title>\n')
    const got = await whenServed(server, '/index.html', g => g.body.toString().includes('v2'))
    t.match(got.body.toString(), /v2, longer than before/, 'new content')
    consistent(t, got, 'after writeFile')
    const root404 = await whenServed(server, '/', g => g.body.toString().includes('v2'))
    t.match(root404.body.toString(), /v2/, '/ answers with the new index.html too')
  })

  await t.test('answers 404 for a removed file', async (t) => {
    await rm(join(root, 'late.wasm'))
    const got = await whenServed(server, '/late.wasm', g => g.status === 404)
    t.equal(got.status, 404, 'gone')
  })

  await t.test('serves a directory added with files', async (t) => {
    const dir = join(root, 'pkg', 'v2')
    await mkdir(dir, { recursive: true })
    await writeFile(join(dir, 'mod.wasm'), B)
    await writeFile(join(dir, 'index.html'), '<!doctype html><title>pkg</title>\n')
    const got = await whenServed(server, '/pkg/v2/mod.wasm', g => g.status === 200)
    t.equal(got.status, 200, 'a file in the new directory is served')
    t.ok(got.body.equals(B), 'with its bytes')
    consistent(t, got, 'the file in the new directory')
    const index = await whenServed(server, '/pkg/v2/', g => g.status === 200)
    t.match(index.body.toString(), /<title>pkg<\/title>/, 'the new directory\'s index.html answers its URL')
  })

  await t.test('answers 404 for a directory removed with its files', async (t) => {
    await rm(join(root, 'pkg'), { recursive: true })
    const got = await whenServed(server, '/pkg/v2/mod.wasm', g => g.status === 404)
    t.equal(got.status, 404, 'gone')
  })
})

interface Tally { last?: Buffer, settled?: boolean, serverErrors: string[], ok: number, a: number, b: number, neither: number, aborted: number, errors: Record<string, number>, slowestMs: number, statuses: Record<string, number>, bad: string[] }

/**
 * 8 readers fetch /swap.wasm as fast as they can while a writer swaps its content between A and B
 * (different lengths) by atomic rename, in-place rewrite and in-place copy. Every complete 200 must
 * be self-consistent and be A or B; a streamed response may be cut short instead (then the client
 * never accepts it).
 */
async function hammer (memoryBudget: number | string | undefined, t: Test): Promise<Tally> {
  const { base, root } = makeRoot(t)
  const target = join(root, 'swap.wasm')
  await writeFile(target, A)
  const server = await startCliApp(t, { root, ...(memoryBudget === undefined ? {} : { memoryBudget }) })
  const tally: Tally = { serverErrors: [], ok: 0, a: 0, b: 0, neither: 0, aborted: 0, errors: {}, slowestMs: 0, statuses: {}, bad: [] }
  const deadline = Date.now() + 3000
  let requests = 0
  let writing = true

  const writer = (async () => {
    const sourceA = join(base, 'source-a.wasm')
    const sourceB = join(base, 'source-b.wasm')
    await writeFile(sourceA, A)
    await writeFile(sourceB, B)
    for (let i = 0; Date.now() < deadline; i++) {
      const next = i % 2 === 0 ? B : A
      const how = Math.floor(i / 2) % 3
      if (how === 0) await atomicReplace(base, target, next)
      else if (how === 1) await writeFile(target, next)
      else await copyFile(next === A ? sourceA : sourceB, target)
      tally.last = next
      // Pacing the writer, not waiting for anything: mostly faster than the catalog's 100 ms quiet
      // period (a file still being written keeps its previous entry), with a longer pause now and
      // then so that each version is picked up while the readers run, even on a loaded machine.
      await sleep(i % 3 === 2 ? 500 : 40 + Math.random() * 80)
    }
    writing = false
  })()

  const reader = async () => {
    // eslint-disable-next-line no-unmodified-loop-condition -- the writer clears it
    while (writing && requests < 4000) {
      requests++
      let got: Got
      const started = Date.now()
      try {
        got = await get(server, '/swap.wasm')
      } catch (err) {
        tally.aborted++
        const code = String((err as { code?: string }).code ?? (err as Error).message)
        tally.errors[code] = (tally.errors[code] ?? 0) + 1
        continue
      } finally {
        tally.slowestMs = Math.max(tally.slowestMs, Date.now() - started)
      }
      tally.statuses[got.status] = (tally.statuses[got.status] ?? 0) + 1
      if (got.status !== 200) continue
      tally.ok++
      const length = Number(got.headers['content-length'])
      const etagMatches = got.headers.etag === etagOf(got.body)
      if (got.body.equals(A)) tally.a++
      else if (got.body.equals(B)) tally.b++
      else tally.neither++
      // D16 is about consistency: length and ETag always match the bytes. Besides A and B, the only
      // other bytes allowed are a prefix of one of them: what an in-place rewrite (truncate, then
      // write) shows on disk for a moment, which any server reading the file then would send too.
      const prefix = (x: Buffer) => got.body.length <= x.length && x.subarray(0, got.body.length).equals(got.body)
      if (length !== got.body.length || !etagMatches || !(prefix(A) || prefix(B))) {
        if (tally.bad.length < 5) tally.bad.push(`content-length ${length}, body ${got.body.length} bytes, etag ${etagMatches ? 'matches' : 'does not match'}, known content: ${got.body.equals(A) ? 'A' : got.body.equals(B) ? 'B' : 'neither'}`)
      }
    }
  }
  await Promise.all([writer, ...Array.from({ length: 8 }, reader)])
  // Once the writes stop, the last content is served without a restart (D16).
  tally.settled = await until(async () => {
    const got = await get(server, '/swap.wasm').catch(() => undefined)
    return got?.status === 200 && tally.last !== undefined && got.body.equals(tally.last)
  }, { timeout: 4000, what: 'the last content written' }).then(() => true, () => false)
  tally.serverErrors = server.logs.filter(l => Number(l.level) >= 50).map(l => JSON.stringify(l).slice(0, 600))
  t.comment(`memoryBudget ${String(memoryBudget ?? 'default')}: ${requests} requests, ${tally.ok} complete 200s (A ${tally.a}, B ${tally.b}, neither ${tally.neither}), ${tally.aborted} cut short ${JSON.stringify(tally.errors)}, slowest ${tally.slowestMs} ms, statuses ${JSON.stringify(tally.statuses)}`)
  return tally
}

for (const [label, memoryBudget] of [['held in memory (default memoryBudget)', undefined], ['streamed from disk (memoryBudget 0)', 0]] as const) {
  t.test(`never sends a length or ETag that does not match the body while a ${label} wasm file is swapped`, async (t) => {
    const tally = await hammer(memoryBudget, t)
    t.same(tally.bad, [], 'every complete 200 has Content-Length = body length, ETag = its hash, and is one of the two contents (or a prefix of one, mid-rewrite)')
    t.same(tally.serverErrors.slice(0, 3), [], 'the server logged no error')
    if (memoryBudget === undefined) t.equal(tally.aborted, 0, 'bytes held in memory are never cut short')
    t.ok(tally.ok >= 20, `complete responses throughout (${tally.ok})`)
    t.ok(tally.a > 0 && tally.b > 0, 'both contents were served while swapping')
    t.ok(tally.settled, 'the last content written is served once the writes stop')
    t.same(Object.keys(tally.statuses).filter(s => s !== '200'), [], 'no other status: the file never went missing')
  })
}

t.test('does not serve a precompressed sibling that went stale when its original changed', async (t) => {
  const { base, root } = makeRoot(t)
  const old = new Date(Date.now() - 3600_000)
  const br = brotliCompressSync(A, { params: { [zc.BROTLI_PARAM_QUALITY]: 5 } })
  const gz = gzipSync(A, { level: 6 })
  for (const [name, bytes] of [['br.wasm', A], ['br.wasm.br', br], ['copy.wasm', A], ['copy.wasm.br', br], ['gz.wasm', A], ['gz.wasm.gz', gz]] as const) {
    await writeFile(join(root, name), bytes)
    await utimes(join(root, name), old, old)
  }
  // On-the-fly compression off: then the only br or gzip bytes the server has are the siblings on disk.
  const server = await startCliApp(t, { root, compress: { onTheFly: false } })
  const decoded = (got: Got) => got.headers['content-encoding'] === 'br' ? brotliDecompressSync(got.body) : got.headers['content-encoding'] === 'gzip' ? gunzipSync(got.body) : got.body

  await t.test('a .br sibling older than its replaced original is not served', async (t) => {
    const first = await get(server, '/br.wasm', 'br')
    t.equal(first.headers['content-encoding'], 'br', 'the fresh sibling is served at first')
    t.ok(decoded(first).equals(A), 'and decodes to the original')
    await atomicReplace(base, join(root, 'br.wasm'), B)
    const got = await whenServed(server, '/br.wasm', g => decoded(g).equals(B), 'br')
    t.ok(decoded(got).equals(B), 'the new content is served')
    t.equal(got.headers['content-encoding'], undefined, 'as identity, not from the stale sibling')
    consistent(t, got, 'identity after the change')
    for (let i = 0; i < 5; i++) t.ok(decoded(await get(server, '/br.wasm', 'br')).equals(B), `request ${i + 1} after the change gets the new content`)
  })

  await t.test('a .br sibling older than an original copied over in place is not served', async (t) => {
    const source = join(base, 'copy-source.wasm')
    await writeFile(source, B)
    await copyFile(source, join(root, 'copy.wasm'))
    const got = await whenServed(server, '/copy.wasm', g => decoded(g).equals(B), 'br')
    t.ok(decoded(got).equals(B), 'the new content is served')
    t.equal(got.headers['content-encoding'], undefined, 'as identity, not from the stale sibling')
    consistent(t, got, 'identity after the copy')
  })

  await t.test('a .gz sibling whose ISIZE no longer matches is not served, even with the same mtime', async (t) => {
    const first = await get(server, '/gz.wasm', 'gzip')
    t.equal(first.headers['content-encoding'], 'gzip', 'the fresh sibling is served at first')
    await atomicReplace(base, join(root, 'gz.wasm'), B, old)
    const got = await whenServed(server, '/gz.wasm', g => decoded(g).equals(B), 'gzip')
    t.ok(decoded(got).equals(B), 'the new content is served')
    t.equal(got.headers['content-encoding'], undefined, 'as identity, not from the sibling that decodes to the old size')
    consistent(t, got, 'identity after the change')
  })
})
