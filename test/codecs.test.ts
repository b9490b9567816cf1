import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { decodesToSize, encode, encodeAbortable, encodeFile, isCompressible, recordedDecodedSize } from '../src/codecs.js'
import {
  brotliWindowBitsFor, ENCODINGS, gzipDecodedSize, zstdAvailable, zstdContentSize, zstdFrameWindowSize,
  ZSTD_MAX_WINDOW, type EncodingToken,
} from '../src/encodings.js'
import { brotliWindowBits, decode } from './helpers/decode.js'

const SQLITE_WASM = new URL('../node_modules/@sqlite.org/sqlite-wasm/sqlite-wasm/jswasm/sqlite3.wasm', import.meta.url)
const wasm = readFileSync(SQLITE_WASM)
const text = Buffer.from(Array.from({ length: 2000 }, (_, i) => `export const v${i} = "${i.toString(36)}";\n`).join(''))

const available: EncodingToken[] = ENCODINGS.filter(e => e.unavailable === undefined).map(e => e.token)

function hasTool (name: string): boolean {
  try {
    execFileSync(name, ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

t.test('zstdAvailable matches whether node:zlib can encode zstd', async t => {
  const [major, minor] = process.versions.node.split('.').map(Number)
  const expected = major > 23 || (major === 23 && minor >= 8) || (major === 22 && minor >= 15)
  t.equal(zstdAvailable, expected, `Node ${process.version}`)
})

for (const token of available) {
  for (const level of ['max', 'dense'] as const) {
    t.test(`${token} at '${level}' round-trips sqlite3.wasm byte for byte and shrinks it`, async t => {
      const encoded = await encode(wasm, token, level)
      t.ok(encoded.length < wasm.length, `${encoded.length} < ${wasm.length}`)
      t.ok((await decode(encoded, token)).equals(wasm), 'decoded bytes equal the original')
    })
  }
}

/**
 * Every row of the table, so a new encoding is tested by adding it: the one-shot encoder
 * (`wasm-serve compress`), the sliced one (the server, in memory) and the file-to-file one (the
 * server, beyond the memory budget) all decode to the input, and the decoded size the bytes record,
 * where the format records one, is the input's.
 */
for (const encoding of ENCODINGS) {
  const { token, suffix } = encoding
  t.test(`${token}: every encoder's output decodes to the input and records its size`, { skip: encoding.unavailable }, async t => {
    const dir = t.testdir({})
    const signal = new AbortController().signal
    for (const [name, input] of [['text.js', text], ['empty.js', Buffer.alloc(0)], ['random.js', randomBytes(5000)]] as const) {
      const src = join(dir, name)
      await writeFile(src, input)
      const made = {
        'one-shot': await encode(input, token, 'max'),
        sliced: await encodeAbortable(input, token, 'dense', signal),
        'file-to-file': await encodeFile({ src, dest: join(dir, `${name}.file${suffix}`), size: input.length, token, level: 'max', signal })
          .then(() => readFileSync(join(dir, `${name}.file${suffix}`))),
      }
      for (const [how, encoded] of Object.entries(made)) {
        t.ok((await decode(encoded, token)).equals(input), `${how}, ${name}: decodes to the input`)
        const sibling = join(dir, `${name}.${how}${suffix}`)
        await writeFile(sibling, encoded)
        const recorded = await recordedDecodedSize(sibling, encoded.length, token)
        t.equal(recorded, encoding.decodedSize === undefined ? undefined : input.length, `${how}, ${name}: recorded size`)
        t.ok(decodesToSize(recorded, input.length, token), `${how}, ${name}: agrees with the input`)
      }
    }
  })
}

for (const encoding of ENCODINGS.filter(e => e.unavailable !== undefined)) {
  t.test(`${encoding.token} says why this Node cannot make it`, async t => {
    t.match(encoding.unavailable, /Node v\d+.*22\.15/)
    await t.rejects(encode(text, encoding.token), new RegExp(`${encoding.token}.*Node v\\d+.*22\\.15`))
    t.throws(() => encoding.createEncoder({ size: text.length, text: true }, 'max'))
  })
}

t.test('a recorded size agrees with the original: exactly, or mod 2^32 for gzip', async t => {
  t.ok(decodesToSize(5, 2 ** 32 + 5, 'gzip'))
  t.notOk(decodesToSize(5, 6, 'gzip'))
  t.ok(decodesToSize(undefined, 6, 'zstd'), 'a frame without a content size says nothing')
  t.notOk(decodesToSize(5, 2 ** 32 + 5, 'zstd'))
  t.ok(decodesToSize(undefined, 6, 'br'))
})

t.test('br uses the smallest window that holds the file, never above 24 bits', async t => {
  t.equal(brotliWindowBitsFor(10), 10)
  t.equal(brotliWindowBitsFor(1008), 10) // 2^10 - 16 holds 1008 bytes
  t.equal(brotliWindowBitsFor(1009), 11)
  t.equal(brotliWindowBitsFor(wasm.length), 20) // 856,447 B fits 1 MiB - 16
  t.equal(brotliWindowBitsFor(32_232_419), 24) // ffmpeg-core.wasm: capped at 24 bits
  const br = await encode(wasm, 'br')
  t.equal(brotliWindowBits(br), 20, 'the stream header says 20 bits')
  t.equal(brotliWindowBits(await encode(Buffer.from('tiny'), 'br')), 10)
})

t.test('brotliWindowBits flags large-window streams that browsers refuse', async t => {
  const zlib = await import('node:zlib')
  const c = zlib.constants
  const large = zlib.brotliCompressSync(text, { params: { [c.BROTLI_PARAM_LARGE_WINDOW]: 1, [c.BROTLI_PARAM_LGWIN]: 26 } })
  t.equal(brotliWindowBits(large), -1)
  for (const lgwin of [10, 16, 17, 18, 24]) {
    t.equal(brotliWindowBits(zlib.brotliCompressSync(text, { params: { [c.BROTLI_PARAM_LGWIN]: lgwin } })), lgwin)
  }
})

t.test('gzipDecodedSize reads ISIZE from the whole stream or just its last 4 bytes', async t => {
  const gz = await encode(wasm, 'gzip')
  t.equal(gzipDecodedSize(gz), wasm.length)
  t.equal(gzipDecodedSize(gz.subarray(gz.length - 4)), wasm.length)
  t.throws(() => gzipDecodedSize(Buffer.from([1, 2])), RangeError)
})

/** A zstd frame header (RFC 8878 §3.1.1.1): magic, descriptor, then optional fields. */
function zstdHeader (descriptor: number, ...rest: number[]): Buffer {
  return Buffer.from([0x28, 0xB5, 0x2F, 0xFD, descriptor, ...rest])
}

t.test('zstdFrameWindowSize reads the Window_Descriptor of hand-built headers', async t => {
  t.equal(zstdFrameWindowSize(zstdHeader(0x00, 13 << 3)), 8 * 2 ** 20, 'exponent 13 → 8 MiB, the browser limit')
  t.equal(zstdFrameWindowSize(zstdHeader(0x00, (13 << 3) | 1)), 9 * 2 ** 20, 'mantissa 1 adds 1/8: 9 MiB, too big')
  t.equal(zstdFrameWindowSize(zstdHeader(0x00, 0)), 1024, 'the smallest window is 1 KiB')
  t.equal(zstdFrameWindowSize(zstdHeader(0x00, (17 << 3) | 7)), 2 ** 27 + 7 * 2 ** 24, '--long=27 style window')
  t.equal(zstdContentSize(zstdHeader(0x00, 13 << 3)), undefined, 'no content size recorded')
})

t.test('zstd Single_Segment frames use Frame_Content_Size as the window', async t => {
  t.equal(zstdFrameWindowSize(zstdHeader(0x20, 200)), 200, '1-byte FCS')
  t.equal(zstdContentSize(zstdHeader(0x20, 200)), 200)
  t.equal(zstdFrameWindowSize(zstdHeader(0x60, 0x00, 0x01)), 256 + 256, '2-byte FCS is offset by 256')
  t.equal(zstdFrameWindowSize(zstdHeader(0xA0, 0x7F, 0x11, 0x0D, 0x00)), 856_447, '4-byte FCS')
  t.equal(zstdContentSize(zstdHeader(0xE0, 0xE3, 0xD3, 0xEB, 0x01, 0, 0, 0, 0)), 32_232_419, '8-byte FCS')
  t.equal(zstdContentSize(zstdHeader(0x21, 0x99, 200)), 200, 'a 1-byte Dictionary_ID comes before the FCS')
})

t.test('zstd header parsing skips skippable frames and rejects non-zstd data', async t => {
  const skippable = Buffer.from([0x50, 0x2A, 0x4D, 0x18, 3, 0, 0, 0, 9, 9, 9])
  t.equal(zstdFrameWindowSize(Buffer.concat([skippable, zstdHeader(0x00, 13 << 3)])), 8 * 2 ** 20)
  t.throws(() => zstdFrameWindowSize(Buffer.from('not zstd at all')), RangeError)
  t.throws(() => zstdContentSize(zstdHeader(0x80, 0x01)), RangeError, 'truncated header')
})

t.test('frames from the zstd command-line tool parse as the tool describes them', { skip: !hasTool('zstd') && 'no zstd binary on PATH' }, async t => {
  // From a file, not stdin: only then does the tool know the size and record it in the frame.
  const frame19 = execFileSync('zstd', ['-19', '-c', '-q', fileURLToPath(SQLITE_WASM)], { maxBuffer: 1 << 26 })
  t.equal(zstdContentSize(frame19), wasm.length, 'content size recorded')
  t.ok(zstdFrameWindowSize(frame19) <= ZSTD_MAX_WINDOW, `window ${zstdFrameWindowSize(frame19)} ≤ 8 MiB`)
  const long = execFileSync('zstd', ['-3', '--long=27', '-c', '-q', '--no-content-size'], { input: wasm, maxBuffer: 1 << 26 })
  t.equal(zstdFrameWindowSize(long), 2 ** 27, '--long=27 gives a 128 MiB window a browser refuses')
  t.equal(zstdContentSize(long), undefined)
})

t.test('real zstd frames from our encoder stay within 8 MB and record the content size', { skip: !zstdAvailable && `Node ${process.version} has no zstd in node:zlib (22.15+ / 23.8+)` }, async t => {
  const frame = await encode(wasm, 'zstd')
  t.ok(zstdFrameWindowSize(frame) <= ZSTD_MAX_WINDOW)
  t.equal(zstdContentSize(frame), wasm.length)
  // One random 3 MB block five times: level 19 finds the repeats fast, and the input is 15 MB.
  const block = randomBytes(3 * 2 ** 20)
  const bigFrame = await encode(Buffer.concat(Array.from({ length: 5 }, () => block)), 'zstd')
  t.ok(zstdFrameWindowSize(bigFrame) <= ZSTD_MAX_WINDOW, 'a 15 MB input is still capped at 8 MB')
})

t.test('isCompressible says yes to wasm and text, no to already-compressed media', async t => {
  const yes = ['a.wasm', 'a.js', 'a.mjs', 'a.cjs', 'a.css', 'a.html', 'A.HTM', 'a.json', 'a.svg', 'a.txt', 'a.js.map',
    'a.xml', 'a.wat', 'a.md', 'a.csv', 'favicon.ico', 'a.ttf', 'a.otf', 'Build.data', 'site.webmanifest', 'a.yaml']
  const no = ['a.woff', 'a.woff2', 'a.png', 'a.jpg', 'a.gif', 'a.webp', 'a.avif', 'a.mp4', 'a.zip', 'a.wasm.gz',
    'a.wasm.br', 'a.wasm.zst', 'README', 'a.bin', 'a.unknownext']
  for (const name of yes) t.equal(isCompressible(name), true, name)
  for (const name of no) t.equal(isCompressible(name), false, name)
})
