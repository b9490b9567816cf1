/**
 * The real CLI (`node dist/cli.js`, built by `npm test`'s pretest), spawned the way a user runs it,
 * with what it prints collected, and killed at teardown if it is still running.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import type { Test } from 'tap'
import { until as poll } from './poll.js'

export const ROOT = resolve(import.meta.dirname, '..', '..')
export const CLI = join(ROOT, 'dist/cli.js')

if (!existsSync(CLI)) spawnSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.json')], { stdio: 'inherit' })

/** Where spawned CLIs keep per-user state (the `--https` development certificate): never the runner's home. */
let stateHome: string | undefined
function testStateHome (): string {
  if (stateHome === undefined) {
    const dir = mkdtempSync(join(tmpdir(), 'wasm-serve-state-'))
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
    stateHome = dir
  }
  return stateHome
}

/** The environment of the test runner without anything that would configure the server, plus `extra`. */
export function cleanEnv (extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env }
  for (const key of Object.keys(env)) if (key === 'PORT' || key === 'HOST' || key.startsWith('WASM_SERVE_')) delete env[key]
  return { ...env, XDG_STATE_HOME: testStateHome(), ...extra }
}

export interface CliProcess {
  child: ChildProcess
  out: { stdout: string, stderr: string }
  exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
}

export interface CliOptions {
  env?: Record<string, string>
  cwd?: string
  /** Run as this user (e.g. nobody, 65534) instead of the test runner's. */
  user?: { uid: number, gid: number }
}

/** Spawns the real CLI with `args`. */
export function runCli (t: Test, args: string[], opts: CliOptions = {}): CliProcess {
  const env = cleanEnv(opts.env)
  // tap's loaders, named in NODE_OPTIONS, may not be readable by another user; the built CLI needs none.
  if (opts.user !== undefined) delete env.NODE_OPTIONS
  const child = spawn(process.execPath, [CLI, ...args], { cwd: opts.cwd ?? ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], ...opts.user })
  const out = { stdout: '', stderr: '' }
  child.stdout!.setEncoding('utf8').on('data', (s: string) => { out.stdout += s })
  child.stderr!.setEncoding('utf8').on('data', (s: string) => { out.stderr += s })
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>(resolve => child.on('exit', (code, signal) => resolve({ code, signal })))
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  return { child, out, exited }
}

/** poll.ts's `until` for a process: rejects after `ms` with what the process printed by then. */
export async function until (proc: CliProcess, check: () => boolean | Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  await poll(check, { timeout: ms, what: () => `${what}\nstdout: ${proc.out.stdout}\nstderr: ${proc.out.stderr}` })
}

/** The CLI's one line on a non-TTY stdout: `wasm-serve VERSION serving LABEL at URL`. */
export const SERVING = /^wasm-serve (\S+) serving (.+) at (https?:\/\/\S+)/m

/** Starts the CLI and waits for its serving line; rejects if it exits first. */
export async function serveCli (t: Test, args: string[], opts: CliOptions = {}): Promise<CliProcess & { url: string }> {
  const proc = runCli(t, args, opts)
  let exited = false
  void proc.exited.then(() => { exited = true })
  await until(proc, () => SERVING.test(proc.out.stdout) || exited, 'the serving line')
  const m = SERVING.exec(proc.out.stdout)
  if (m === null) throw new Error(`the CLI exited before serving\nstdout: ${proc.out.stdout}\nstderr: ${proc.out.stderr}`)
  return { ...proc, url: m[3]! }
}
