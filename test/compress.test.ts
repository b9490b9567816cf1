import { spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs'
import { lstat, mkdir, mkdtemp, readFile, readdir, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { pathToFileURL } from 'node:url'
import t, { type Test } from 'tap'
import { writeAtomic, writeAtomicStream } from '../src/atomic-write.js'
import { parseCompressArgs } from '../src/compress/args.js'
import { runCompress } from '../src/compress/index.js'
import { encode } from '../src/codecs.js'
import { encodingOf, encodingOfSuffix, zstdAvailable, type EncodingToken } from '../src/encodings.js'
import { decode } from './helpers/decode.js'

const SQLITE_WASM = new URL('../node_modules/@sqlite.org/sqlite-wasm/sqlite-wasm/jswasm/sqlite3.wasm', import.meta.url)
const wasm = readFileSync(SQLITE_WASM)
const js = Array.from({ length: 1500 }, (_, i) => `export function f${i} (x) { return x * ${i} + ${i % 7} }\n`).join('')
const html = `<!doctype html><title>t</title>${'<p>wasm-serve compresses this page.</p>\n'.repeat(100)}`
const json = JSON.stringify(Array.from({ length: 300 }, (_, i) => ({ id: i, name: `item ${i}` })))

/** Captures what the command prints; stdout is not a TTY, so output is plain lines and the table. */
function capture (): { io: { stdout: Writable, stderr: Writable }, out: () => string, err: () => string } {
  let out = ''
  let err = ''
  const sink = (add: (s: string) => void): Writable => new Writable({ write (chunk, _enc, cb) { add(String(chunk)); cb() } })
  return { io: { stdout: sink(s => { out += s }), stderr: sink(s => { err += s }) }, out: () => out, err: () => err }
}

async function compress (...argv: string[]): Promise<{ code: number, out: string, err: string }> {
  return compressWith({}, ...argv)
}

/** As compress(), with stdout a TTY (the progress bar) or progress lines every `progressEveryMs`. */
async function compressWith (opts: { tty?: boolean, progressEveryMs?: number }, ...argv: string[]): Promise<{ code: number, out: string, err: string }> {
  const c = capture()
  if (opts.tty === true) Object.assign(c.io.stdout, { isTTY: true })
  const code = await runCompress(argv, { ...c.io, progressEveryMs: opts.progressEveryMs })
  return { code, out: c.out(), err: c.err() }
}

/** Every file under dir with its size, inode and mtime in ns: what "nothing was rewritten" compares. */
function snapshot (dir: string): Map<string, string> {
  const map = new Map<string, string>()
  for (const name of readdirSync(dir, { recursive: true }) as string[]) {
    const st = statSync(join(dir, name), { bigint: true })
    if (st.isFile()) map.set(name, `${st.size}:${st.ino}:${st.mtimeNs}:${readFileSync(join(dir, name)).toString('base64').slice(0, 64)}`)
  }
  return map
}

function textTree (t: Test): string {
  return t.testdir({ 'app.js': js, 'index.html': html, sub: { 'data.json': json } })
}

/** Asserts that every sibling present decodes to exactly its original's bytes. */
async function assertSiblingsDecode (t: Test, dir: string): Promise<number> {
  let count = 0
  for (const name of await readdir(dir, { recursive: true })) {
    const enc = encodingOfSuffix(name)
    if (enc === undefined || name.startsWith('.')) continue
    const original = await readFile(join(dir, name.slice(0, -enc.suffix.length)))
    const decoded = await decode(await readFile(join(dir, name)), enc.token)
    t.ok(decoded.equals(original), `${name} decodes to its original`)
    count++
  }
  return count
}

const tempFiles = (dir: string): string[] => (readdirSync(dir, { recursive: true }) as string[]).filter(n => n.endsWith('.tmp'))

t.test('writes br and gzip siblings of sqlite3.wasm and text files that decode byte for byte', async t => {
  const dir = t.testdir({ 'sqlite3.wasm': wasm, 'app.js': js, 'index.html': html, sub: { 'data.json': json } })
  const r = await compress(dir)
  t.equal(r.code, 0, r.err)
  for (const name of ['sqlite3.wasm', 'app.js', 'index.html', 'sub/data.json']) {
    t.ok(existsSync(join(dir, `${name}.br`)), `${name}.br written`)
    t.ok(existsSync(join(dir, `${name}.gz`)), `${name}.gz written`)
    t.equal(existsSync(join(dir, `${name}.zst`)), zstdAvailable, `${name}.zst only where Node has zstd`)
  }
  t.equal(await assertSiblingsDecode(t, dir), zstdAvailable ? 12 : 8)
  t.ok(statSync(join(dir, 'sqlite3.wasm.br')).size < statSync(join(dir, 'sqlite3.wasm.gz')).size, 'br beats gzip on wasm')
})

t.test('the summary table lists every file with original, br, zstd (where Node has it), gzip and saving', async t => {
  const dir = textTree(t)
  const r = await compress(dir)
  t.match(r.out, zstdAvailable ? /^file\s+original\s+br\s+zstd\s+gzip\s+saving$/m : /^file\s+original\s+br\s+gzip\s+saving$/m)
  for (const name of ['app.js', 'index.html', join('sub', 'data.json')]) {
    t.match(r.out, new RegExp(`^${join(dir, name).replace(/[.\\/]/g, '\\$&')}\\s+[\\d,]+\\s+[\\d,]+\\s`, 'm'), `${name} has a row`)
  }
  t.match(r.out, /^total \(3 files\)\s+[\d,]+/m)
  t.match(r.out, /wrote \d+ siblings/)
})

t.test('counts read as English: 1 sibling, 1 worker thread, 1 file', async t => {
  const dir = t.testdir({ 'app.js': js })
  const r = await compress(dir, '--encodings', 'gzip')
  t.equal(r.code, 0, r.err)
  t.match(r.out, /^total \(1 file\)\s/m)
  t.match(r.out, /^wrote 1 sibling, kept 0 up to date, 0 not smaller \(not written\); \d+\.\d s on 1 worker thread$/m)
  const dry = await compress(t.testdir({ 'app.js': js }), '--encodings', 'gzip', '--dry-run')
  t.match(dry.out, /^dry run: 1 sibling would be written/m)
})

t.test('the table has a column for each encoding of the run and no other', async t => {
  const r = await compress(textTree(t), '--encodings', 'gzip')
  t.equal(r.code, 0, r.err)
  t.match(r.out, /^file\s+original\s+gzip\s+saving$/m)
  t.notMatch(r.out, /\bbr\b|zstd/)
  t.match(r.out, /^total \(3 files\)\s+[\d,]+\s+[\d,]+\s+\d+\.\d%$/m)
})

t.test('the dry-run table shows new siblings as new and no made-up totals or savings', async t => {
  const dir = textTree(t)
  const original = [js, html, json].reduce((s, text) => s + Buffer.byteLength(text), 0)
  const r = await compress(dir, '--dry-run', '--encodings', 'br,gzip')
  t.equal(r.code, 0, r.err)
  t.match(r.out, new RegExp(`^${join(dir, 'app.js').replace(/[.\\/]/g, '\\$&')}\\s+[\\d,]+\\s+new\\s+new\\s+-$`, 'm'))
  t.match(r.out, new RegExp(`^total \\(3 files\\)\\s+${original.toLocaleString('en-US')}\\s+-\\s+-\\s+-$`, 'm'), 'no original size in the br column')
  t.match(r.out, /^new: would be written/m)
})

t.test('a second run rewrites nothing: bytes, inodes and mtimes are unchanged', async t => {
  const dir = textTree(t)
  t.equal((await compress(dir)).code, 0)
  const before = snapshot(dir)
  const again = await compress(dir)
  t.equal(again.code, 0)
  t.same(snapshot(dir), before)
  t.match(again.out, /wrote 0 siblings, kept \d+ up to date/)
})

t.test('--dry-run writes nothing and lists what it would write', async t => {
  const dir = textTree(t)
  const before = snapshot(dir)
  const r = await compress(dir, '--dry-run')
  t.equal(r.code, 0)
  t.same(snapshot(dir), before)
  t.match(r.out, /would write .*app\.js/)
  t.match(r.out, /nothing was written/)
})

t.test('--force rewrites up-to-date siblings', async t => {
  const dir = textTree(t)
  await compress(dir)
  const inode = statSync(join(dir, 'app.js.br')).ino
  const r = await compress(dir, '--force')
  t.equal(r.code, 0)
  t.not(statSync(join(dir, 'app.js.br')).ino, inode, 'a new file was renamed into place')
  t.match(r.out, /wrote [1-9]\d* siblings/)
})

t.test('a changed original gets fresh siblings; stale or corrupt siblings are replaced', async t => {
  const dir = textTree(t)
  await compress(dir)
  await writeFile(join(dir, 'app.js'), js + '\nexport const changed = true\n')
  await utimes(join(dir, 'app.js'), new Date(), new Date(Date.now() + 5000))
  await writeFile(join(dir, 'index.html.gz'), 'not gzip at all')
  const r = await compress(dir)
  t.equal(r.code, 0, r.err)
  t.equal(await assertSiblingsDecode(t, dir), zstdAvailable ? 9 : 6)
})

t.test('a file that does not shrink gets no sibling, and nothing of the user is removed', async t => {
  const dir = t.testdir({ 'noise.wasm': randomBytes(8192), 'app.js': js })
  const r = await compress(dir)
  t.equal(r.code, 0)
  t.notOk(existsSync(join(dir, 'noise.wasm.br')))
  t.notOk(existsSync(join(dir, 'noise.wasm.gz')))
  t.match(r.out, /noise\.wasm\s+8,192\s+larger/)
})

t.test('skips dotfiles, small files, media, and the siblings themselves', async t => {
  const dir = t.testdir({
    '.secret.js': js,
    '.cache': { 'x.js': js },
    'tiny.js': 'export {}',
    'logo.png': randomBytes(4000),
    'pre.js': js,
    'pre.js.br': 'user-made, stale',
    'pre.js.gz': 'also user-made',
  })
  const r = await compress(dir, '--encodings', 'br')
  t.equal(r.code, 0, r.err)
  const names = readdirSync(dir, { recursive: true }) as string[]
  t.same(names.filter(n => n.endsWith('.br')).sort(), ['pre.js.br'])
  t.notOk(existsSync(join(dir, 'pre.js.br.br')))
  t.equal(readFileSync(join(dir, 'pre.js.gz'), 'utf8'), 'also user-made', '--encodings br leaves .gz alone')
})

t.test('--min-size accepts 1KiB style sizes and raises the threshold', async t => {
  const dir = t.testdir({ 'small.js': 'x'.repeat(3000), 'app.js': js })
  await compress(dir, '--min-size', '4KiB')
  t.notOk(existsSync(join(dir, 'small.js.br')))
  t.ok(existsSync(join(dir, 'app.js.br')))
})

t.test('never follows a symlink out of the dir, but compresses one that stays inside', async t => {
  const outside = await mkdtemp(join(tmpdir(), 'wasm-serve-outside-'))
  t.teardown(() => rm(outside, { recursive: true, force: true }))
  await writeFile(join(outside, 'secret.js'), js)
  const dir = textTree(t)
  await symlink(join(outside, 'secret.js'), join(dir, 'evil.js'))
  await symlink(outside, join(dir, 'evildir'))
  await symlink('app.js', join(dir, 'alias.js'))
  const r = await compress(dir)
  t.equal(r.code, 0, r.err)
  t.same(readdirSync(outside), ['secret.js'], 'nothing written outside')
  t.notOk(existsSync(join(dir, 'evil.js.br')))
  t.match(r.err, /skipped .*evil\.js: symlink leading out of/)
  t.ok(existsSync(join(dir, 'alias.js.br')), 'inside link gets a sibling next to it')
})

t.test('a missing dir is a usage error (exit 2, as in the server) that names it', async t => {
  const missing = join(tmpdir(), `wasm-serve-missing-${process.pid}`)
  const r = await compress(missing)
  t.equal(r.code, 2)
  t.equal(r.err, `wasm-serve compress: no such directory: ${missing}\n`)
})

t.test('a file given as the dir is a usage error (exit 2)', async t => {
  const dir = textTree(t)
  const r = await compress(join(dir, 'app.js'))
  t.equal(r.code, 2)
  t.equal(r.err, `wasm-serve compress: ${join(dir, 'app.js')} is a file, not a directory: give the directory it is in\n`)
})

t.test('a sibling path that is a directory exits non-zero naming it; other siblings are still written', async t => {
  const dir = textTree(t)
  await mkdir(join(dir, 'app.js.br'))
  const r = await compress(dir)
  t.equal(r.code, 1)
  t.match(r.err, `cannot write ${join(dir, 'app.js.br')}: exists and is not a regular file`)
  t.ok(existsSync(join(dir, 'app.js.gz')))
  t.same(tempFiles(dir), [])
})

t.test('an unwritable directory exits non-zero naming the sibling it could not write', async t => {
  const dir = textTree(t)
  const sub = join(dir, 'sub')
  const root = process.getuid?.() === 0
  // root ignores permission bits, but not the immutable attribute.
  const lock = root ? spawnSync('chattr', ['+i', sub]) : spawnSync('chmod', ['555', sub])
  if (lock.status !== 0) {
    t.skip(`cannot make a read-only dir here: ${String(lock.stderr).trim()}`, async () => {})
    return
  }
  let r
  try {
    r = await compress(dir)
  } finally {
    spawnSync(root ? 'chattr' : 'chmod', [root ? '-i' : '755', sub]) // before tap removes the testdir
  }
  t.equal(r.code, 1)
  t.match(r.err, new RegExp(`cannot write ${join(sub, 'data.json')}\\.(br|gz|zst): (permission denied|operation not permitted)`))
  t.ok(existsSync(join(dir, 'app.js.br')), 'the rest is still compressed')
  t.same(tempFiles(dir), [])
})

t.test('on a Node without zstd, says once that zstd was skipped and why', { skip: zstdAvailable && 'this Node has zstd' }, async t => {
  const r = await compress(textTree(t))
  t.equal(r.err.match(/zstd skipped/g)?.length, 1)
  t.match(r.err, /Node v\d+\.\d+\.\d+ has no zstd in node:zlib \(added in 22\.15 and 23\.8\)/)
})

t.test('on a Node without zstd, --encodings zstd exits 1 having written the other siblings; the default list exits 0', { skip: zstdAvailable && 'this Node has zstd' }, async t => {
  const dir = textTree(t)
  const named = await compress(dir, '--encodings', 'zstd,gzip')
  t.equal(named.code, 1)
  t.match(named.err, /zstd skipped: .*; no \.zst written \(named in --encodings: exit 1\)/)
  t.ok(existsSync(join(dir, 'app.js.gz')), 'gzip still written')
  const only = await compress(dir, '--encodings', 'zstd')
  t.equal(only.code, 1, 'nothing but zstd asked: nothing written, exit 1')
  t.match(only.out, /^total \(\d+ files?\)\s+[\d,]+\s+-$/m, 'no saving is claimed where nothing was written')
  t.equal((await compress(textTree(t))).code, 0, 'zstd not named: dropped with a note')
})

t.test('siblings streamed through the encoder a chunk at a time are the one-shot encoding, byte for byte', async t => {
  // Over 1 MiB: more than one chunk reaches the encoder.
  const text = Buffer.from(Array.from({ length: 40_000 }, (_, i) => `{"id":${i},"name":"item ${i % 977}"}\n`).join(''))
  t.ok(text.length > 2 ** 20)
  const dir = t.testdir({ 'big.json': text })
  const tokens: EncodingToken[] = zstdAvailable ? ['br', 'zstd', 'gzip'] : ['br', 'gzip']
  t.equal((await compress(dir, '--encodings', tokens.join(','))).code, 0)
  for (const token of tokens) {
    const sibling = readFileSync(join(dir, `big.json${encodingOf(token).suffix}`))
    t.ok(sibling.equals(await encode(text, token, 'max')), `${token}: the same bytes as one-shot`)
  }
})

t.test('a pipe gets lines with bytes done, elapsed time and ETA for a file still being encoded', async t => {
  const big = Buffer.concat(Array.from({ length: 12 }, (_, i) => Buffer.concat([wasm, Buffer.from([i])])))
  const dir = t.testdir({ 'big.wasm': big })
  const r = await compressWith({ progressEveryMs: 20 }, dir, '--encodings', 'gzip')
  t.equal(r.code, 0, r.err)
  const size = (big.length / 1e6).toFixed(1)
  const lines = r.out.split('\n').filter(l => l.startsWith(`${join(dir, 'big.wasm')} gzip: `))
  t.ok(lines.length > 0, `progress lines while encoding (${lines.length})`)
  for (const line of lines) t.match(line, new RegExp(`gzip: \\d+\\.\\d MB of ${size.replace('.', '\\.')} MB \\(\\d+%\\), \\d+ s elapsed, ETA (\\d+ s|unknown)$`))
  t.ok(lines.some(l => !/: 0\.0 MB of/.test(l)), 'bytes move before the file is done')
})

t.test('on a terminal the bar counts bytes and shows elapsed time and ETA', async t => {
  const dir = t.testdir({ 'm.wasm': wasm, 'app.js': js })
  const r = await compressWith({ tty: true }, dir, '--encodings', 'gzip')
  t.equal(r.code, 0, r.err)
  const total = ((wasm.length + Buffer.byteLength(js)) / 1e6).toFixed(1)
  t.match(r.out, new RegExp(`compressing .* \\d+% \\| \\d+\\.\\d MB of ${total.replace('.', '\\.')} MB \\| \\w+ elapsed, ETA \\w+ \\| \\d/2 siblings`))
})

t.test('bad usage exits 2 with one line; --help exits 0', async t => {
  t.equal((await compress()).code, 2)
  const bad = await compress('dist', '--encodings', 'br,lzma')
  t.equal(bad.code, 2)
  t.equal(bad.err, 'wasm-serve compress: unknown encoding "lzma" in --encodings (expected br,zstd,gzip) (see wasm-serve compress --help)\n')
  t.equal((await compress('dist', '--bogus')).err, 'wasm-serve compress: unknown flag --bogus (see wasm-serve compress --help)\n')
  const typo = await compress('dist', '--min-siz', '3')
  t.equal(typo.code, 2)
  t.equal(typo.err, 'wasm-serve compress: unknown flag --min-siz (did you mean --min-size?) (see wasm-serve compress --help)\n')
  t.equal((await compress('dist', '--encodings', 'zst')).err, 'wasm-serve compress: unknown encoding "zst" in --encodings (expected br,zstd,gzip; did you mean zstd?) (see wasm-serve compress --help)\n')
  t.equal((await compress('dist', '--dry-run=yes')).err, 'wasm-serve compress: --dry-run takes no value, got "yes" (see wasm-serve compress --help)\n')
  const help = await compress('--help')
  t.equal(help.code, 0)
  t.match(help.out, /Usage: wasm-serve compress <dir>/)
})

t.test('parseCompressArgs reads sizes, encoding lists and flags', async t => {
  const opts = (argv: string[]): unknown => { const p = parseCompressArgs(argv); return p.kind === 'run' ? p.options : p }
  t.match(opts(['d']), { dir: 'd', encodings: ['br', 'zstd', 'gzip'], minSize: 1024, dryRun: false, force: false })
  t.match(opts(['d', '--min-size', '1KB']), { minSize: 1024 })
  t.match(opts(['d', '--min-size', '2MiB']), { minSize: 2 * 2 ** 20 })
  t.match(opts(['d', '--min-size', '512']), { minSize: 512 })
  t.match(opts(['d', '--min-size', '12abc']), { kind: 'error' })
  t.match(opts(['d', '--encodings', 'GZIP,br,gzip']), { encodings: ['br', 'gzip'] })
  t.match(opts(['d', '--dry-run', '--force']), { dryRun: true, force: true })
  t.match(opts(['d', '--min-size=2MiB', '--encodings=br']), { minSize: 2 * 2 ** 20, encodings: ['br'] }, '--flag=value as --flag value')
  t.match(opts(['a', 'b']), { kind: 'error', message: 'expected one <dir>, got "a", "b"' })
  t.match(opts(['d', '--min-size']), { kind: 'error', flag: '--min-size', message: '--min-size needs a value (SIZE)' })
})

t.test('an atomic write that fails leaves neither the target changed nor a temp file', async t => {
  const dir = t.testdir({ 'target.br': {} })
  const temps = new Set<string>()
  await t.rejects(writeAtomic(join(dir, 'target.br'), Buffer.from('data'), { mode: 0o644, mtimeMs: Date.now(), temps }))
  t.equal(temps.size, 0)
  t.same(readdirSync(dir), ['target.br'])
  t.ok((await stat(join(dir, 'target.br'))).isDirectory())
})

t.test('an atomic stream write whose writer fails leaves no temp file and no target', async t => {
  const dir = t.testdir({})
  const temps = new Set<string>()
  const fill = async (out: NodeJS.WritableStream): Promise<void> => {
    out.write('half of it')
    throw new Error('encoder failed')
  }
  await t.rejects(writeAtomicStream(join(dir, 'a.gz'), fill, { temps }), /encoder failed/)
  t.equal(temps.size, 0)
  t.same(readdirSync(dir), [])
})

t.test('an atomic write never follows a symlink planted at its temp name', async t => {
  // The temp name is predictable once the random part is: plant a link there to a file outside.
  const mocked = await t.mockImport<typeof import('../src/atomic-write.js')>('../src/atomic-write.js', {
    'node:crypto': { randomBytes: (n: number) => Buffer.alloc(n, 0xab) },
  })
  const dir = t.testdir({ outside: { 'victim.txt': 'keep me' }, site: { 'app.js.br': 'old' } })
  const planted = join(dir, 'site', `.app.js.br.${process.pid}-abababab.tmp`)
  await symlink(join(dir, 'outside', 'victim.txt'), planted)
  await t.rejects(mocked.writeAtomic(join(dir, 'site', 'app.js.br'), Buffer.from('evil'), { mode: 0o644 }), { code: 'EEXIST' })
  t.equal(await readFile(join(dir, 'outside', 'victim.txt'), 'utf8'), 'keep me', 'the link target is untouched')
  t.equal(await readFile(join(dir, 'site', 'app.js.br'), 'utf8'), 'old', 'the target is untouched')
  t.ok((await lstat(planted)).isSymbolicLink(), 'what someone else put there is left alone')
})

/** Runs the command in a child process (TypeScript sources via tap's loader, or the built dist/). */
async function spawnCompress (t: Test, dir: string, opts: { module: string, execArgv: string[] }): Promise<ReturnType<typeof spawn>> {
  const runnerDir = await mkdtemp(join(tmpdir(), 'wasm-serve-runner-'))
  t.teardown(() => rm(runnerDir, { recursive: true, force: true }))
  const runner = join(runnerDir, 'run.mjs')
  await writeFile(runner, `import { runCompress } from ${JSON.stringify(pathToFileURL(opts.module).href)}\n` +
    'process.exitCode = await runCompress(process.argv.slice(2))\n')
  return spawn(process.execPath, [...opts.execArgv, runner, dir], { stdio: ['ignore', 'pipe', 'pipe'] })
}

const SRC = { module: new URL('../src/compress/index.ts', import.meta.url).pathname, execArgv: process.execArgv }
const DIST = { module: new URL('../dist/compress/index.js', import.meta.url).pathname, execArgv: [] }

function wasmTree (t: Test, copies: number): string {
  const files: Record<string, Buffer> = {}
  for (let i = 0; i < copies; i++) files[`m${i}.wasm`] = Buffer.concat([wasm, Buffer.from([i])])
  return t.testdir(files)
}

/** Kills the child with `signal` once it reports its first finished file, mid-run. */
async function interruptMidway (t: Test, signal: NodeJS.Signals): Promise<{ code: number | null, signal: string | null, dir: string }> {
  const dir = wasmTree(t, 4)
  const child = await spawnCompress(t, dir, SRC)
  let stderr = ''
  child.stderr?.on('data', d => { stderr += String(d) })
  child.stdout?.once('data', () => child.kill(signal))
  const [code, sig] = await new Promise<[number | null, string | null]>(resolve => child.on('exit', (c, s) => resolve([c, s])))
  t.comment(stderr.trim())
  return { code, signal: sig, dir }
}

t.test('SIGINT mid-run exits 130 leaving complete siblings only and no temp files', async t => {
  const r = await interruptMidway(t, 'SIGINT')
  t.equal(r.code, 130)
  t.same(tempFiles(r.dir), [], 'temp files removed')
  const written = await assertSiblingsDecode(t, r.dir)
  t.ok(written >= 1 && written < 8, `interrupted part-way (${written} of 8 siblings)`)
})

t.test('SIGKILL mid-run never leaves a truncated sibling', async t => {
  const r = await interruptMidway(t, 'SIGKILL')
  t.equal(r.signal, 'SIGKILL')
  await assertSiblingsDecode(t, r.dir)
  for (const name of tempFiles(r.dir)) t.ok(name.startsWith('.'), `leftover ${name} is a dotfile, never served`)
  const next = await compress(r.dir, '--encodings', 'gzip')
  t.equal(next.code, 0, next.err)
  t.same(tempFiles(r.dir), [], 'the next run removes temp files whose process is gone')
  await assertSiblingsDecode(t, r.dir)
})

t.test('a leftover temp file of a dead run is removed, one of a live run is kept', async t => {
  const dead = spawnSync(process.execPath, ['-e', '']).pid
  const dir = t.testdir({
    'app.js': js,
    [`.app.js.br.${dead}-0badc0de.tmp`]: 'partial',
    [`.app.js.gz.${process.pid}-0badc0de.tmp`]: 'in progress',
    '.my-notes.tmp': 'user file',
  })
  const r = await compress(dir, '--encodings', 'gzip')
  t.match(r.err, /removed .*\.app\.js\.br\.\d+-0badc0de\.tmp, left by an interrupted run/)
  t.same(readdirSync(dir).filter(n => n.startsWith('.')).sort(), [`.app.js.gz.${process.pid}-0badc0de.tmp`, '.my-notes.tmp'])
})

t.test('the built dist/ runs its worker threads from worker.js', { skip: !existsSync(DIST.module) && 'dist/ not built (npm run build)' }, async t => {
  const dir = textTree(t)
  const child = await spawnCompress(t, dir, DIST)
  let err = ''
  child.stderr?.on('data', d => { err += String(d) })
  const code = await new Promise(resolve => child.on('exit', resolve))
  t.equal(code, 0, err)
  t.equal(await assertSiblingsDecode(t, dir), zstdAvailable ? 9 : 6)
})

t.test('a file name with control characters is printed escaped, never raw to the terminal', async t => {
  const dir = textTree(t)
  await writeFile(join(dir, 'evil\r\nwasm-serve compress: fake line.js'), 'export const x = 1\n'.repeat(200))
  const r = await compress(dir)
  t.equal(r.code, 0)
  t.notMatch(r.out + r.err, /\r\nwasm-serve compress: fake line/, 'no raw CR LF from a file name')
  t.match(r.out, /evil\\r\\nwasm-serve compress: fake line\.js/, 'the name appears escaped in the table')
})
