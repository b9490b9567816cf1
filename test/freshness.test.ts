/**
 * The catalog stays true to the disk whatever happens to directories, watchers or the root (D16 in
 * docs/delivery.md): watchers are re-armed when a directory is replaced, and the periodic check
 * finds what no watcher reports.
 */
import t from 'tap'
import { mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { get } from './helpers/http.js'
import { until } from './helpers/poll.js'
import { startPlugin } from './helpers/server.js'
import { tempDir } from './helpers/site.js'

/** Asks until the URL answers with `want` (status, and body when given); the last answer when time is up. */
async function serves (url: string, want: { status: number, body?: string }): Promise<{ status: number, body: string }> {
  let last = { status: 0, body: '' }
  const matches = async () => {
    const got = await get(url)
    last = { status: got.status, body: got.body.toString() }
    return last.status === want.status && (want.body === undefined || last.body === want.body)
  }
  await until(matches, { timeout: 8000, what: `${url} to answer ${JSON.stringify(want)}` }).catch(() => {})
  return last
}

t.test('a directory deleted and made again is watched again', async t => {
  const root = tempDir(t)
  mkdirSync(join(root, 'sub'))
  writeFileSync(join(root, 'sub', 'a.txt'), 'one')
  writeFileSync(join(root, 'sub', 'b.txt'), 'bee')
  // No periodic check: only the watchers can see what follows.
  const { url } = await startPlugin(t, { root, watch: true, revalidate: 0 })
  t.same(await serves(`${url}/sub/a.txt`, { status: 200, body: 'one' }), { status: 200, body: 'one' })
  rmSync(join(root, 'sub'), { recursive: true })
  mkdirSync(join(root, 'sub'))
  writeFileSync(join(root, 'sub', 'a.txt'), 'two')
  t.same(await serves(`${url}/sub/a.txt`, { status: 200, body: 'two' }), { status: 200, body: 'two' }, 'the new directory\'s file')
  t.equal((await serves(`${url}/sub/b.txt`, { status: 404 })).status, 404, 'a file of the old directory is gone')
  writeFileSync(join(root, 'sub', 'a.txt'), 'three')
  t.same(await serves(`${url}/sub/a.txt`, { status: 200, body: 'three' }), { status: 200, body: 'three' }, 'an edit inside the new directory is seen')
})

t.test('directories swapped with mv are served as they are now, and watched as they are now', async t => {
  const root = tempDir(t)
  mkdirSync(join(root, 'app'))
  writeFileSync(join(root, 'app', 'main.js'), 'old')
  mkdirSync(join(root, 'app-next'))
  writeFileSync(join(root, 'app-next', 'main.js'), 'new')
  const { url } = await startPlugin(t, { root, watch: true, revalidate: 0 })
  t.equal((await get(`${url}/app/main.js`)).body.toString(), 'old')
  renameSync(join(root, 'app'), join(root, 'app-old'))
  renameSync(join(root, 'app-next'), join(root, 'app'))
  t.same(await serves(`${url}/app/main.js`, { status: 200, body: 'new' }), { status: 200, body: 'new' })
  writeFileSync(join(root, 'app', 'main.js'), 'newer')
  t.same(await serves(`${url}/app/main.js`, { status: 200, body: 'newer' }), { status: 200, body: 'newer' }, 'the watch follows the directory now at that name')
  writeFileSync(join(root, 'app-old', 'main.js'), 'not served at /app')
  t.same(await serves(`${url}/app-old/main.js`, { status: 200, body: 'not served at /app' }), { status: 200, body: 'not served at /app' })
  t.equal((await get(`${url}/app/main.js`)).body.toString(), 'newer')
})

t.test('the root deleted and made again is found by the periodic check', async t => {
  const root = join(tempDir(t), 'site')
  mkdirSync(root)
  writeFileSync(join(root, 'index.html'), '<p>v1')
  writeFileSync(join(root, 'old.txt'), 'only in v1')
  const { url } = await startPlugin(t, { root, watch: true, revalidate: 0.2 })
  t.equal((await get(`${url}/index.html`)).body.toString(), '<p>v1')
  rmSync(root, { recursive: true })
  mkdirSync(root)
  writeFileSync(join(root, 'index.html'), '<p>v2')
  t.same(await serves(`${url}/index.html`, { status: 200, body: '<p>v2' }), { status: 200, body: '<p>v2' })
  t.equal((await get(`${url}/old.txt`)).status, 404, 'nothing of the old root is served')
  writeFileSync(join(root, 'index.html'), '<p>v3')
  t.same(await serves(`${url}/index.html`, { status: 200, body: '<p>v3' }), { status: 200, body: '<p>v3' }, 'and the new root is watched')
})

t.test('a symlinked root pointed at a new release serves the new release', async t => {
  const base = tempDir(t)
  for (const v of ['v1', 'v2']) {
    mkdirSync(join(base, v))
    writeFileSync(join(base, v, 'app.wasm'), `module ${v}`)
  }
  writeFileSync(join(base, 'v1', 'gone.txt'), 'v1 only')
  symlinkSync(join(base, 'v1'), join(base, 'current'))
  const { url } = await startPlugin(t, { root: join(base, 'current'), watch: true, revalidate: 0.2 })
  t.equal((await get(`${url}/app.wasm`)).body.toString(), 'module v1')
  // How such deploys switch: a new link renamed over the old one, atomically.
  symlinkSync(join(base, 'v2'), join(base, 'next'))
  renameSync(join(base, 'next'), join(base, 'current'))
  t.same(await serves(`${url}/app.wasm`, { status: 200, body: 'module v2' }), { status: 200, body: 'module v2' })
  t.equal((await get(`${url}/gone.txt`)).status, 404)
})

t.test('without watchers, the periodic check alone sees edits, deletions and new directories', async t => {
  const root = tempDir(t)
  writeFileSync(join(root, 'a.txt'), 'aaaa')
  writeFileSync(join(root, 'b.txt'), 'bbbb')
  const { url } = await startPlugin(t, { root, watch: false, revalidate: 0.2 })
  t.equal((await get(`${url}/a.txt`)).body.toString(), 'aaaa')
  writeFileSync(join(root, 'a.txt'), 'AAAA') // same size, held in memory: only a stat tells
  rmSync(join(root, 'b.txt'))
  t.same(await serves(`${url}/a.txt`, { status: 200, body: 'AAAA' }), { status: 200, body: 'AAAA' })
  t.equal((await serves(`${url}/b.txt`, { status: 404 })).status, 404, 'a deleted file is gone')
  mkdirSync(join(root, 'new'))
  writeFileSync(join(root, 'new', 'c.txt'), 'cccc')
  t.equal((await get(`${url}/new/c.txt`)).body.toString(), 'cccc', 'a new file is found when requested')
})

t.test('a file rewritten faster than it can be read is never answered 404', async t => {
  const root = tempDir(t)
  const file = join(root, 'busy.json')
  writeFileSync(file, JSON.stringify({ n: 0 }))
  const { url } = await startPlugin(t, { root, watch: true })
  let writing = true
  const writer = (async () => {
    // eslint-disable-next-line no-unmodified-loop-condition -- cleared once the readers are done
    for (let n = 1; writing; n++) {
      writeFileSync(file, JSON.stringify({ n }))
      await new Promise(resolve => setTimeout(resolve, 15))
    }
  })()
  const statuses: Record<number, number> = {}
  const wrong: string[] = []
  const deadline = Date.now() + 2500
  while (Date.now() < deadline) {
    const got = await get(`${url}/busy.json`)
    statuses[got.status] = (statuses[got.status] ?? 0) + 1
    if (got.status === 503 && got.headers['retry-after'] !== '1') wrong.push('a 503 without Retry-After')
    if (got.status === 200 && !/^\{"n":\d+\}$/.test(got.body.toString())) wrong.push(`not one whole version: ${got.body.toString()}`)
  }
  writing = false
  await writer
  t.notOk(statuses[404], `no 404 while the file exists (${JSON.stringify(statuses)})`)
  t.same(wrong.slice(0, 3), [], 'every 200 is one whole version, every 503 says when to try again')
  t.ok((statuses[200] ?? 0) > 0, 'served throughout')
})
