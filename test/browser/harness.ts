/** Real CLI + real Chromium for the end-to-end tests. */
import { createHash, X509Certificate } from 'node:crypto'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { connect as tlsConnect } from 'node:tls'
import { join } from 'node:path'
import type { Test } from 'tap'
import { chromium, type BrowserContext } from 'playwright-core'
import { request } from 'undici'
import { CLI, serveCli } from '../helpers/cli.js'
import { until } from '../helpers/poll.js'

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

/** Why the browser tests cannot run here, or undefined when they can. */
export function skipReason (): string | undefined {
  if (!existsSync(CHROMIUM)) return `no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`
  if (!existsSync(CLI)) return `${CLI} is not built (npm run build)`
  return undefined
}

/**
 * Runs a browser test file's tests when Chromium and the build are here (and `otherReason` is
 * undefined); otherwise plans none and prints why, so a skip is never silent.
 */
export async function whenBrowser (t: Test, run: () => Promise<void>, otherReason?: string): Promise<void> {
  const reason = skipReason() ?? otherReason
  if (reason === undefined) return run()
  console.log(`# skipping browser tests: ${reason}`)
  t.plan(0, reason)
}

/** Starts `wasm-serve DIR --port 0 --quiet ...flags`; `stop` ends it with SIGTERM (teardown kills it otherwise). */
export async function startCli (t: Test, dir: string, flags: string[] = []): Promise<{ url: string, stop: () => Promise<void> }> {
  const { url, child, exited } = await serveCli(t, [dir, '--port', '0', '--quiet', ...flags])
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
    await exited
  }
  return { url, stop }
}

/**
 * A headless Chromium on a fresh profile (its own HTTP cache), closed and removed when `t` ends. No
 * sandbox (the tests may run as root in a container), no GPU, no QUIC (the server speaks HTTP over
 * TCP), and no background traffic of Chromium's own; `extraArgs` are added to these.
 */
export async function launch (t: Test, extraArgs: string[] = []): Promise<BrowserContext> {
  const profile = mkdtempSync(join(tmpdir(), 'wasm-serve-chromium-'))
  t.teardown(() => rmSync(profile, { recursive: true, force: true }))
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', ...extraArgs],
  })
  // Closed before the profile is removed: tap runs teardowns last in, first out.
  t.teardown(() => context.close())
  return context
}

/**
 * Waits until the server answers `path` with `encoding` (files without siblings are compressed
 * on the fly in the background after start-up; until then identity is the honest answer).
 */
export async function waitForEncoding (base: string, path: string, encoding: string, timeout = 20_000): Promise<void> {
  let got = 'nothing yet'
  await until(async () => {
    const res = await request(base + path, { method: 'HEAD', headers: { 'accept-encoding': encoding } })
    await res.body.dump()
    got = String(res.headers['content-encoding'] ?? 'identity')
    return got === encoding
  }, { timeout, interval: 100, what: () => `${path} in ${encoding} (still served as ${got})` })
}

/**
 * `--ignore-certificate-errors-spki-list=<hash>` for the certificate the HTTPS server at `url`
 * presents: Chromium then treats that certificate as trusted, as a browser does once its user trusts
 * a development certificate (mkcert, a certificate installed in the OS). `--ignore-certificate-errors`
 * is different: the page still has a certificate error, and Chromium keeps some state only for pages
 * without one (compression dictionaries, for one).
 */
export async function trustCertificateOf (url: string): Promise<string> {
  const { hostname, port } = new URL(url)
  const der = await new Promise<Buffer>((resolve, reject) => {
    const socket = tlsConnect({ host: hostname, port: Number(port), servername: 'localhost', rejectUnauthorized: false }, () => {
      resolve(socket.getPeerCertificate().raw)
      socket.end()
    })
    socket.on('error', reject)
  })
  const spki = new X509Certificate(der).publicKey.export({ type: 'spki', format: 'der' })
  return `--ignore-certificate-errors-spki-list=${createHash('sha256').update(spki).digest('base64')}`
}
