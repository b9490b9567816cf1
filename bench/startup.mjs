#!/usr/bin/env node
/**
 * `node bench/startup.mjs [--files N] [--mb M] [--runs R] [--large]`: how long the CLI as shipped
 * takes from spawn to serving the last file of a large root, and what it costs (docs/benchmarks.md,
 * "Start-up at scale"). `measureStartup({ files, totalBytes, runs })` is the same for `npm run bench`.
 *
 * The root is generated once in the OS temp dir and reused (deterministic: a seeded generator, so
 * every run and every machine gets the same tree): `files` files over files / 20 directories two
 * levels deep, a mix of .js/.css/.json (text, compressible) and .wasm/.png (binary), sizes drawn
 * log-normally and scaled to `totalBytes`; each file starts with its own name so no two share a
 * content hash.
 *
 * Each run is a cold start: a new `node dist/cli.js ROOT --port 0 --quiet` process with a new,
 * empty on-the-fly cache directory. From spawn, the time to the serving line, then to the first
 * 200 for the last file in walk order (depth-first, in readdir order: the file indexed last by a
 * walk that reads the tree in order), polled by back-to-back requests on one kept-alive
 * connection. The 200 is checked: its bytes are the file's and its ETag is their content hash (D6
 * in docs/delivery.md). Then the process's user + sys CPU seconds so far (steadier than wall time on
 * a shared machine), and VmRSS / VmHWM from /proc. Medians over `runs`.
 */
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises'
import { Agent, request } from 'node:http'
import { loadavg, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cli.js')
const CLK_TCK = 100 // Linux USER_HZ
const FILES_PER_DIR = 20
/** Files in the root are old: the server waits for a file modified within the last 100 ms (src/load.ts). */
const MTIME = new Date('2026-01-01T00:00:00Z')
const KINDS = [
  { ext: 'js', text: true, weight: 40 },
  { ext: 'css', text: true, weight: 10 },
  { ext: 'json', text: true, weight: 15 },
  { ext: 'wasm', text: false, weight: 10 },
  { ext: 'png', text: false, weight: 25 },
]

/** mulberry32: a small seeded generator, so the root is the same on every machine. */
function random (seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** 4 MB pools the files' bytes are cut from: words for text (compresses like code), noise for binary. */
function pools (rand) {
  const words = ['function', 'return', 'const', 'let', 'this', 'export', 'import', 'module', 'width', 'height', 'color', 'value', 'length', 'index', 'buffer', 'memory', 'table', '{', '}', '(', ')', ';', '=', '\n', '  ']
  const text = []
  let size = 0
  while (size < 4 << 20) {
    const w = words[Math.floor(rand() * words.length)] + (rand() < 0.3 ? String(Math.floor(rand() * 1000)) : '') + ' '
    text.push(w)
    size += w.length
  }
  const binary = Buffer.alloc(4 << 20)
  for (let i = 0; i < binary.length; i += 4) binary.writeUInt32LE(Math.floor(rand() * 2 ** 32), i)
  return { text: Buffer.from(text.join('')), binary }
}

/** The files of a root: [{ rel, size, kind }], deterministic for (files, totalBytes). */
export function plan ({ files, totalBytes }) {
  const rand = random(files ^ (totalBytes / 1024))
  const dirs = Math.max(1, Math.round(files / FILES_PER_DIR))
  const top = Math.max(1, Math.round(Math.sqrt(dirs)))
  const raw = []
  const totalWeight = KINDS.reduce((n, k) => n + k.weight, 0)
  for (let i = 0; i < files; i++) {
    let pick = rand() * totalWeight
    const kind = KINDS.find(k => (pick -= k.weight) < 0) ?? KINDS[0]
    // Log-normal (Box–Muller): most files small, a few large, as in a real build output.
    const normal = Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand())
    const d = i % dirs
    raw.push({ rel: `d${String(d % top).padStart(2, '0')}/s${String(d).padStart(4, '0')}/f${String(i).padStart(6, '0')}.${kind.ext}`, weight: Math.exp(1.2 * normal), kind })
  }
  const sum = raw.reduce((n, f) => n + f.weight, 0)
  return raw.map(f => ({ rel: f.rel, kind: f.kind, size: Math.max(64, Math.round(f.weight / sum * totalBytes)) }))
}

/** Builds (or reuses) the root in the temp dir; returns its path. */
export async function generateRoot ({ files, totalBytes }) {
  const root = join(tmpdir(), `wasm-serve-bench-startup-${files}-${Math.round(totalBytes / 1e6)}mb`)
  const done = join(root, '.complete') // a dotfile: not served
  if (existsSync(done)) return root
  await rm(root, { recursive: true, force: true })
  const rand = random(7)
  const { text, binary } = pools(rand)
  const made = new Set()
  for (const f of plan({ files, totalBytes })) {
    const dir = join(root, dirname(f.rel))
    if (!made.has(dir)) { await mkdir(dir, { recursive: true }); made.add(dir) }
    const pool = f.kind.text ? text : binary
    const name = Buffer.from(`/* ${f.rel} */\n`)
    const body = Buffer.alloc(f.size)
    name.copy(body, 0, 0, Math.min(name.length, f.size))
    for (let at = name.length; at < f.size;) {
      const from = Math.floor(rand() * (pool.length - 1))
      at += pool.copy(body, at, from, Math.min(pool.length, from + f.size - at))
    }
    const abs = join(root, f.rel)
    await writeFile(abs, body)
    await utimes(abs, MTIME, MTIME)
  }
  await writeFile(done, '')
  return root
}

/** The last file a depth-first walk in readdir order meets (the order src/walk.ts read the tree in). */
async function lastInWalkOrder (root, dir = '') {
  const entries = await readdir(join(root, dir), { withFileTypes: true })
  for (const entry of entries.reverse()) {
    if (entry.name.startsWith('.')) continue
    const rel = dir === '' ? entry.name : `${dir}/${entry.name}`
    if (entry.isDirectory()) {
      const found = await lastInWalkOrder(root, rel)
      if (found !== undefined) return found
    } else if (entry.isFile()) return rel
  }
  return undefined
}

function procStatusMB (pid, field) {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8')
  return Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN) / 1024
}

function procCpuSeconds (pid) {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK
}

/** One GET; resolves with status, ETag and the body's sha256 (base64url), or status 0 when refused. */
function get (agent, port, path) {
  return new Promise(resolve => {
    const req = request({ host: '127.0.0.1', port, path, agent, headers: { 'accept-encoding': 'identity' } }, res => {
      const hash = createHash('sha256')
      res.on('data', d => hash.update(d))
      res.on('end', () => resolve({ status: res.statusCode, etag: res.headers.etag, tag: hash.digest('base64url').slice(0, 27) }))
    })
    req.on('error', () => resolve({ status: 0 }))
    req.end()
  })
}

/** One cold start: spawn, wait for the serving line, poll the last file until 200; then CPU and RSS. */
async function oneRun ({ root, last, nodeFlags = [], env = {} }) {
  const cacheDir = await mkdtemp(join(tmpdir(), 'wasm-serve-bench-cache-'))
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !(k === 'HOST' || k === 'PORT' || k.startsWith('WASM_SERVE_'))))
  const started = performance.now()
  const child = spawn(process.execPath, [...nodeFlags, CLI, root, '--port', '0', '--quiet'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...inherited, WASM_SERVE_COMPRESS: JSON.stringify({ cacheDir }), ...env },
  })
  const orphan = () => child.kill('SIGKILL')
  process.once('exit', orphan)
  let stderr = ''
  child.stderr.on('data', d => { stderr += d })
  const exited = new Promise(resolve => child.once('exit', resolve))
  try {
    const port = await new Promise((resolve, reject) => {
      let stdout = ''
      child.stdout.on('data', d => {
        stdout += d
        const m = /at https?:\/\/127\.0\.0\.1:(\d+)/.exec(stdout)
        if (m !== null) resolve(Number(m[1]))
      })
      exited.then(code => reject(new Error(`the CLI exited (${code}) before serving: ${stderr.trim()}`)))
    })
    const listening = performance.now() - started
    const agent = new Agent({ keepAlive: true, maxSockets: 1 })
    const url = '/' + last.split('/').map(encodeURIComponent).join('/')
    let res
    let polls = 0
    for (; ; polls++) {
      res = await get(agent, port, url)
      if (res.status === 200) break
      if (performance.now() - started > 120_000) throw new Error(`no 200 for ${url} within 120 s (last status ${res.status})`)
    }
    const served = performance.now() - started
    const cpu = procCpuSeconds(child.pid)
    const rss = procStatusMB(child.pid, 'VmRSS')
    const hwm = procStatusMB(child.pid, 'VmHWM')
    agent.destroy()
    if (res.etag !== `"${res.tag}"`) throw new Error(`${url}: ETag ${res.etag} is not the content hash "${res.tag}" (D6)`)
    return { listening, served, cpu, rss, hwm, polls }
  } finally {
    child.kill('SIGTERM')
    await exited
    process.off('exit', orphan)
    await rm(cacheDir, { recursive: true, force: true })
  }
}

const median = xs => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

/**
 * Cold starts of the CLI over a generated root of `files` files and `totalBytes` bytes: medians of
 * `runs` of seconds to the serving line (`listeningS`) and to the last file's first 200 (`servedS`),
 * CPU seconds (user + sys) by then, and MB of RSS (VmRSS, VmHWM) just after; `all` has every run.
 */
export async function measureStartup ({ files, totalBytes, runs = 5, nodeFlags = [], env = {} }) {
  if (!existsSync(CLI)) throw new Error('dist/cli.js is missing: run `npm run build` first')
  const root = await generateRoot({ files, totalBytes })
  const last = await lastInWalkOrder(root)
  const all = []
  for (let i = 0; i < runs; i++) all.push(await oneRun({ root, last, nodeFlags, env }))
  const m = key => median(all.map(r => r[key]))
  return { files, totalBytes, root, last, runs, listeningS: m('listening') / 1000, servedS: m('served') / 1000, cpuS: m('cpu'), rssMB: m('rss'), hwmMB: m('hwm'), all }
}

const fmt = (n, digits = 2) => n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })

async function main () {
  const { values } = parseArgs({
    options: {
      files: { type: 'string' },
      mb: { type: 'string' },
      runs: { type: 'string', default: '5' },
      large: { type: 'boolean', default: false },
    },
  })
  const cases = values.files !== undefined
    ? [{ files: Number(values.files), totalBytes: Number(values.mb ?? 160) * 1e6 }]
    : [{ files: 10_000, totalBytes: 160e6 }, ...(values.large ? [{ files: 100_000, totalBytes: 100e6 }] : [])]
  console.log(`Node ${process.version}, load average ${loadavg().map(l => l.toFixed(2)).join(' ')} before the runs`)
  console.log('| root | runs | serving line | last file served | CPU (user+sys) | VmRSS | VmHWM |')
  console.log('|---|--:|--:|--:|--:|--:|--:|')
  for (const c of cases) {
    const r = await measureStartup({ ...c, runs: Number(values.runs) })
    const spread = key => `${fmt(Math.min(...r.all.map(x => x[key])) / (key === 'cpu' ? 1 : 1000))}–${fmt(Math.max(...r.all.map(x => x[key])) / (key === 'cpu' ? 1 : 1000))}`
    console.log(`| ${r.files.toLocaleString('en-US')} files, ${Math.round(r.totalBytes / 1e6)} MB | ${r.runs} | ${fmt(r.listeningS)} s | **${fmt(r.servedS)} s** (${spread('served')}) | ${fmt(r.cpuS)} s (${spread('cpu')}) | ${fmt(r.rssMB, 0)} MB | ${fmt(r.hwmMB, 0)} MB |`)
  }
  console.log(`load average ${loadavg().map(l => l.toFixed(2)).join(' ')} after the runs`)
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main()
