// SPEC D14 (issue 2 item 6): hostile request targets, sent byte for byte over a bare socket, never
// reach a byte outside the root or a dotfile, never crash or 5xx the server, and no error body names
// a filesystem path. The same corpus runs against the CLI's app and the plugin under a prefix.
import t, { type Test } from 'tap'
import { randomUUID } from 'node:crypto'
import { mkdir, mkdtemp, readFile, realpath, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { rawRequest, type RawResponse } from './helpers/raw-http.js'
import { etagOf, SQLITE_WASM_PATH, startCliApp, startPluginApp, type Running } from './helpers/server.js'

const SQLITE = await readFile(SQLITE_WASM_PATH)
/** Markers that must never appear in any response: they live outside the root or in dotfiles. */
const OUTSIDE = `CANARY-OUTSIDE-${randomUUID()}`
const OUTSIDE_DIR = `CANARY-OUTSIDE-DIR-${randomUUID()}`
const DOTFILE = `CANARY-DOTFILE-${randomUUID()}`
const SECURITY_TXT = Buffer.from('Contact: mailto:security@example.com\nExpires: 2031-01-01T00:00:00.000Z\n')
const NESTED = Buffer.from('a plain file in a directory without index.html\n')

interface Tree { base: string, root: string, realBase: string }

/**
 * base/canary.txt and base/outside/secret.txt sit next to the served root (base/root), which holds
 * a real wasm module, dotfiles, a directory without index.html, .well-known, and symlinks leading
 * out of the root and inside it.
 */
async function makeTree (t: Test): Promise<Tree> {
  const base = await mkdtemp(join(tmpdir(), 'wasm-serve-safety-'))
  t.teardown(() => rm(base, { recursive: true, force: true }))
  const root = join(base, 'root')
  await mkdir(join(base, 'outside'), { recursive: true })
  await writeFile(join(base, 'canary.txt'), `${OUTSIDE}\n`)
  await writeFile(join(base, 'canary.wasm'), `${OUTSIDE}\n`)
  await writeFile(join(base, 'outside', 'secret.txt'), `${OUTSIDE_DIR}\n`)
  for (const dir of ['sub', 'nolisting', '.git', '.well-known']) await mkdir(join(root, dir), { recursive: true })
  await writeFile(join(root, 'sqlite3.wasm'), SQLITE)
  await writeFile(join(root, 'index.html'), '<!doctype html><title>safety</title>\n')
  await writeFile(join(root, '.env'), `SECRET=${DOTFILE}\n`)
  await writeFile(join(root, '.git', 'config'), `[core]\n# ${DOTFILE}\n`)
  await writeFile(join(root, 'sub', '.secret'), `${DOTFILE}\n`)
  await writeFile(join(root, 'sub', 'file.txt'), NESTED)
  await writeFile(join(root, 'nolisting', 'a.txt'), NESTED)
  await writeFile(join(root, 'nolisting', 'b.wasm'), SQLITE.subarray(0, 64))
  await writeFile(join(root, '.well-known', 'security.txt'), SECURITY_TXT)
  await symlink('../canary.txt', join(root, 'link-out.txt'))
  await symlink(join(base, 'canary.wasm'), join(root, 'link-out-absolute.wasm'))
  await symlink('link-out.txt', join(root, 'chain.txt'))
  await symlink('../outside', join(root, 'link-dir-out'))
  await symlink('..', join(root, 'up'))
  await symlink('sqlite3.wasm', join(root, 'link-in.wasm'))
  return { base, root, realBase: await realpath(base) }
}

interface Case {
  /** What the target tries. */
  name: string
  target: string
  /** Statuses that are a correct refusal; default 400, 403, 404. */
  refuse?: number[]
  /** When set, a 200 with exactly these bytes is also correct (the target names a file inside the root). */
  ok?: Buffer
  /** Send the target in absolute form (http://host/…), with the mount prefix inside it. */
  absoluteForm?: boolean
}

function corpus (tree: Tree): Case[] {
  const c = (name: string, target: string, extra: Partial<Case> = {}): Case => ({ name, target, ...extra })
  return [
    c('plain .. segment', '/../canary.txt'),
    c('many plain .. segments to /etc/passwd', '/../../../../../../../../etc/passwd'),
    c('.. after a real directory', '/sub/../../canary.txt'),
    c('.. as the last segment', '/sub/file.txt/..'),
    c('bare ..', '/..'),
    c('encoded dots %2e%2e', '/%2e%2e/canary.txt'),
    c('upper-case encoded dots %2E%2E', '/%2E%2E/canary.txt'),
    c('half-encoded dots .%2e', '/.%2e/canary.txt'),
    c('half-encoded dots %2e.', '/%2e./canary.txt'),
    c('mixed-case encoded dots and slash', '/%2E%2e%2Fcanary.txt'),
    c('double-encoded dots %252e%252e', '/%252e%252e/canary.txt'),
    c('double-encoded dots and slash', '/%252E%252E%252Fcanary.txt'),
    c('double-encoded dots after a real directory', '/sub/%252e%252e/%252e%252e/canary.txt'),
    c('dots with an encoded slash ..%2f', '/..%2fcanary.txt'),
    c('fully encoded ../ %2e%2e%2f', '/%2e%2e%2fcanary.txt'),
    c('encoded ../../../etc/passwd', '/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd'),
    c('fifty ..%2f to /etc/passwd', '/' + '..%2f'.repeat(50) + 'etc/passwd'),
    c('encoded slash after a real directory', '/sub/..%2f..%2fcanary.txt'),
    c('dots with an encoded backslash ..%5c', '/..%5ccanary.txt'),
    c('encoded dots and backslash', '/%2e%2e%5ccanary.txt'),
    c('raw backslashes \\..\\', '/\\..\\canary.txt'),
    c('raw backslashes after a real directory', '/sub\\..\\..\\canary.txt'),
    c('encoded backslashes %5c..%5c', '/%5c..%5ccanary.txt'),
    c('double-encoded backslash ..%255c', '/..%255c..%255ccanary.txt'),
    c('encoded NUL before an extension', '/sqlite3.wasm%00.html'),
    c('encoded NUL in a .. segment', '/..%00/canary.txt'),
    c('encoded NUL alone', '/%00'),
    c('double-encoded NUL %2500', '/sqlite3.wasm%2500.html'),
    c('overlong UTF-8 dots %c0%ae', '/%c0%ae%c0%ae/canary.txt'),
    c('three-byte overlong dots %e0%80%ae', '/%e0%80%ae%e0%80%ae/canary.txt'),
    c('overlong UTF-8 slash %c0%af', '/..%c0%afcanary.txt'),
    c('overlong slash around dots', '/%c0%af..%c0%afcanary.txt'),
    c('double-encoded overlong dots', '/%25c0%25ae%25c0%25ae/canary.txt'),
    c('IIS %u escapes', '/%u002e%u002e/canary.txt'),
    c('full-width dots (not dots)', '/%ef%bc%8e%ef%bc%8e/canary.txt'),
    c('four dots and a double slash', '/....//canary.txt'),
    c('dot segment /./', '/./sqlite3.wasm', { ok: SQLITE }),
    c('bare encoded dot', '/%2e/sqlite3.wasm', { ok: SQLITE }),
    c('double slash to /etc/passwd', '//etc/passwd'),
    c('absolute /etc/passwd', '/etc/passwd'),
    c('double slash before a real file', '//sqlite3.wasm', { ok: SQLITE }),
    c('absolute path of the root on disk', `/${tree.root}/sqlite3.wasm`, { ok: SQLITE }),
    c('absolute path of the canary on disk', `/${tree.base}/canary.txt`),
    c('encoded absolute path of the canary', `/${encodeURIComponent(join(tree.base, 'canary.txt'))}`),
    c('semicolon before ..', '/sqlite3.wasm;/../canary.txt'),
    c('Tomcat ..; segment', '/..;/canary.txt'),
    c('.. hidden after ?', '/sqlite3.wasm?/../../canary.txt', { ok: SQLITE }),
    c('.. hidden after #', '/sqlite3.wasm#/../../canary.txt', { ok: SQLITE }),
    c('encoded ? before ..', '/%3f/../canary.txt'),
    c('encoded # before ..', '/%23/../canary.txt'),
    c('absolute-form target with ..', '/../canary.txt', { absoluteForm: true }),
    c('absolute-form target to a real file', '/sqlite3.wasm', { absoluteForm: true, ok: SQLITE }),
    c('symlink to a file outside the root', '/link-out.txt'),
    c('symlink with an absolute target outside the root', '/link-out-absolute.wasm'),
    c('chain of symlinks leading outside', '/chain.txt'),
    c('file under a symlinked directory outside the root', '/link-dir-out/secret.txt'),
    c('symlinked directory outside the root itself', '/link-dir-out/'),
    c('symlink to the parent directory', '/up/canary.txt'),
    c('symlink to the parent directory, back into the root', '/up/root/sqlite3.wasm', { ok: SQLITE }),
    c('dotfile .env', '/.env', { refuse: [404] }),
    c('encoded dotfile %2eenv', '/%2eenv', { refuse: [404] }),
    c('dotfile directory .git/config', '/.git/config', { refuse: [404] }),
    c('dotfile directory itself', '/.git/', { refuse: [404] }),
    c('nested dotfile sub/.secret', '/sub/.secret', { refuse: [404] }),
    c('nested encoded dotfile', '/sub/%2esecret', { refuse: [404] }),
    c('.. out of .well-known to a dotfile', '/.well-known/../.env'),
    c('.well-known nested below the top', '/sub/.well-known/security.txt', { refuse: [404] }),
    c('directory without index.html, with slash', '/nolisting/', { refuse: [404] }),
    c('directory without index.html, without slash', '/nolisting', { refuse: [404] }),
    c('a file with a trailing slash', '/sqlite3.wasm/', { refuse: [404] }),
    c('4 KB path', '/' + 'a'.repeat(4000)),
    c('6 KB path of segments', '/' + 'a/'.repeat(3000) + 'x.wasm'),
    c('8 KB of .. segments', '/..'.repeat(2700) + '/canary.txt'),
    c('64 KB path', '/' + 'a'.repeat(64 * 1024), { refuse: [400, 414, 431] }),
  ]
}

/** Strings that would reveal the filesystem; `echo` is what the client itself sent (an app's 404 may repeat it). */
function leaks (body: string, tree: Tree, echo: string[]): string[] {
  let text = body
  for (const e of echo) text = text.split(e).join('')
  const paths = [tree.base, tree.realBase, tree.root, process.cwd(), 'node_modules', '/etc', 'ENOENT', 'EACCES', 'ELOOP']
  return [OUTSIDE, OUTSIDE_DIR, DOTFILE, 'root:x:0:0', ...paths].filter(s => text.includes(s))
}

interface Surface { name: string, start: (root: string) => Promise<Running>, prefix: string, echoed: boolean }

const surfaces: Surface[] = [
  { name: 'the CLI app', start: (root) => startCliApp({ root }), prefix: '', echoed: false },
  // A plain Fastify app's own 404 and bad-URL answers repeat the request URL; that echoes the client, not the disk.
  { name: 'the plugin under /static', start: (root) => startPluginApp({ root, prefix: '/static' }), prefix: '/static', echoed: true },
]

for (const surface of surfaces) {
  t.test(`${surface.name} refuses every hostile target and keeps serving`, async (t) => {
    const tree = await makeTree(t)
    const server = await surface.start(tree.root)
    t.teardown(server.close)
    const cases = corpus(tree)
    t.ok(cases.length >= 40, `the corpus has at least 40 targets (${cases.length})`)

    for (const kase of cases) {
      const target = kase.absoluteForm === true ? `http://127.0.0.1:${server.port}${surface.prefix}${kase.target}` : surface.prefix + kase.target
      const res = await rawRequest({ port: server.port, target })
      const label = `${kase.name} (${kase.target.length > 60 ? kase.target.slice(0, 60) + '…' : kase.target})`
      const refused = (kase.refuse ?? [400, 403, 404]).includes(res.status)
      const servedInside = kase.ok !== undefined && res.status === 200 && res.body.equals(kase.ok)
      t.ok(refused || servedInside, `${label}: refused or a file inside the root`, { status: res.status, body: res.body.toString('latin1').slice(0, 200) })
      t.ok(res.status < 500, `${label}: no 5xx`, { status: res.status })
      const echo = surface.echoed ? [target, decodeSafely(target)] : []
      t.same(leaks(res.body.toString('latin1'), tree, echo), [], `${label}: body reveals nothing from the disk`)
      if (res.status === 200) await checkConsistent(t, res, label)
      await checkStillServing(t, server, surface.prefix, label)
    }

    const wellKnown = await rawRequest({ port: server.port, target: `${surface.prefix}/.well-known/security.txt` })
    t.equal(wellKnown.status, 200, '.well-known/security.txt is served although it is under a dot directory')
    t.same(wellKnown.body, SECURITY_TXT, '.well-known/security.txt comes back byte for byte')
    const linkIn = await rawRequest({ port: server.port, target: `${surface.prefix}/link-in.wasm` })
    t.equal(linkIn.status, 200, 'a symlink to a file inside the root is served')
    t.ok(linkIn.body.equals(SQLITE), 'the symlink inside the root serves its target\'s bytes')
    t.equal(linkIn.headers['content-type'], 'application/wasm', 'the symlink is typed by its own name')
    const nested = await rawRequest({ port: server.port, target: `${surface.prefix}/nolisting/a.txt` })
    t.same(nested.body, NESTED, 'a file inside a directory without index.html is served')
    const head = await rawRequest({ port: server.port, target: `${surface.prefix}/.env`, method: 'HEAD' })
    t.equal(head.status, 404, 'HEAD on a dotfile is 404 too')
    t.same(server.logs.filter(l => Number(l.level) >= 50), [], 'nothing was logged as an error')
  })
}

t.test('the plugin under /static leaves the app\'s own routes answering after the corpus', async (t) => {
  const tree = await makeTree(t)
  const server = await startPluginApp({ root: tree.root, prefix: '/static' })
  t.teardown(server.close)
  for (const target of ['/static/../app-route', '/static/%2e%2e/app-route', '/static/..%2fapp-route']) {
    const res = await rawRequest({ port: server.port, target })
    t.not(res.status, 200, `${target} does not reach another route through the prefix`)
  }
  const own = await rawRequest({ port: server.port, target: '/app-route' })
  t.equal(own.status, 200, 'the app\'s own route still answers')
})

function decodeSafely (s: string): string {
  try { return decodeURI(s) } catch { return s }
}

async function checkConsistent (t: Test, res: RawResponse, label: string): Promise<void> {
  t.equal(Number(res.headers['content-length']), res.body.length, `${label}: Content-Length matches the body`)
  t.equal(res.headers.etag, etagOf(res.body), `${label}: ETag matches the body`)
}

async function checkStillServing (t: Test, server: Running, prefix: string, label: string): Promise<void> {
  const res = await rawRequest({ port: server.port, target: `${prefix}/sqlite3.wasm` })
  if (res.status !== 200 || !res.body.equals(SQLITE)) t.fail(`after ${label}: a normal request is still served`, { status: res.status })
}
