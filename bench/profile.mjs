#!/usr/bin/env node
/**
 * `node bench/profile.mjs [--path /tiny.wasm] [--seconds 8] [--cli dist/cli.js]`: where the CLI's CPU
 * goes under load (docs/benchmarks.md, "Where the time goes"). The CLI as shipped runs on CPU 0 with
 * `--cpu-prof` over bench/fixtures, wrk loads it from CPU 1 (`Accept-Encoding: br`, 50 connections,
 * 2 s warm-up), and the profile's self time of the busy samples is summed by where the code lives:
 * the write system call, node:http and streams, other Node internals, Fastify and its modules,
 * wasm-serve, garbage collection. `--cli` profiles another build (an earlier commit's dist/cli.js) for
 * a before-and-after.
 */
import { spawn, execFileSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { ensureFixtures, FIXTURE_DIR } from './fixtures.mjs'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const { values: opts } = parseArgs({
  options: {
    path: { type: 'string', default: '/tiny.wasm' },
    seconds: { type: 'string', default: '8' },
    cli: { type: 'string', default: join(ROOT, 'dist', 'cli.js') },
  },
})

/** Where a sampled function lives, by its script's URL. */
function groupOf ({ url, functionName }) {
  if (functionName === '(garbage collector)') return 'garbage collection'
  if (functionName === '(program)') return 'native, outside JavaScript'
  if (functionName === 'writev' || functionName === 'writeBuffer' || functionName === 'writeUtf8String') return 'the write system call'
  if (/node_modules\/(fastify|find-my-way|avvio|light-my-request|@fastify|fast-json-stringify|abstract-logging|pino|process-warning|toad-cache|rfdc|fast-querystring|safe-regex2|ret)\//.test(url)) return 'Fastify and its modules'
  if (/\/dist\//.test(url)) return 'wasm-serve'
  if (/^node:.*(http|net|stream)/.test(url)) return 'node:http, net and streams'
  if (/^node:/.test(url)) return 'other Node internals'
  return url === '' ? 'other native code' : 'other'
}

/** Self time in ms per group (idle left out), and the 12 busiest functions. */
export function summarize (profile) {
  const time = new Map()
  profile.samples.forEach((id, i) => time.set(id, (time.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)))
  const groups = new Map()
  const functions = new Map()
  for (const node of profile.nodes) {
    const t = time.get(node.id) ?? 0
    if (t === 0 || node.callFrame.functionName === '(idle)') continue
    const group = groupOf(node.callFrame)
    groups.set(group, (groups.get(group) ?? 0) + t)
    const name = `${node.callFrame.functionName || '(anonymous)'} ${node.callFrame.url.split('/').slice(-2).join('/')}`.trim()
    functions.set(name, (functions.get(name) ?? 0) + t)
  }
  const busy = [...groups.values()].reduce((a, b) => a + b, 0)
  const share = entries => [...entries].sort((a, b) => b[1] - a[1]).map(([name, t]) => ({ name, share: t / busy }))
  return { groups: share(groups), functions: share(functions).slice(0, 12) }
}

async function main () {
  await ensureFixtures({ log: () => {} })
  const dir = mkdtempSync(join(tmpdir(), 'wasm-serve-profile-'))
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }))
  const child = spawn('taskset', ['-c', '0', process.execPath, '--cpu-prof', `--cpu-prof-dir=${dir}`, opts.cli, FIXTURE_DIR, '--port', '0', '--quiet'], { stdio: ['ignore', 'pipe', 'inherit'] })
  const port = await new Promise((resolve, reject) => {
    let out = ''
    child.stdout.on('data', d => { out += d; const m = /http:\/\/127\.0\.0\.1:(\d+)/.exec(out); if (m) resolve(m[1]) })
    child.once('exit', code => reject(new Error(`the CLI exited (${code}) before listening`)))
  })
  const wrk = seconds => execFileSync('taskset', ['-c', '1', 'wrk', '-t1', '-c50', `-d${seconds}s`, '-H', 'accept-encoding: br', `http://127.0.0.1:${port}${opts.path}`], { encoding: 'utf8' })
  wrk(2)
  const rate = /Requests\/sec:\s+([\d.]+)/.exec(wrk(opts.seconds))?.[1]
  child.kill('SIGINT') // the profile is written as the process exits
  await new Promise(resolve => child.once('exit', resolve))
  const file = readdirSync(dir).find(f => f.endsWith('.cpuprofile'))
  if (file === undefined) throw new Error('no profile written')
  const { groups, functions } = summarize(JSON.parse(readFileSync(join(dir, file), 'utf8')))
  const pct = x => `${(100 * x).toFixed(1)} %`
  console.log(`${opts.cli} ${opts.path}: ${Number(rate).toLocaleString('en-US')} req/s under wrk while profiled\n`)
  console.log('| where | share of busy CPU |\n|---|--:|')
  for (const g of groups) console.log(`| ${g.name} | ${pct(g.share)} |`)
  console.log('\nbusiest functions:')
  for (const f of functions) console.log(`  ${pct(f.share).padStart(7)}  ${f.name}`)
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch(err => { console.error(`profile: ${err.message}`); process.exitCode = 1 })
}
