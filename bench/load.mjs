/**
 * Load generator, pinned to CPU 1: wrk when it is installed (C, one thread: the lightest client),
 * else autocannon from node_modules. Both report requests, bytes on the wire (headers + body) and
 * errors (socket errors, timeouts, non-2xx) the same way.
 */
import { execFile, execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const run = promisify(execFile)
const AUTOCANNON = join(dirname(fileURLToPath(import.meta.url)), '..', 'node_modules', 'autocannon', 'autocannon.js')

const WRK = (() => {
  try {
    return execFileSync('wrk', ['-v'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).split('\n')[0] || 'wrk'
  } catch (err) {
    return /^wrk /.test(String(err.stdout)) ? String(err.stdout).split('\n')[0] : null
  }
})()

export const loadTool = () => WRK ? `${WRK.split(' [')[0]} (1 thread)` : 'autocannon (wrk not installed)'

/** Lua for wrk: optional round-robin over paths, and a machine-readable summary line. */
function wrkScript (paths) {
  const cycle = paths
    ? `local paths = { ${paths.map(p => JSON.stringify(p)).join(', ')} }
local i = 0
request = function()
  i = i % #paths + 1
  return wrk.format(nil, paths[i])
end
`
    : ''
  return `${cycle}done = function(s, latency, requests)
  local e = s.errors
  io.write(string.format('WRK_JSON {"requests":%d,"bytes":%d,"us":%d,"errors":%d,"p50":%d,"p99":%d}\\n',
    s.requests, s.bytes, s.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
`
}

let scriptDir
async function runWrk ({ url, connections, seconds, headers, paths, cpu = '1' }) {
  if (!scriptDir) {
    scriptDir = mkdtempSync(join(tmpdir(), 'wasm-serve-bench-'))
    process.once('exit', () => rmSync(scriptDir, { recursive: true, force: true }))
  }
  const script = join(scriptDir, 'bench.lua')
  writeFileSync(script, wrkScript(paths))
  const hs = Object.entries(headers).flatMap(([k, v]) => ['-H', `${k}: ${v}`])
  // The shell reports its own /proc stat after waiting for wrk: cutime + cstime = wrk's CPU time.
  const sh = 'wrk "$@"; echo "SH_STAT $(cat /proc/$$/stat)"'
  const { stdout } = await run('taskset', ['-c', cpu, 'sh', '-c', sh, 'sh', '-t1', `-c${connections}`, `-d${seconds}s`, '--timeout', '10s', ...hs, '-s', script, url])
  const json = /^WRK_JSON (.*)$/m.exec(stdout)?.[1]
  if (!json) throw new Error(`wrk gave no summary: ${stdout}`)
  const r = JSON.parse(json)
  const stat = /^SH_STAT .*\) (.*)$/m.exec(stdout)?.[1].split(' ')
  const cpuSeconds = stat ? (Number(stat[13]) + Number(stat[14])) / 100 : NaN
  return { requests: r.requests, bytes: r.bytes, seconds: r.us / 1e6, errors: r.errors, p50ms: r.p50 / 1000, p99ms: r.p99 / 1000, cpuSeconds }
}

async function runAutocannon ({ url, connections, seconds, headers, paths, cpu = '1' }) {
  if (paths) throw new Error('round-robin over several paths needs wrk (apt-get install wrk)')
  const hs = Object.entries(headers).flatMap(([k, v]) => ['-H', `${k}=${v}`])
  const { stdout } = await run('taskset', ['-c', cpu, process.execPath, AUTOCANNON, '-j', '-c', String(connections), '-d', String(seconds), ...hs, url], { maxBuffer: 64 << 20 })
  const r = JSON.parse(stdout)
  return {
    requests: r.requests.total,
    bytes: r.throughput.total,
    seconds: r.duration,
    errors: r.errors + r.timeouts + r.non2xx,
    p50ms: r.latency.p50,
    p99ms: r.latency.p99,
  }
}

/** Run the load for `seconds` (on CPU `cpu`, default 1); returns { requests, bytes, seconds, rps, errors, p50ms, p99ms }. */
export async function runLoad (options) {
  const r = await (WRK ? runWrk(options) : runAutocannon(options))
  return { ...r, rps: r.requests / r.seconds }
}

/**
 * HTTP/2 load with h2load (nghttp2), pinned to CPU 1: `connections` TLS connections with `streams`
 * concurrent streams each, for `seconds` after a warm-up of `warmup` seconds. Certificates are not
 * checked (h2load never does).
 */
export async function runH2load ({ url, connections, streams, seconds, warmup = 1, headers, cpu = '1' }) {
  const hs = Object.entries(headers).flatMap(([k, v]) => ['-H', `${k}: ${v}`])
  const { stdout } = await run('taskset', ['-c', cpu, 'h2load', '-c', String(connections), '-m', String(streams), '-D', String(seconds), `--warm-up-time=${warmup}`, ...hs, url], { maxBuffer: 16 << 20 })
  const finished = /finished in ([\d.]+)s, ([\d.]+) req\/s/.exec(stdout)
  const requests = /requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(stdout)
  const traffic = /traffic: .*?\((\d+)\) total/.exec(stdout)
  if (!finished || !requests) throw new Error(`h2load gave no summary: ${stdout.slice(-500)}`)
  const status2xx = /status codes: (\d+) 2xx/.exec(stdout)
  return {
    rps: Number(finished[2]),
    seconds: Number(finished[1]),
    requests: Number(requests[2]),
    bytes: traffic ? Number(traffic[1]) : NaN,
    errors: Number(requests[4]) + Number(requests[5]) + (status2xx ? Number(requests[2]) - Number(status2xx[1]) : 0),
  }
}
