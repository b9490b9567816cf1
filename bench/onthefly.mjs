#!/usr/bin/env node
// Event-loop delay while the server compresses the 32 MB ffmpeg module on the fly (D4 in
// docs/delivery.md; results in docs/benchmarks.md): the plugin serves a root whose modules have no
// siblings; while its queue encodes them, a client keeps requesting another file, and
// perf_hooks.monitorEventLoopDelay records the loop.
//
//   npx tsc -p tsconfig.json && node bench/onthefly.mjs
import { spawn } from 'node:child_process'
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'
import Fastify from 'fastify'
import { request } from 'undici'
import wasmServe from '../dist/plugin.js'
import { ensureFixtures, FIXTURE_DIR as FIXTURES } from './fixtures.mjs'

if (process.argv[2] === 'client') await client(process.argv[3])

/** The load runs in its own process, so the loop delay measured is the server's alone. */
async function client (url) {
  const latencies = []
  let stop = false
  process.on('SIGTERM', () => { stop = true })
  // eslint-disable-next-line no-unmodified-loop-condition -- set by the SIGTERM handler
  while (!stop) {
    const t0 = performance.now()
    const res = await request(url)
    await res.body.arrayBuffer()
    if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`)
    latencies.push(performance.now() - t0)
  }
  latencies.sort((a, b) => a - b)
  const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))].toFixed(1)
  process.stdout.write(JSON.stringify({ requests: latencies.length, p50: pct(0.5), p99: pct(0.99) }))
  process.exit(0)
}

await ensureFixtures()
const root = mkdtempSync(join(tmpdir(), 'wasm-serve-otf-root-'))
const cacheDir = mkdtempSync(join(tmpdir(), 'wasm-serve-otf-cache-'))
copyFileSync(join(FIXTURES, 'ffmpeg-core.wasm'), join(root, 'ffmpeg-core.wasm'))
writeFileSync(join(root, 'logo.png'), Buffer.alloc(200_000, 7)) // not compressible: served throughout

const loop = monitorEventLoopDelay({ resolution: 10 })
const app = Fastify({ logger: false })
const started = performance.now()
await app.register(wasmServe, { root, compress: { cacheDir }, watch: false })
const url = await app.listen({ host: '127.0.0.1', port: 0 })
loop.enable()

const child = spawn(process.execPath, [new URL(import.meta.url).pathname, 'client', `${url}/logo.png`], { stdio: ['ignore', 'pipe', 'inherit'] })
let out = ''
child.stdout.on('data', (d) => { out += d })
const exited = new Promise(resolve => child.on('exit', resolve))
await app.wasmServe.compressionIdle()
loop.disable()
const seconds = (performance.now() - started) / 1000
child.kill('SIGTERM')
await exited
const load = JSON.parse(out)

const br = await request(`${url}/ffmpeg-core.wasm`, { headers: { 'accept-encoding': 'br' } })
const brBytes = (await br.body.arrayBuffer()).byteLength
await app.close()
rmSync(root, { recursive: true, force: true })
rmSync(cacheDir, { recursive: true, force: true })

const ms = (ns) => (ns / 1e6).toFixed(1)
console.log(`| on-the-fly compression of ffmpeg-core.wasm (32,232,419 B) | value |
|---|--:|
| time until br + gzip were ready | ${seconds.toFixed(1)} s |
| br size served afterwards (${br.headers['content-encoding']}) | ${brBytes.toLocaleString('en')} B |
| event-loop delay p50 / p99 / max | ${ms(loop.percentile(50))} / ${ms(loop.percentile(99))} / ${ms(loop.max)} ms |
| other requests served meanwhile (client in another process) | ${load.requests} (latency p50 ${load.p50} ms, p99 ${load.p99} ms) |
Node ${process.version}, ${new Date().toISOString().slice(0, 10)}`)
