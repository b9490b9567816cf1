/**
 * End-to-end for range readers (D8, D13): a page on one origin reads a 48 MB database on another
 * origin page by page, as SQLite-over-HTTP VFSes and DuckDB-wasm do with fetch, and as Emscripten's
 * lazy files do with synchronous XHR in a Worker. The data server runs the real CLI with --cors and
 * an 8 MB memory budget, so every byte is streamed from disk. Every word of the file is its own
 * offset: each page is checked on its own. Skipped, with the reason printed, without Chromium or
 * the build.
 */
import t, { type Test } from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Page } from 'playwright-core'
import { launch, startCli, whenBrowser } from './browser/harness.js'
import { offsets, tempDir } from './helpers/site.js'

const SIZE = 48 * 1024 * 1024
const PAGE_SIZE = 4096
const PAGES = 50
const MULTIPART = 'bytes=0-3,8192-12287,40000000-40000099'

await whenBrowser(t, run)

interface ReadResult {
  error?: string
  size?: number
  etag?: string | null
  statuses: number[]
  /** Pages whose bytes were not the file's, or whose Content-Range named other bytes. */
  bad: string[]
  pagesRead: number
  /** Resource Timing: body bytes that came over the network for the file, and in how many responses. */
  transferred: number
  entries: number
  multipart?: { status: number, type: string | null, length: number, received: number, parts: Array<{ range: string, ok: boolean }> }
  stale?: { status: number, length: number }
  head?: { status: number, length: string | null, acceptRanges: string | null, encoding: string | null }
}

/**
 * Runs in the page: a range reader with fetch. It learns the size from the Content-Range of a first
 * small range (a cross-origin page can read it only when the server exposes it), then reads random
 * distinct pages with If-Range set to the ETag it saw, as a reader that must not mix two versions
 * of a file does; then one request for several ranges.
 */
async function readWithFetch (args: { url: string, pages: number, pageSize: number, multipart: string }): Promise<ReadResult> {
  const { url, pages, pageSize } = args
  const result: ReadResult = { statuses: [], bad: [], pagesRead: 0, transferred: 0, entries: 0 }
  const wordsAre = (bytes: Uint8Array, start: number) => {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    for (let i = 0; i + 4 <= bytes.length; i += 4) if (view.getUint32(i, true) !== start + i) return false
    return true
  }
  try {
    const first = await fetch(url, { headers: { Range: 'bytes=0-99' } })
    result.statuses.push(first.status)
    const contentRange = first.headers.get('Content-Range')
    result.etag = first.headers.get('ETag')
    if (contentRange === null) throw new Error('Content-Range is not readable: the size of the file is unknown')
    const size = result.size = Number(/\/(\d+)$/.exec(contentRange)?.[1])
    if (!wordsAre(new Uint8Array(await first.arrayBuffer()), 0)) result.bad.push('bytes=0-99')
    // Distinct pages, none of them the first: every page is read once, over the network.
    const chosen = new Set<number>()
    let seed = 12345
    while (chosen.size < pages) {
      seed = (seed * 1103515245 + 12345) % 2 ** 31
      chosen.add(1 + (seed % (size / pageSize - 1)))
    }
    for (const page of chosen) {
      const start = page * pageSize
      const range = `bytes=${start}-${start + pageSize - 1}`
      const res = await fetch(url, { headers: { Range: range, 'If-Range': result.etag ?? '' } })
      result.statuses.push(res.status)
      const bytes = new Uint8Array(await res.arrayBuffer())
      if (res.headers.get('Content-Range') !== `${range.replace('=', ' ')}/${size}` || bytes.length !== pageSize || !wordsAre(bytes, start)) result.bad.push(range)
      else result.pagesRead++
    }
    result.multipart = await readMultipart(url, args.multipart, wordsAre)
    const timings = performance.getEntriesByName(url) as PerformanceResourceTiming[]
    result.entries = timings.length
    result.transferred = timings.reduce((sum, e) => sum + e.encodedBodySize, 0)
    // If-Range with a version the server no longer has: the whole file, never a piece of another version.
    const stale = await fetch(url, { headers: { Range: 'bytes=4096-8191', 'If-Range': '"an-older-version"' } })
    result.stale = { status: stale.status, length: Number(stale.headers.get('Content-Length')) }
    await stale.body?.cancel()
  } catch (err) {
    result.error = String(err)
  }
  return result

  /** One request for several ranges; its multipart/byteranges body split at the boundary (RFC 9110 §14.6). */
  async function readMultipart (url: string, ranges: string, wordsAre: (bytes: Uint8Array, start: number) => boolean): Promise<ReadResult['multipart']> {
    const res = await fetch(url, { headers: { Range: ranges } })
    const type = res.headers.get('Content-Type')
    const body = new Uint8Array(await res.arrayBuffer())
    const boundary = /boundary=(\S+)/.exec(type ?? '')?.[1]
    const length = Number(res.headers.get('Content-Length'))
    if (boundary === undefined) return { status: res.status, type, length, received: body.length, parts: [] }
    // windows-1252 keeps one character per byte, so offsets in the text are offsets in the body.
    const text = new TextDecoder('windows-1252').decode(body)
    const parts: Array<{ range: string, ok: boolean }> = []
    const delimiter = `\r\n--${boundary}`
    for (let at = text.indexOf(delimiter); at !== -1 && text.slice(at + delimiter.length, at + delimiter.length + 2) !== '--';) {
      const headEnd = text.indexOf('\r\n\r\n', at + delimiter.length)
      const next = text.indexOf(delimiter, headEnd)
      const m = /Content-Range: bytes (\d+)-(\d+)\/\d+/i.exec(text.slice(at, headEnd))
      const bytes = body.subarray(headEnd + 4, next)
      parts.push({ range: m === null ? 'none' : `${m[1]}-${m[2]}`, ok: m !== null && bytes.length === Number(m[2]) - Number(m[1]) + 1 && wordsAre(bytes, Number(m[1])) })
      at = next
    }
    return { status: res.status, type, length, received: body.length, parts }
  }
}

/**
 * Runs in a dedicated Worker (its source is made into a blob: URL, so it has the page's origin): the
 * reader Emscripten's createLazyFile is, with synchronous XHR. It first asks HEAD for the length and
 * Accept-Ranges, as Emscripten does, then reads pages with Range.
 */
function lazyFileWorker (): void {
  const scope = self as unknown as { onmessage: (e: MessageEvent) => void, postMessage: (m: unknown) => void }
  scope.onmessage = (e: MessageEvent<{ url: string, pages: number[], pageSize: number }>) => {
    const { url, pages, pageSize } = e.data
    const result: ReadResult = { statuses: [], bad: [], pagesRead: 0, transferred: 0, entries: 0 }
    try {
      const head = new XMLHttpRequest()
      head.open('HEAD', url, false)
      head.send(null)
      result.head = { status: head.status, length: head.getResponseHeader('Content-Length'), acceptRanges: head.getResponseHeader('Accept-Ranges'), encoding: head.getResponseHeader('Content-Encoding') }
      for (const page of pages) {
        const start = page * pageSize
        const xhr = new XMLHttpRequest()
        xhr.open('GET', url, false)
        xhr.setRequestHeader('Range', `bytes=${start}-${start + pageSize - 1}`)
        xhr.responseType = 'arraybuffer'
        xhr.send(null)
        result.statuses.push(xhr.status)
        const view = new DataView(xhr.response as ArrayBuffer)
        let ok = view.byteLength === pageSize
        for (let i = 0; ok && i < view.byteLength; i += 4) ok = view.getUint32(i, true) === start + i
        if (ok) result.pagesRead++
        else result.bad.push(`page ${page}`)
      }
      const timings = performance.getEntriesByName(url) as PerformanceResourceTiming[]
      result.entries = timings.length
      result.transferred = timings.reduce((sum, e) => sum + e.encodedBodySize, 0)
    } catch (err) {
      result.error = String(err)
    }
    scope.postMessage(result)
  }
}

/** Starts the worker in the page and gives it pages to read. */
function readInWorker (page: Page, url: string, pages: number[]): Promise<ReadResult> {
  return page.evaluate(async ({ source, url, pages, pageSize }) => {
    const worker = new Worker(URL.createObjectURL(new Blob([`(${source})()`], { type: 'text/javascript' })))
    const done = new Promise<ReadResult>((resolve, reject) => {
      worker.onmessage = e => resolve(e.data as ReadResult)
      worker.onerror = e => reject(new Error(e.message))
    })
    worker.postMessage({ url, pages, pageSize })
    try { return await done } finally { worker.terminate() }
  }, { source: lazyFileWorker.toString(), url, pages, pageSize: PAGE_SIZE })
}

async function run () {
  const data = tempDir(t, 'range-data')
  writeFileSync(join(data, 'books.sqlite'), offsets(SIZE))
  const site = tempDir(t, 'range-page')
  writeFileSync(join(site, 'index.html'), '<!doctype html><title>range reader</title>\n')
  const context = await launch(t)
  const pageServer = await startCli(t, site)
  t.teardown(pageServer.stop)

  const open = async (t: Test) => {
    const page = await context.newPage()
    t.teardown(() => page.close())
    await page.goto(`${pageServer.url}/`)
    return page
  }

  t.test('a page on another origin reads a 48 MB database page by page with fetch: sizes, bytes, If-Range, several ranges (D8, D13)', async t => {
    const dataServer = await startCli(t, data, ['--cors', '--memory-budget', '8MB'])
    t.teardown(dataServer.stop)
    const page = await open(t)
    const url = `${dataServer.url}/books.sqlite`
    t.not(new URL(url).origin, new URL(page.url()).origin, 'the data is on another origin')
    const r = await page.evaluate(readWithFetch, { url, pages: PAGES, pageSize: PAGE_SIZE, multipart: MULTIPART })
    t.equal(r.error, undefined, 'the reader ran')
    t.equal(r.size, SIZE, 'the size, read from Content-Range on another origin')
    t.match(r.etag, /^"[A-Za-z0-9_-]+"$/, 'a strong ETag, readable on another origin')
    t.same(r.statuses, Array(PAGES + 1).fill(206), 'every range a 206')
    t.same(r.bad, [], 'every byte of every page is the file\'s')
    t.equal(r.pagesRead, PAGES)
    t.same(r.stale, { status: 200, length: SIZE }, 'If-Range with an older ETag: the whole file, as a 200')
    t.equal(r.multipart?.status, 206)
    t.match(r.multipart?.type, /^multipart\/byteranges; boundary=/)
    t.same(r.multipart?.parts, [{ range: '0-3', ok: true }, { range: '8192-12287', ok: true }, { range: '40000000-40000099', ok: true }], 'several ranges, one part each, readable by the page')
    t.equal(r.multipart?.length, r.multipart?.received, 'its Content-Length is the length of its body')
    // Resource Timing (Timing-Allow-Origin: *), before the stale If-Range: exactly the bytes asked
    // for came over the network, not the 48 MB file.
    t.equal(r.entries, PAGES + 2, 'a timing entry for each response')
    t.equal(r.transferred, 100 + PAGES * PAGE_SIZE + r.multipart!.length, 'only the ranges arrived')
  })

  t.test('a Worker reads it with synchronous XHR as Emscripten\'s lazy files do (D8, D13)', async t => {
    const dataServer = await startCli(t, data, ['--cors', '--memory-budget', '8MB'])
    t.teardown(dataServer.stop)
    const page = await open(t)
    const pages = Array.from({ length: PAGES }, (_, i) => 7 + i * 239)
    const r = await readInWorker(page, `${dataServer.url}/books.sqlite`, pages)
    t.equal(r.error, undefined, 'the reader ran')
    t.same(r.head, { status: 200, length: String(SIZE), acceptRanges: 'bytes', encoding: null }, 'HEAD: the identity length and Accept-Ranges, readable on another origin')
    t.same(r.statuses, Array(PAGES).fill(206))
    t.same(r.bad, [], 'every byte of every page is the file\'s')
    t.equal(r.pagesRead, PAGES)
    t.ok(r.transferred >= PAGES * PAGE_SIZE && r.transferred < PAGES * PAGE_SIZE * 2, `only the pages arrived (${r.transferred} B in ${r.entries} responses)`)
  })

  t.test('without --cors the same reader cannot read the file from another origin', async t => {
    const dataServer = await startCli(t, data, ['--memory-budget', '8MB'])
    t.teardown(dataServer.stop)
    const page = await open(t)
    const r = await page.evaluate(readWithFetch, { url: `${dataServer.url}/books.sqlite`, pages: 2, pageSize: PAGE_SIZE, multipart: MULTIPART })
    t.match(r.error, /TypeError: Failed to fetch/, 'the first range is refused to the page')
    t.equal(r.size, undefined)
    t.equal(r.pagesRead, 0)
  })
}
