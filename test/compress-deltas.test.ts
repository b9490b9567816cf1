/**
 * `wasm-serve compress --dictionary-from <old-dist>`: deltas (RFC 9842) of a release's modules against
 * the files of an earlier one, written at build time next to the module as `<module>.<id>.dcz|dcb`.
 * Every delta is decoded here with node:zlib and the old bytes (not with the project's code) and
 * compared byte for byte with the new module.
 */
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import t, { type Test } from 'tap'
import { parseCompressArgs } from '../src/compress/args.js'
import { runCompress } from '../src/compress/index.js'
import { anyDictionarySupport, dictionarySupport } from '../src/dictionary.js'
import { SQLITE, writeFiles } from './helpers/site.js'
import { decodeDelta } from './helpers/decode.js'

/** An earlier release of sqlite3.wasm: the current one with two stretches changed, as a rebuild does. */
const OLD = Buffer.from(SQLITE)
OLD.write('an earlier release of this module', 400_000, 'latin1')
OLD.write('and one more change', 700_000, 'latin1')
const NEW = SQLITE
const JS_OLD = Array.from({ length: 1500 }, (_, i) => `export function f${i} (x) { return x * ${i} + ${i % 7} }\n`).join('')
const JS_NEW = JS_OLD.replace('f700 ', 'renamed700 ')
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest()
const idOf = (b: Buffer | string) => sha(b).subarray(0, 8).toString('hex')
const CODINGS = (['dcz', 'dcb'] as const).filter(c => dictionarySupport[c])

async function compress (...argv: string[]): Promise<{ code: number, out: string, err: string }> {
  let out = ''
  let err = ''
  const sink = (add: (s: string) => void) => new Writable({ write (chunk, _enc, cb) { add(String(chunk)); cb() } })
  const code = await runCompress(argv, { stdout: sink(s => { out += s }), stderr: sink(s => { err += s }) })
  return { code, out, err }
}

/** Every file under dir with its size, inode and mtime in ns: what "nothing was rewritten" compares. */
function snapshot (dir: string): Map<string, string> {
  const map = new Map<string, string>()
  for (const name of readdirSync(dir, { recursive: true }) as string[]) {
    const st = statSync(join(dir, name), { bigint: true })
    if (st.isFile()) map.set(name, `${st.size}:${st.ino}:${st.mtimeNs}`)
  }
  return map
}

/** A release 1 and a release 2: hashed module names that change, a plain script name that stays. */
function releases (t: Test): { old: string, dist: string } {
  const dir = t.testdir({ old: {}, dist: {} })
  writeFiles(join(dir, 'old'), { 'assets/sqlite3.1a2b3c4d.wasm': OLD, 'app.js': JS_OLD, 'assets/other.9f8e7d6c.wasm': OLD, 'index.html': '<!doctype html>' })
  writeFiles(join(dir, 'dist'), { 'assets/sqlite3.5e6f7a8b.wasm': NEW, 'app.js': JS_NEW, 'index.html': '<!doctype html><p>2' })
  return { old: join(dir, 'old'), dist: join(dir, 'dist') }
}

const WASM = 'assets/sqlite3.5e6f7a8b.wasm'

/** Why the delta tests below cannot run here, printed as their skip reason; false where they can. */
const noDeltas = anyDictionarySupport ? false : `Node ${process.version} cannot compress with a dictionary (Node 24 can)`
if (!anyDictionarySupport) {
  t.comment(`Node ${process.version} cannot compress with a dictionary: only the refusal is checked`)
}
t.test('writes <module>.<id>.dcz|dcb against the file the server would announce for it, decodable with the old bytes', { skip: noDeltas }, async t => {
  const { old, dist } = releases(t)
  const before = snapshot(old)
  const r = await compress(dist, '--dictionary-from', old)
  t.equal(r.code, 0, r.err)
  for (const coding of CODINGS) {
    for (const [module, previous] of [[WASM, OLD], ['app.js', Buffer.from(JS_OLD)]] as const) {
      const file = join(dist, `${module}.${idOf(previous)}.${coding}`)
      t.ok(existsSync(file), `${module}.<id>.${coding} written`)
      const body = readFileSync(file)
      t.same(decodeDelta(body, coding, previous), readFileSync(join(dist, module)), `${module}.${coding} decodes with the old file to the new one`)
      // To the microsecond: utimes takes seconds as a double, and Node 22 keeps nothing below a microsecond.
      t.ok(Math.abs(statSync(file).mtimeMs - statSync(join(dist, module)).mtimeMs) < 0.001, 'dated as its module, as siblings are, to the microsecond')
    }
  }
  const written = readdirSync(join(dist, 'assets')).filter(n => /\.dc[zb]$/.test(n))
  t.equal(written.length, CODINGS.length, 'other.*.wasm is not a dictionary for sqlite3.*.wasm: its pattern does not cover the URL')
  t.notOk(readdirSync(dist).some(n => n.startsWith('index.html.')), 'a page is no dictionary and gets no delta')
  t.same(snapshot(old), before, 'nothing written in the earlier release')
  const delta = readFileSync(join(dist, `${WASM}.${idOf(OLD)}.${CODINGS[0]}`))
  t.ok(delta.length * 10 < statSync(join(dist, `${WASM}.br`)).size, `a fraction of br (${delta.length} bytes)`)
  t.match(r.out, /module\s+dictionary\s+id\s+/, 'a table of the deltas')
  t.match(r.out, new RegExp(`sqlite3\\.5e6f7a8b\\.wasm\\s+\\S*old/assets/sqlite3\\.1a2b3c4d\\.wasm\\s+${idOf(OLD)}\\s+[\\d,]+\\s+`))
  const br = statSync(join(dist, `${WASM}.br`)).size.toLocaleString('en-US')
  t.match(r.out, new RegExp(`${idOf(OLD)}(\\s+[\\d,]+){${CODINGS.length}}\\s+${br}\\s+(99\\.\\d|100\\.0)%\n`), 'with the saving against the best ordinary encoding (br)')
  t.match(r.out, new RegExp(`wrote ${2 * CODINGS.length} deltas`))
})

t.test('a second run keeps up-to-date deltas; a changed module gets fresh ones; --force rewrites', { skip: noDeltas }, async t => {
  const { old, dist } = releases(t)
  // gzip only: the siblings are not what is checked, and br at quality 11 takes a while.
  const run = (...extra: string[]) => compress(dist, '--dictionary-from', old, '--encodings', 'gzip', ...extra)
  t.equal((await run()).code, 0)
  const first = snapshot(dist)
  const again = await run()
  t.equal(again.code, 0, again.err)
  t.same(snapshot(dist), first, 'nothing rewritten: bytes, inodes and mtimes unchanged')
  t.match(again.out, new RegExp(`wrote 0 deltas, kept ${2 * CODINGS.length}`))

  const changed = Buffer.from(NEW)
  changed.write('a third version', 500_000, 'latin1')
  writeFileSync(join(dist, WASM), changed)
  const later = new Date(Date.now() + 5000)
  utimesSync(join(dist, WASM), later, later)
  const third = await run()
  t.equal(third.code, 0, third.err)
  for (const coding of CODINGS) {
    const file = join(dist, `${WASM}.${idOf(OLD)}.${coding}`)
    t.not(snapshot(dist).get(`${WASM}.${idOf(OLD)}.${coding}`), first.get(`${WASM}.${idOf(OLD)}.${coding}`), `the stale ${coding} is rewritten`)
    t.same(decodeDelta(readFileSync(file), coding, OLD), changed, 'and decodes to the changed module')
    t.equal(snapshot(dist).get(`app.js.${idOf(JS_OLD)}.${coding}`), first.get(`app.js.${idOf(JS_OLD)}.${coding}`), 'the unchanged module\'s delta is kept')
  }

  const kept = snapshot(dist)
  t.equal((await run('--force')).code, 0)
  t.not(snapshot(dist).get(`app.js.${idOf(JS_OLD)}.${CODINGS[0]}`), kept.get(`app.js.${idOf(JS_OLD)}.${CODINGS[0]}`), '--force rewrites')
})

t.test('a delta whose header names another dictionary is rewritten; one that is not a file is left alone and reported', { skip: noDeltas }, async t => {
  const { old, dist } = releases(t)
  t.equal((await compress(dist, '--dictionary-from', old, '--encodings', 'gzip')).code, 0)
  const coding = CODINGS[0]!
  const file = join(dist, `${WASM}.${idOf(OLD)}.${coding}`)
  const forged = readFileSync(file)
  forged.fill(0xaa, coding === 'dcz' ? 8 : 4, coding === 'dcz' ? 40 : 36)
  writeFileSync(file, forged)
  utimesSync(file, new Date(Date.now() + 5000), new Date(Date.now() + 5000))
  const squatted = join(dist, `app.js.${idOf(JS_OLD)}.${coding}`)
  rmSync(squatted)
  mkdirSync(squatted) // someone else's directory at the delta's name
  const r = await compress(dist, '--dictionary-from', old, '--encodings', 'gzip')
  t.same(decodeDelta(readFileSync(file), coding, OLD), NEW, 'rewritten: it names the dictionary again')
  t.equal(r.code, 1)
  t.match(r.err, `cannot write ${join(dist, `app.js.${idOf(JS_OLD)}.${coding}`)}: exists and is not a regular file`)
})

t.test('a delta not smaller than the module\'s best sibling is not written', { skip: noDeltas }, async t => {
  const dir = t.testdir({ old: {}, dist: {} })
  // The same name, unrelated bytes: the dictionary does not help, the header only costs.
  writeFiles(join(dir, 'old'), { 'lib.js': Buffer.from(Array.from({ length: 4000 }, (_, i) => (i * 7919) % 251)) })
  writeFiles(join(dir, 'dist'), { 'lib.js': JS_NEW })
  const r = await compress(join(dir, 'dist'), '--dictionary-from', join(dir, 'old'))
  t.equal(r.code, 0, r.err)
  t.same(readdirSync(join(dir, 'dist')).filter(n => /\.dc[zb]$/.test(n)), [])
  t.match(r.out, new RegExp(`lib\\.js\\s+\\S+\\s+[0-9a-f]{16}${'\\s+larger'.repeat(CODINGS.length)}\\s+`))
})

t.test('--dry-run lists the deltas it would write and writes nothing', { skip: noDeltas }, async t => {
  const { old, dist } = releases(t)
  const before = snapshot(dist)
  const r = await compress(dist, '--dictionary-from', old, '--dry-run')
  t.equal(r.code, 0, r.err)
  t.match(r.out, `would write ${join(dist, `${WASM}.${idOf(OLD)}.${CODINGS[0]}`)}`)
  t.match(r.out, new RegExp(`and ${2 * CODINGS.length} deltas would be written`))
  t.same(snapshot(dist), before)
})

t.test('a --dictionary-from that covers no module says so; one that is missing is a usage error', { skip: noDeltas }, async t => {
  const dir = t.testdir({ old: { 'unrelated.wasm': OLD }, dist: { 'app.js': JS_NEW } })
  const r = await compress(join(dir, 'dist'), '--dictionary-from', join(dir, 'old'), '--encodings', 'gzip')
  t.equal(r.code, 0, r.err)
  t.match(r.err, /no delta to write: no file of .*old is a dictionary for a module of this directory/)
  const missing = await compress(join(dir, 'dist'), '--dictionary-from', join(dir, 'nope'))
  t.equal(missing.code, 2)
  t.match(missing.err, /no such directory: .*nope/)
})

t.test('--dictionary-from is repeatable; the help says how deltas are named', async t => {
  const parsed = parseCompressArgs(['dist', '--dictionary-from', 'v1', '--dictionary-from=v2'])
  t.match(parsed, { kind: 'run', options: { dictionaryFrom: ['v1', 'v2'] } })
  t.match(parseCompressArgs(['dist']), { kind: 'run', options: { dictionaryFrom: [] } })
  const help = await compress('--help')
  t.match(help.out, /--dictionary-from DIR/)
  t.match(help.out, /<module>\.<id>\.dcz[\s\S]*<id> is the first 16 hex digits of the dictionary's SHA-256/)
})

t.test('a delta\'s temp file left by a dead run is removed like a sibling\'s', async t => {
  const dead = spawnSync(process.execPath, ['-e', '']).pid
  const leftover = `.app.js.0123456789abcdef.dcz.${dead}-0badc0de.tmp`
  const dir = t.testdir({ 'app.js': JS_NEW, [leftover]: 'partial' })
  const r = await compress(dir, '--encodings', 'gzip')
  t.equal(r.code, 0, r.err)
  t.match(r.err, `removed ${join(dir, leftover)}, left by an interrupted run`)
  t.notOk(existsSync(join(dir, leftover)))
})

t.test('where Node cannot compress with a dictionary: one line, no delta written, exit 1', async t => {
  const { runCompress: run } = await t.mockImport<typeof import('../src/compress/index.js')>('../src/compress/index.js', {
    '../src/dictionary.js': { ...await import('../src/dictionary.js'), anyDictionarySupport: false, dictionarySupport: { dcz: false, dcb: false } },
  })
  const { old, dist } = releases(t)
  let err = ''
  const sink = (add: (s: string) => void) => new Writable({ write (chunk, _enc, cb) { add(String(chunk)); cb() } })
  const code = await run([dist, '--dictionary-from', old, '--encodings', 'gzip'], { stdout: sink(() => {}), stderr: sink(s => { err += s }) })
  t.equal(code, 1)
  t.equal(err.match(/deltas skipped/g)?.length, 1, err)
  t.match(err, /deltas skipped: Node v\d+\.\d+\.\d+ cannot compress with a dictionary \(Node 24 can\); no \.dcz or \.dcb written/)
  t.same(readdirSync(dist, { recursive: true }).filter(n => /\.dc[zb]$/.test(String(n))), [])
  t.ok(existsSync(join(dist, 'app.js.gz')), 'the siblings are still written')
  const without = await run([dist, '--encodings', 'gzip'], { stdout: sink(() => {}), stderr: sink(() => {}) })
  t.equal(without.valueOf(), 0, 'not asked for: no failure')
})
