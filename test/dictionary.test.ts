/**
 * The RFC 9842 format as src/dictionary.ts and src/delta-files.ts read and write it: the
 * Available-Dictionary grammar, match patterns, the dcz/dcb headers and the names of build-time
 * deltas (docs/delivery.md, D18). Pure functions: these run on every Node.
 */
import t from 'tap'
import { createHash } from 'node:crypto'
import { builtDeltaPath, deltaHeadProblem, deltaId, isBuiltDelta, parseBuiltDelta } from '../src/delta-files.js'
import { dictionarySupport, encodeDelta, matchPatternFor, namedDictionary, parseAvailableDictionary, patternCovers } from '../src/dictionary.js'
import { hashIn } from '../src/policy.js'

const sha = (s: string) => createHash('sha256').update(s).digest()

t.test('Available-Dictionary: exactly one sf-binary of 32 bytes, anything else ignored', async t => {
  const hash = sha('module')
  t.same(parseAvailableDictionary(`:${hash.toString('base64')}:`), hash)
  t.same(parseAvailableDictionary(`  :${hash.toString('base64')}:  `), hash, 'optional white space')
  for (const bad of [undefined, [`:${hash.toString('base64')}:`], '', hash.toString('base64'), `:${sha('x').subarray(0, 16).toString('base64')}:`,
    `:${hash.toString('base64url')}:`, `:${hash.toString('base64')}:, :${hash.toString('base64')}:`, ':' + 'A'.repeat(5000) + ':']) {
    t.equal(parseAvailableDictionary(bad), undefined, `refused: ${JSON.stringify(bad)?.slice(0, 60)}`)
  }
})

t.test('match patterns: a hashed name\'s hash becomes *, a plain name matches itself, special characters mean themselves', async t => {
  t.equal(matchPatternFor('/assets/app.3f9a1c2b.wasm', hashIn), '/assets/app.*.wasm')
  t.equal(matchPatternFor('/assets/index-DiwrgTda.js', hashIn), '/assets/index-*.js')
  t.equal(matchPatternFor('/sqlite3.wasm', hashIn), '/sqlite3.wasm')
  t.equal(matchPatternFor('/a(1)/b+c.wasm', hashIn), '/a\\(1\\)/b\\+c.wasm', 'URLPattern syntax escaped')
  t.ok(patternCovers('/assets/app.*.wasm', '/assets/app.7d2e9f10.wasm'), 'the next release')
  t.notOk(patternCovers('/assets/app.*.wasm', '/assets/other.7d2e9f10.wasm'))
  t.notOk(patternCovers('/assets/app.*.wasm', '/assets/app.7d2e9f10.js'))
  t.ok(patternCovers('/a\\(1\\)/b\\+c.wasm', '/a(1)/b+c.wasm'), 'escaped characters match themselves')
  t.notOk(patternCovers('/a\\(1\\)/b\\+c.wasm', '/a1/bbc.wasm'))
  t.ok(patternCovers('/sqlite3.wasm', '/sqlite3.wasm'))
})

t.test('dcz and dcb headers name the dictionary; other bytes are not one', async t => {
  const hash = sha('dictionary')
  const dcz = Buffer.concat([Buffer.from([0x5e, 0x2a, 0x4d, 0x18, 0x20, 0, 0, 0]), hash, Buffer.from('frame')])
  const dcb = Buffer.concat([Buffer.from([0xff, 0x44, 0x43, 0x42]), hash, Buffer.from('stream')])
  t.same(namedDictionary(dcz, 'dcz'), hash)
  t.same(namedDictionary(dcb, 'dcb'), hash)
  t.equal(namedDictionary(dcb, 'dcz'), undefined, 'a dcb header is not a dcz one')
  t.equal(namedDictionary(dcz.subarray(0, 20), 'dcz'), undefined, 'too short')
  t.equal(deltaHeadProblem(dcb, { dictionarySha256: hash, coding: 'dcb', moduleSize: 10 }), undefined)
  t.equal(deltaHeadProblem(dcb, { dictionarySha256: sha('other'), coding: 'dcb', moduleSize: 10 }), 'its header names another dictionary')
  t.equal(deltaHeadProblem(Buffer.from('nothing of the kind, long enough to be read as a header'), { dictionarySha256: hash, coding: 'dcz', moduleSize: 10 }), 'not a dcz file')
})

t.test('build-time deltas are named <module>.<16 hex of the dictionary hash>.<coding>', async t => {
  const id = deltaId(sha('v41'))
  t.match(id, /^[0-9a-f]{16}$/)
  const path = builtDeltaPath('assets/app.5e6f7a8b.wasm', id, 'dcz')
  t.equal(path, `assets/app.5e6f7a8b.wasm.${id}.dcz`)
  t.ok(isBuiltDelta(path))
  t.notOk(isBuiltDelta('assets/app.wasm.br'))
  t.same(parseBuiltDelta(`app.wasm.${id}.dcb`, 'app.wasm'), { id, coding: 'dcb' })
  t.equal(parseBuiltDelta(`app.wasm.${id}.dcb`, 'other.wasm'), undefined)
})

t.test('encodeDelta makes what this Node can, and nothing where it cannot', async t => {
  const dictionary = Buffer.from('the shared part of two releases. '.repeat(500))
  const target = Buffer.concat([dictionary, Buffer.from('what changed')])
  for (const coding of ['dcz', 'dcb'] as const) {
    const out = await encodeDelta({ target, dictionary, dictionaryHash: sha('d'), coding, level: 'fast' })
    if (!dictionarySupport[coding]) { t.equal(out, undefined, `${coding}: unavailable on Node ${process.version}`); continue }
    t.ok(out !== undefined && out.length < 100, `${coding}: a few bytes for a few changed ones (${out?.length} B)`)
    t.same(namedDictionary(out!, coding), sha('d'))
  }
})
