#!/usr/bin/env node
/**
 * `node bench/workers.mjs [--runs N]`: the memory of `--workers` (README, "Workers"). The CLI as
 * `npm start` runs it (`node --max-semi-space-size=1 dist/cli.js public --quiet`) serves the demo
 * with 1 and with 2 workers; after 200 requests over the demo's files (the module in br and gzip, the
 * page, the scripts), the VmRSS of the primary and of each worker, from /proc. Medians over the runs
 * (3), each a new process.
 */
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { request } from 'undici'
import { rssTreeKiB, startServer } from './harness.mjs'

const PUBLIC = join(dirname(fileURLToPath(import.meta.url)), '..', 'public')
const REQUESTS = [
  ['/', {}], ['/sqlite3.wasm', { 'accept-encoding': 'br' }], ['/sqlite3.wasm', { 'accept-encoding': 'gzip' }],
  ['/loader.js', { 'accept-encoding': 'br' }], ['/demo.js', {}], ['/demo.css', {}],
]
const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' } } })
const median = xs => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const mb = kib => `${Math.round(kib / 1024)} MB`

/** One cold start with `workers`: RSS of the process that listens (1) or of the primary and each worker (2+). */
async function once (workers) {
  const server = await startServer('cli', PUBLIC, undefined, { nodeFlags: ['--max-semi-space-size=1'], cliArgs: ['--workers', String(workers)], cpus: '0,1' })
  try {
    for (let i = 0; i < 200; i++) {
      const [path, headers] = REQUESTS[i % REQUESTS.length]
      const res = await request(`http://127.0.0.1:${server.port}${path}`, { headers })
      await res.body.dump()
      if (res.statusCode !== 200) throw new Error(`${path}: ${res.statusCode}`)
    }
    const tree = rssTreeKiB(server.pid)
    if (workers > 1 && tree.children.length !== workers) throw new Error(`${tree.children.length} workers running, expected ${workers}`)
    return tree
  } finally {
    await server.stop()
  }
}

console.log(`Node ${process.version}; \`node --max-semi-space-size=1 dist/cli.js public --workers N\`, RSS after 200 requests, median of ${values.runs} runs`)
console.log('| workers | primary (or the one process) | each worker |')
console.log('|--:|--:|--:|')
for (const workers of [1, 2]) {
  const runs = []
  for (let i = 0; i < Number(values.runs); i++) runs.push(await once(workers))
  const each = runs.flatMap(r => r.children.map(c => c.kib))
  console.log(`| ${workers} | ${mb(median(runs.map(r => r.self)))} | ${workers === 1 ? '' : `${mb(median(each))} (${mb(Math.min(...each))}–${mb(Math.max(...each))})`} |`)
}
