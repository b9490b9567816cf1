/** Real CLI + real Chromium for the end-to-end tests (launch flags per DEVELOPERS.md). */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type BrowserContext } from 'playwright-core'
import { request } from 'undici'

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
export const CLI = 'dist/cli.js'

/** Why the browser tests cannot run here, or undefined when they can. */
export function skipReason (): string | undefined {
  if (!existsSync(CHROMIUM)) return `no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`
  if (!existsSync(CLI)) return `${CLI} is not built (npm run build)`
  return undefined
}

/** Starts `wasm-serve DIR --port 0 ...flags` and resolves with its base URL. */
export async function startCli (dir: string, flags: string[] = []): Promise<{ url: string, stop: () => Promise<void> }> {
  const child: ChildProcess = spawn(process.execPath, [CLI, dir, '--port', '0', '--quiet', ...flags], { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  const url = await new Promise<string>((resolve, reject) => {
    const onData = (d: Buffer) => {
      output += d
      const m = output.match(/http:\/\/127\.0\.0\.1:\d+/)
      if (m) resolve(m[0])
    }
    child.stdout?.on('data', onData)
    child.stderr?.on('data', onData)
    child.once('exit', code => reject(new Error(`wasm-serve exited with ${code}: ${output}`)))
  })
  const stop = () => new Promise<void>(resolve => {
    if (child.exitCode !== null) return resolve()
    child.once('exit', () => resolve())
    child.kill('SIGTERM')
  })
  return { url, stop }
}

/** A fresh headless Chromium profile (own HTTP cache); removed on close. */
export async function launch (): Promise<{ context: BrowserContext, close: () => Promise<void> }> {
  const profile = mkdtempSync(join(tmpdir(), 'wasm-serve-chromium-'))
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  })
  return {
    context,
    close: async () => { await context.close(); rmSync(profile, { recursive: true, force: true }) },
  }
}

/**
 * Waits until the server answers `path` with `encoding` (files without siblings are compressed
 * on the fly in the background after start-up; until then identity is the honest answer).
 */
export async function waitForEncoding (base: string, path: string, encoding: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const res = await request(base + path, { method: 'HEAD', headers: { 'accept-encoding': encoding } })
    await res.body.dump()
    const got = res.headers['content-encoding'] ?? 'identity'
    if (got === encoding) return
    if (Date.now() > deadline) throw new Error(`${path} is still served as ${got}, not ${encoding}`)
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}
