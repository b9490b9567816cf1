#!/usr/bin/env node
// Compression ratio and time per encoding on the real fixture modules: wasm-serve's codecs (the code
// `wasm-serve compress` runs at 'max', and the server's on-the-fly 'dense' level for large files) next to Debian's command-line tools
// `brotli -q 11`, `gzip -9`, `zstd -19` on the same files. The numbers are in docs/benchmarks.md.
//
//   npx tsc -p tsconfig.json && node bench/compression.mjs [file ...]
//
// Writes a Markdown table to stdout and JSON to bench/results/compression.json. Times are wall-clock
// for one run of one encoding on one core (the compress command runs encodings in parallel).
import { spawnSync } from 'node:child_process'
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { basename } from 'node:path'
import { cpus } from 'node:os'
import { brotliDecompressSync, gunzipSync } from 'node:zlib'
import * as zlib from 'node:zlib'
import { encode, zstdAvailable } from '../dist/codecs.js'

const root = new URL('..', import.meta.url)
const DEFAULT_FILES = [
  'node_modules/@sqlite.org/sqlite-wasm/sqlite-wasm/jswasm/sqlite3.wasm',
  'node_modules/@ffmpeg/core/dist/esm/ffmpeg-core.wasm',
].map(p => new URL(p, root).pathname)

const CODECS = [
  { name: 'br q11 (wasm-serve)', token: 'br', level: 'max' },
  { name: 'zstd 19 (wasm-serve)', token: 'zstd', level: 'max' },
  { name: 'gzip 9 (wasm-serve)', token: 'gzip', level: 'max' },
  { name: 'br q9 (wasm-serve on the fly, dense)', token: 'br', level: 'dense' },
]
const TOOLS = [
  { name: 'brotli -q 11 (CLI)', cmd: 'brotli', args: ['-q', '11', '-c'] },
  { name: 'zstd -19 (CLI)', cmd: 'zstd', args: ['-19', '-q', '-c'] },
  { name: 'gzip -9 (CLI)', cmd: 'gzip', args: ['-9', '-c'] },
]

/** Round-trip checks with node:zlib itself, not the code under measurement. */
const DECODE = { br: brotliDecompressSync, gzip: gunzipSync, zstd: buf => zlib.zstdDecompressSync(buf) }

async function timeCodec (buf, codec) {
  if (codec.token === 'zstd' && !zstdAvailable) return { skipped: `Node ${process.version} has no zstd` }
  const start = performance.now()
  const out = await encode(buf, codec.token, codec.level)
  const ms = performance.now() - start
  if (!DECODE[codec.token](out).equals(buf)) throw new Error(`${codec.name}: round trip failed`)
  return { size: out.length, ms }
}

function timeTool (file, tool) {
  const start = performance.now()
  const r = spawnSync(tool.cmd, [...tool.args, file], { maxBuffer: 1 << 30 })
  const ms = performance.now() - start
  if (r.error !== undefined || r.status !== 0) return { skipped: `${tool.cmd} not available` }
  return { size: r.stdout.length, ms }
}

const fmt = n => n.toLocaleString('en-US')

async function measure (file) {
  const buf = readFileSync(file)
  const rows = []
  for (const codec of CODECS) rows.push({ name: codec.name, ...(await timeCodec(buf, codec)) })
  for (const tool of TOOLS) rows.push({ name: tool.name, ...timeTool(file, tool) })
  return { file: basename(file), size: buf.length, rows }
}

function markdown (results) {
  const lines = ['| file | encoder | size (B) | ratio | saving | time |', '|---|---|---:|---:|---:|---:|']
  for (const r of results) {
    for (const row of r.rows) {
      if (row.skipped !== undefined) {
        lines.push(`| ${r.file} (${fmt(r.size)} B) | ${row.name} | — | — | — | skipped: ${row.skipped} |`)
        continue
      }
      const ratio = (row.size / r.size).toFixed(3)
      const saving = `${((1 - row.size / r.size) * 100).toFixed(1)} %`
      lines.push(`| ${r.file} (${fmt(r.size)} B) | ${row.name} | ${fmt(row.size)} | ${ratio} | ${saving} | ${(row.ms / 1000).toFixed(2)} s |`)
    }
  }
  return lines.join('\n')
}

const files = process.argv.length > 2 ? process.argv.slice(2) : DEFAULT_FILES
const results = []
for (const file of files) {
  statSync(file)
  process.stderr.write(`measuring ${file} …\n`)
  results.push(await measure(file))
}
const env = `Node ${process.version}, ${cpus()[0]?.model ?? 'unknown CPU'} × ${cpus().length}`
console.log(`${markdown(results)}\n\n${env}`)
mkdirSync(new URL('bench/results/', root), { recursive: true })
writeFileSync(new URL('bench/results/compression.json', root), JSON.stringify({ env, results }, null, 2))
