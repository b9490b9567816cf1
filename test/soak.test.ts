/**
 * Part of the reliability suite (bench/soak.mjs, docs/reliability.md) in every test run: the
 * scenarios that finish within a minute between them, run against the real CLI. The others
 * (`npm run soak`) take minutes, or depend on how loaded the machine is:
 * stalled readers and streams (the time to cut them), rewrite churn (a writer stalled by the load
 * for 100 ms looks finished), the file over 2 GiB (hashed at start-up), signals (grace period).
 */
import t, { type Test } from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { cleanEnv, ROOT } from './helpers/cli.js' // builds dist/ if it is missing

const SOAK = join(ROOT, 'bench/soak.mjs')
const DEADLINE_MS = 120_000

const hasPrlimit = spawnSync('sh', ['-c', 'command -v prlimit'], { stdio: 'ignore' }).status === 0

/** Runs `node bench/soak.mjs --quick --only <scenarios>`; resolves with its exit code and table. */
function soak (scenarios: string[]): Promise<{ code: number | null, output: string }> {
  // Without tap's loaders in NODE_OPTIONS: the soak and the CLIs it starts are plain node.
  const env = cleanEnv()
  delete env.NODE_OPTIONS
  delete env.NODE_V8_COVERAGE // a benchmark script, not part of the product: left out of the coverage figures
  const child = spawn(process.execPath, [SOAK, '--quick', '--only', scenarios.join(',')], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.setEncoding('utf8').on('data', (s: string) => { output += s })
  child.stderr.setEncoding('utf8').on('data', (s: string) => { output += s })
  // SIGINT lets the soak kill the servers it started and remove its directories; SIGKILL if it cannot.
  const timer = setTimeout(() => {
    child.kill('SIGINT')
    setTimeout(() => child.kill('SIGKILL'), 10_000).unref()
  }, DEADLINE_MS)
  return new Promise(resolve => child.on('exit', code => { clearTimeout(timer); resolve({ code, output }) }))
}

/** Exit 0 and no figure outside its bound; the table is printed when either fails. */
function passed (t: Test, { code, output }: { code: number | null, output: string }): void {
  if (code !== 0 || output.includes('FAILED')) t.comment(output)
  t.notMatch(output, /FAILED/, 'no figure outside its bound')
  t.equal(code, 0, 'the soak exits 0')
}

t.test('slowloris and directory replacement: every figure within its bound', async t => {
  const result = await soak(['slowloris', 'directories'])
  t.match(result.output, /\| slowloris \| answered 408 before the cut \|/)
  t.match(result.output, /\| directories \| symlinked root re-pointed ×5: /)
  passed(t, result)
})

t.test('descriptor exhaustion under prlimit: no wrong status, alive, the fix logged', { skip: hasPrlimit ? false : 'prlimit (util-linux) not found: descriptor exhaustion needs it' }, async t => {
  const result = await soak(['descriptors'])
  t.match(result.output, /\| descriptors \| maxConnections 1000: wrong statuses \(404, 500, …\) \| 0 \|/)
  passed(t, result)
})
