/**
 * Benchmark plumbing: start a bench/server.mjs child pinned to CPU 0, read its CPU time and peak RSS
 * from /proc, stop it; and check that a server really answers what we are about to measure (a
 * benchmark of 404s is worthless).
 */
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'

const SERVER = join(dirname(fileURLToPath(import.meta.url)), 'server.mjs')
const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cli.js')
const CLK_TCK = 100 // Linux USER_HZ

/** A field of /proc/PID/status in KiB (VmHWM = peak RSS, VmRSS = current RSS). */
function procStatusKiB (pid, field) {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8')
  return Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN)
}

/** utime + stime of a process in seconds (fields 14 and 15 of /proc/PID/stat). */
function procCpuSeconds (pid) {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK
}

/**
 * utime + stime of a process and every descendant alive now (a CLI's workers, nginx's), in seconds;
 * 0 once it has exited.
 */
export function treeCpuSeconds (pid) {
  let total = 0
  try { total = procCpuSeconds(pid) } catch { return 0 }
  let children = []
  try { children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean) } catch {}
  for (const child of children) total += treeCpuSeconds(Number(child))
  return total
}

/** VmRSS in KiB of a process and of each of its children now: { self, children: [{ pid, kib }] }. */
export function rssTreeKiB (pid) {
  let children = []
  try { children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number) } catch {}
  return { self: procStatusKiB(pid, 'VmRSS'), children: children.map(child => ({ pid: child, kib: procStatusKiB(child, 'VmRSS') })) }
}

/**
 * CPU seconds all processes and the kernel spent busy on the machine (/proc/stat), so a run can tell
 * how much other work competed with the server and the load generator.
 */
export function machineBusySeconds () {
  const [user, nice, system, , , irq, softirq, steal] = readFileSync('/proc/stat', 'utf8')
    .split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
  return (user + nice + system + irq + softirq + steal) / CLK_TCK
}

/**
 * Spawn `taskset -c 0 node bench/server.mjs kind root [options]` (`cpus`: another CPU list) and resolve once it prints its port.
 * taskset execs node, so the child's pid is the server's. Kind 'cli' runs the real CLI instead,
 * `node [nodeFlags] dist/cli.js root --port 0 --quiet [cliArgs]`, and reads the port from its
 * one-line banner; `env` is added to the child's environment.
 */
export function startServer (kind, root, options, { timeoutMs = 60_000, nodeFlags = [], cliArgs = [], env = {}, cpus = '0' } = {}) {
  const args = kind === 'cli'
    ? ['-c', cpus, process.execPath, ...nodeFlags, CLI, root, '--port', '0', '--quiet', ...cliArgs]
    : ['-c', cpus, process.execPath, ...nodeFlags, SERVER, kind, root, ...(options ? [JSON.stringify(options)] : [])]
  if (kind === 'cli' && !existsSync(CLI)) return Promise.resolve({ notBuilt: true })
  // The CLI reads HOST, PORT and WASM_SERVE_* too: only what the benchmark sets reaches it.
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => kind !== 'cli' || !(k === 'HOST' || k === 'PORT' || k.startsWith('WASM_SERVE_'))))
  const child = spawn('taskset', args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...inherited, ...env } })
  let stderr = ''
  child.stderr.on('data', (d) => { stderr += d })
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
  const server = {
    pid: child.pid,
    cpuSeconds: () => procCpuSeconds(child.pid),
    peakRssKiB: () => procStatusKiB(child.pid, 'VmHWM'),
    rssKiB: () => procStatusKiB(child.pid, 'VmRSS'),
    async stop () {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM')
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
        await exited
        clearTimeout(timer)
      }
    },
  }
  return new Promise((resolve, reject) => {
    let stdout = ''
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`${kind} server did not print its port within ${timeoutMs / 1000} s`))
    }, timeoutMs)
    child.stdout.on('data', (d) => {
      stdout += d
      const port = (kind === 'cli' ? /^wasm-serve .* at https?:\/\/127\.0\.0\.1:(\d+)/m : /^PORT (\d+)$/m).exec(stdout)?.[1]
      if (port) {
        clearTimeout(timer)
        resolve({ ...server, port: Number(port) })
      }
    })
    exited.then(({ code, signal }) => {
      clearTimeout(timer)
      if (code === 3 && stdout.includes('NOT_BUILT')) resolve({ ...server, notBuilt: true })
      else reject(new Error(`${kind} server exited (${signal ?? code}) before listening: ${stderr.trim().split('\n').slice(0, 5).join(' | ')}`))
    })
  })
}

/**
 * Throw unless `url` answers a br request with 200, Content-Type application/wasm, the expected
 * Content-Encoding (none for identity), Content-Length and bytes.
 */
export async function verify (url, expected, acceptEncoding = 'br') {
  const res = await request(url, { headers: { 'accept-encoding': acceptEncoding } })
  const body = Buffer.from(await res.body.arrayBuffer())
  const h = res.headers
  const problems = []
  if (res.statusCode !== 200) problems.push(`status ${res.statusCode}`)
  if (h['content-type'] !== 'application/wasm') problems.push(`content-type ${h['content-type']}`)
  if (h['content-encoding'] !== expected.encoding) problems.push(`content-encoding ${h['content-encoding'] ?? '(none)'}, expected ${expected.encoding ?? '(none)'}`)
  if (h['content-length'] !== String(expected.size)) problems.push(`content-length ${h['content-length'] ?? '(none)'}, expected ${expected.size}`)
  if (body.length !== expected.size) problems.push(`${body.length} body bytes, expected ${expected.size}`)
  else if (expected.sha256 && createHash('sha256').update(body).digest('hex') !== expected.sha256) problems.push('body bytes differ from the fixture')
  if (problems.length > 0) throw new Error(`${url}: ${problems.join('; ')}`)
}

/** `node dist/cli.js ROOT --port PORT ...flags` with this Node; resolves with its URL, port and a stop() once it listens. */
export function startCli (root, { port = 0, flags = [] } = {}) {
  const child = spawn(process.execPath, [CLI, root, '--port', String(port), ...flags], { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  // A benchmark that dies (an exception, Ctrl-C) must not leave a server behind.
  const orphan = () => child.kill('SIGKILL')
  process.once('exit', orphan)
  const exited = new Promise(resolve => child.once('exit', resolve)).finally(() => process.off('exit', orphan))
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`wasm-serve did not print its URL: ${output}`)), 60_000)
    const onData = d => {
      output += d
      const m = /http:\/\/127\.0\.0\.1:(\d+)/.exec(output)
      if (m === null) return
      clearTimeout(timer)
      child.stdout.off('data', onData)
      resolve({
        url: m[0],
        port: Number(m[1]),
        async stop () {
          if (child.exitCode === null && child.signalCode === null) {
            child.kill('SIGTERM')
            await exited
          }
        },
      })
    }
    child.stdout.on('data', onData)
    child.stderr.on('data', d => { output += d })
    child.once('exit', code => { clearTimeout(timer); reject(new Error(`wasm-serve exited with ${code}: ${output}`)) })
  })
}

/** Stub import object from WebAssembly.Module.imports() descriptors (also run inside the page). */
export function stubImports (descriptors) {
  const imports = {}
  for (const d of descriptors) {
    imports[d.module] ??= {}
    if (d.kind === 'function') imports[d.module][d.name] = () => 0
    else if (d.kind === 'memory') imports[d.module][d.name] = new WebAssembly.Memory({ initial: 256, maximum: 32768 })
    else if (d.kind === 'table') imports[d.module][d.name] = new WebAssembly.Table({ initial: 0, element: 'anyfunc' })
    else if (d.kind === 'global') imports[d.module][d.name] = new WebAssembly.Global({ value: 'i32', mutable: false }, 0)
  }
  return imports
}
