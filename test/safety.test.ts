// D14: hostile request targets, sent byte for byte over a bare socket, never reach a byte outside
// the root or a dotfile, never crash or 5xx the server, and no error body names a filesystem path.
// The same corpus runs against the CLI's app and the plugin under a prefix.
import t, { type Test } from 'tap'
import { randomUUID } from 'node:crypto'
import { realpath, symlink } from 'node:fs/promises'
import { join } from 'node:path'
import { rawRequest, type RawResponse } from './helpers/raw-http.js'
import { etagOf, startCliApp, startPlugin, type Running } from './helpers/server.js'
import { SQLITE, tempDir, writeFiles } from './helpers/site.js'

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
  const base = tempDir(t, 'safety')
  const root = join(base, 'root')
  writeFiles(base, {
    'canary.txt': `${OUTSIDE}\n`,
    'canary.wasm': `${OUTSIDE}\n`,
    'outside/secret.txt': `${OUTSIDE_DIR}\n`,
    'root/sqlite3.wasm': SQLITE,
    'root/index.html': '<!doctype html><title>safety</title>\n',
    'root/.env': `SECRET=${DOTFILE}\n`,
    'root/.git/config': `[core]\n# ${DOTFILE}\n`,
    'root/sub/.secret': `${DOTFILE}\n`,
    'root/sub/file.txt': NESTED,
    'root/nolisting/a.txt': NESTED,
    'root/nolisting/b.wasm': SQLITE.subarray(0, 64),
    'root/.well-known/security.txt': SECURITY_TXT,
  })
  await symlink('../canary.txt', join(root, 'link-out.txt'))
  await symlink(join(base, 'canary.wasm'), join(root, 'link-out-absolute.wasm'))
  await symlink('link-out.txt', join(root, 'chain.txt'))
  await symlink('../outside', join(root, 'link-dir-out'))
  await symlink('..', join(root, 'up'))
  await symlink('sqlite3.wasm', join(root, 'link-in.wasm'))
  return { base, root, realBase: await realpath(base) }
}

/** Stands for the server's origin and mount prefix: the target is sent in absolute form (http://host/…). */
const ABSOLUTE = 'http://HOST'

/** Targets with one expected outcome, by what each one tries. */
interface Group {
  /** Statuses that are a correct refusal. */
  refuse: number[]
  /** A 200 with sqlite3.wasm's bytes is correct too: the target, however odd, names it inside the root. */
  inside?: true
  targets: Record<string, string>
}

function corpus (tree: Tree): Group[] {
  const escapes = {
    'plain .. segment': '/../canary.txt',
    'many plain .. segments to /etc/passwd': '/../../../../../../../../etc/passwd',
    '.. after a real directory': '/sub/../../canary.txt',
    '.. as the last segment': '/sub/file.txt/..',
    'bare ..': '/..',
    'encoded dots %2e%2e': '/%2e%2e/canary.txt',
    'upper-case encoded dots %2E%2E': '/%2E%2E/canary.txt',
    'half-encoded dots .%2e': '/.%2e/canary.txt',
    'half-encoded dots %2e.': '/%2e./canary.txt',
    'mixed-case encoded dots and slash': '/%2E%2e%2Fcanary.txt',
    'double-encoded dots %252e%252e': '/%252e%252e/canary.txt',
    'double-encoded dots and slash': '/%252E%252E%252Fcanary.txt',
    'double-encoded dots after a real directory': '/sub/%252e%252e/%252e%252e/canary.txt',
    'dots with an encoded slash ..%2f': '/..%2fcanary.txt',
    'fully encoded ../ %2e%2e%2f': '/%2e%2e%2fcanary.txt',
    'encoded ../../../etc/passwd': '/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd',
    'fifty ..%2f to /etc/passwd': '/' + '..%2f'.repeat(50) + 'etc/passwd',
    'encoded slash after a real directory': '/sub/..%2f..%2fcanary.txt',
    'dots with an encoded backslash ..%5c': '/..%5ccanary.txt',
    'encoded dots and backslash': '/%2e%2e%5ccanary.txt',
    'raw backslashes \\..\\': '/\\..\\canary.txt',
    'raw backslashes after a real directory': '/sub\\..\\..\\canary.txt',
    'encoded backslashes %5c..%5c': '/%5c..%5ccanary.txt',
    'double-encoded backslash ..%255c': '/..%255c..%255ccanary.txt',
    'encoded NUL before an extension': '/sqlite3.wasm%00.html',
    'encoded NUL in a .. segment': '/..%00/canary.txt',
    'encoded NUL alone': '/%00',
    'double-encoded NUL %2500': '/sqlite3.wasm%2500.html',
    'overlong UTF-8 dots %c0%ae': '/%c0%ae%c0%ae/canary.txt',
    'three-byte overlong dots %e0%80%ae': '/%e0%80%ae%e0%80%ae/canary.txt',
    'overlong UTF-8 slash %c0%af': '/..%c0%afcanary.txt',
    'overlong slash around dots': '/%c0%af..%c0%afcanary.txt',
    'double-encoded overlong dots': '/%25c0%25ae%25c0%25ae/canary.txt',
    'IIS %u escapes': '/%u002e%u002e/canary.txt',
    'full-width dots (not dots)': '/%ef%bc%8e%ef%bc%8e/canary.txt',
    'four dots and a double slash': '/....//canary.txt',
    'double slash to /etc/passwd': '//etc/passwd',
    'absolute /etc/passwd': '/etc/passwd',
    'absolute path of the canary on disk': `/${tree.base}/canary.txt`,
    'encoded absolute path of the canary': `/${encodeURIComponent(join(tree.base, 'canary.txt'))}`,
    'semicolon before ..': '/sqlite3.wasm;/../canary.txt',
    'Tomcat ..; segment': '/..;/canary.txt',
    'encoded ? before ..': '/%3f/../canary.txt',
    'encoded # before ..': '/%23/../canary.txt',
    'absolute-form target with ..': `${ABSOLUTE}/../canary.txt`,
    'symlink to a file outside the root': '/link-out.txt',
    'symlink with an absolute target outside the root': '/link-out-absolute.wasm',
    'chain of symlinks leading outside': '/chain.txt',
    'file under a symlinked directory outside the root': '/link-dir-out/secret.txt',
    'symlinked directory outside the root itself': '/link-dir-out/',
    'symlink to the parent directory': '/up/canary.txt',
    '.. out of .well-known to a dotfile': '/.well-known/../.env',
    '4 KB path': '/' + 'a'.repeat(4000),
  }
  // Over 4096 characters: 414 URI Too Long (RFC 9110 §15.5.15); beyond Node's 16 KB of headers, 431.
  const long = {
    '6 KB path of segments': '/' + 'a/'.repeat(3000) + 'x.wasm',
    '8 KB of .. segments': '/..'.repeat(2700) + '/canary.txt',
    '64 KB path': '/' + 'a'.repeat(64 * 1024),
  }
  const inside = {
    'dot segment /./': '/./sqlite3.wasm',
    'bare encoded dot': '/%2e/sqlite3.wasm',
    'double slash before a real file': '//sqlite3.wasm',
    'absolute path of the root on disk': `/${tree.root}/sqlite3.wasm`,
    '.. hidden after ?': '/sqlite3.wasm?/../../canary.txt',
    '.. hidden after #': '/sqlite3.wasm#/../../canary.txt',
    'absolute-form target to a real file': `${ABSOLUTE}/sqlite3.wasm`,
    'symlink to the parent directory, back into the root': '/up/root/sqlite3.wasm',
  }
  const hidden = {
    'dotfile .env': '/.env',
    'encoded dotfile %2eenv': '/%2eenv',
    'dotfile directory .git/config': '/.git/config',
    'dotfile directory itself': '/.git/',
    'nested dotfile sub/.secret': '/sub/.secret',
    'nested encoded dotfile': '/sub/%2esecret',
    '.well-known nested below the top': '/sub/.well-known/security.txt',
    'directory without index.html, with slash': '/nolisting/',
    'directory without index.html, without slash': '/nolisting',
    'a file with a trailing slash': '/sqlite3.wasm/',
  }
  return [
    { refuse: [400, 403, 404], targets: escapes },
    { refuse: [400, 403, 404], inside: true, targets: inside },
    { refuse: [404], targets: hidden },
    { refuse: [414, 431], targets: long },
  ]
}

/** Strings that would reveal the filesystem; `echo` is what the client itself sent (an app's 404 may repeat it). */
function leaks (body: string, tree: Tree, echo: string[]): string[] {
  let text = body
  for (const e of echo) text = text.split(e).join('')
  const paths = [tree.base, tree.realBase, tree.root, process.cwd(), 'node_modules', '/etc', 'ENOENT', 'EACCES', 'ELOOP']
  return [OUTSIDE, OUTSIDE_DIR, DOTFILE, 'root:x:0:0', ...paths].filter(s => text.includes(s))
}

interface Surface { name: string, start: (t: Test, root: string) => Promise<Running>, prefix: string, echoed: boolean }

const surfaces: Surface[] = [
  { name: 'the CLI app', start: (t, root) => startCliApp(t, { root }), prefix: '', echoed: false },
  // A plain Fastify app's own 404 and bad-URL answers repeat the request URL; that echoes the client, not the disk.
  { name: 'the plugin under /static', start: startPluginUnderStatic, prefix: '/static', echoed: true },
]

/** The plugin as an app mounts it: under a prefix, next to a route of the app's own, watching the root (its default). */
function startPluginUnderStatic (t: Test, root: string): Promise<Running> {
  return startPlugin(t, { root, prefix: '/static', watch: true }, { before: app => app.get('/app-route', async () => 'the app\'s own route\n') })
}

for (const surface of surfaces) {
  t.test(`${surface.name} refuses every hostile target and keeps serving`, async (t) => {
    const tree = await makeTree(t)
    const server = await surface.start(t, tree.root)

    for (const group of corpus(tree)) {
      for (const [name, path] of Object.entries(group.targets)) {
        const target = path.startsWith(ABSOLUTE) ? `http://127.0.0.1:${server.port}${surface.prefix}${path.slice(ABSOLUTE.length)}` : surface.prefix + path
        const res = await rawRequest({ port: server.port, target })
        const label = `${name} (${path.length > 60 ? path.slice(0, 60) + '…' : path})`
        const refused = group.refuse.includes(res.status)
        const servedInside = group.inside === true && res.status === 200 && res.body.equals(SQLITE)
        t.ok(refused || servedInside, `${label}: refused or a file inside the root`, { status: res.status, body: res.body.toString('latin1').slice(0, 200) })
        t.ok(res.status < 500, `${label}: no 5xx`, { status: res.status })
        const echo = surface.echoed ? [target, decodeSafely(target)] : []
        t.same(leaks(res.body.toString('latin1'), tree, echo), [], `${label}: body reveals nothing from the disk`)
        if (res.status === 200) await checkConsistent(t, res, label)
        await checkStillServing(t, server, surface.prefix, label)
      }
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
  const server = await startPluginUnderStatic(t, tree.root)
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
