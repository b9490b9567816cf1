/**
 * What the CLI says when it starts: on a terminal, a banner with every URL it answers on and what is
 * on; one line otherwise (`wasm-serve VERSION serving LABEL at URL`, which scripts parse); and
 * warnings (stderr, one line each) about set-ups that look served but are not what was meant: an
 * empty root (a volume not mounted), no index.html, and features a browser turns off over plain
 * HTTP on a LAN address. Pure functions of their input, so each is tested without a terminal.
 */
import bytes from 'bytes'
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os'
import type { ResolvedOptions } from './options.js'
import { printable } from './printable.js'
import type { TlsMaterial } from './tls.js'

type Features = Pick<ResolvedOptions, 'crossOriginIsolation' | 'cors' | 'spa' | 'earlyHints' | 'memoryBudget'> & { listing: boolean }

const WILDCARDS = new Set(['0.0.0.0', '::', '[::]'])

/** Whether only this machine can reach `host` (127.0.0.0/8, ::1, localhost). */
export function isLoopback (host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '')
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h) || /^::ffff:127\./i.test(h)
}

/** The URL for this machine's browser: localhost for a wildcard bind (a dev certificate names it). */
export function localUrl (address: string, host: string): string {
  const url = new URL(address)
  if (WILDCARDS.has(host) || url.hostname === '[::1]') url.hostname = 'localhost'
  return url.origin
}

/**
 * The URLs other machines use: each external IPv4 address of this machine for a wildcard bind (IPv6
 * link-local addresses need a zone id browsers do not take), the address itself for a specific
 * non-loopback bind, none on loopback.
 */
export function networkUrls (host: string, port: number, protocol: 'http' | 'https', interfaces: NodeJS.Dict<NetworkInterfaceInfo[]> = networkInterfaces()): string[] {
  return networkHosts(host, interfaces).map(h => `${protocol}://${h.includes(':') ? `[${h}]` : h}:${port}`)
}

/** The hosts of those URLs: what a development certificate must name besides localhost. */
export function networkHosts (host: string, interfaces: NodeJS.Dict<NetworkInterfaceInfo[]> = networkInterfaces()): string[] {
  if (isLoopback(host)) return []
  if (!WILDCARDS.has(host)) return [host.replace(/^\[|\]$/g, '')]
  const addresses = Object.values(interfaces).flatMap(list => list ?? []).filter(i => i.family === 'IPv4' && !i.internal).map(i => i.address)
  return [...new Set(addresses)]
}

export interface BannerInput {
  version: string
  /** The directory as typed (printed safely). */
  label: string
  local: string
  network: string[]
  tls: TlsMaterial | undefined
  features: Features
  files: number
}

/** The isolation mode in words (D12 in docs/delivery.md). */
function isolationText (mode: Features['crossOriginIsolation']): string {
  switch (mode) {
    case false: return 'off'
    case 'document': return 'on (Document-Isolation-Policy isolate-and-require-corp; Chromium 137+)'
    case 'document-credentialless': return 'on (Document-Isolation-Policy isolate-and-credentialless; Chromium 137+)'
    case 'report': return 'report only (COOP and COEP Report-Only; what would break is logged)'
    default: return `on (COOP same-origin, COEP ${mode})`
  }
}

/** The banner for a terminal: one row per URL and per feature, every feature said on or off. */
export function bannerText (input: BannerInput): string {
  const { features: f, tls } = input
  const rows: Array<[string, string]> = [
    ['Serving', `${printable(input.label)} (${input.files.toLocaleString('en-US')} ${input.files === 1 ? 'file' : 'files'})`],
    ['Local', input.local],
    ...input.network.map((url): [string, string] => ['Network', url]),
    ['HTTPS', tls === undefined ? 'off (HTTP/1.1)' : `on, HTTP/2 with HTTP/1.1 fallback; ${tls.dev !== undefined ? `${tls.dev.issuer === 'mkcert' ? 'mkcert' : 'self-signed'} dev certificate` : 'certificate'} SHA-256 ${tls.fingerprint256}`],
    ['Isolation', isolationText(f.crossOriginIsolation)],
    ['CORS', f.cors === false ? 'off' : f.cors.origin === '*' ? 'on, any origin' : `on, ${f.cors.origin.join(', ')}`],
    ['SPA', f.spa === false ? 'off' : `on, unknown pages get ${f.spa}`],
    ['Early hints', f.earlyHints ? 'on (103)' : 'off'],
    ['Listing', f.listing ? 'on for directories without index.html' : 'off'],
    ['Memory', `${bytes.format(f.memoryBudget, { unitSeparator: ' ' }) ?? String(f.memoryBudget)} budget`],
  ]
  const width = Math.max(...rows.map(([name]) => name.length)) + 2
  return ['', `  wasm-serve ${input.version}`, '', ...rows.map(([name, value]) => `  ${name.padEnd(width)}${value}`), '', '  Ctrl+C to stop', '', ''].join('\n')
}

/** The line scripts and tests parse when stdout is not a terminal: keep it exactly so. */
export function servingLine (version: string, label: string, url: string, tls: boolean): string {
  return `wasm-serve ${version} serving ${printable(label)} at ${url}${tls ? ' (HTTP/2)' : ''}\n`
}

export interface WarningInput {
  label: string
  files: number
  hasIndex: boolean
  listing: boolean
  isolation: ResolvedOptions['crossOriginIsolation']
  hasBrSiblings: boolean
  tls: boolean
  /** The URLs other machines would use (networkUrls). */
  network: string[]
  /** The URL this machine's browser would use (localUrl): a secure context when it is loopback. */
  local?: string
}

/** Start-up warnings, one line each without the `wasm-serve: warning: ` head; none for a set-up that is fine. */
export function startWarnings (input: WarningInput): string[] {
  const label = printable(input.label)
  const out: string[] = []
  if (input.files === 0) out.push(`no files to serve in ${label}: is a volume mounted?`)
  else if (!input.hasIndex) out.push(`no index.html in ${label}: / answers ${input.listing ? 'with a directory listing' : '404'}`)
  // A page from a LAN address over http is not a secure context (https://w3c.github.io/webappsec-secure-contexts/):
  // browsers ignore COOP, COEP (and their Report-Only forms) and Document-Isolation-Policy there, so
  // crossOriginIsolated stays false in every mode, and Chrome and Firefox offer br only over HTTPS.
  const lost = [isolationLost(input.isolation), input.hasBrSiblings ? 'browsers do not offer br' : ''].filter(Boolean)
  if (!input.tls && lost.length > 0 && input.network.length > 0) {
    const loopback = input.local !== undefined && isLoopback(new URL(input.local).hostname)
    out.push(`not a secure context for ${input.network[0]!}: ${lost.join(' and ')}; use --https${loopback ? `, or open ${input.local!} on this machine` : ''}`)
  }
  // Chromium keeps a page's report endpoints only when the page and the endpoint are https
  // (net/reporting/reporting_header_parser.cc), localhost included: over http the sink hears nothing.
  if (input.isolation === 'report' && !input.tls) out.push('--isolate=report: Chromium posts reports only from https:// pages, so none reach the report sink over http (even on localhost); use --https, or serve behind HTTPS (DevTools\' Issues panel lists them meanwhile)')
  return out
}

/** What an isolation mode loses outside a secure context (D12 in docs/delivery.md); '' for none. */
function isolationLost (mode: WarningInput['isolation']): string {
  // The report mode has a warning of its own below: over http nothing is reported, LAN or not.
  if (mode === false || mode === 'report') return ''
  return 'crossOriginIsolated stays false'
}

/** The command that opens a URL in the default browser here; WASM_SERVE_OPENER names another (tests, a given browser). */
export function openerFor (platform: NodeJS.Platform, env: NodeJS.ProcessEnv): { command: string, args: string[] } {
  if (env.WASM_SERVE_OPENER !== undefined && env.WASM_SERVE_OPENER !== '') return { command: env.WASM_SERVE_OPENER, args: [] }
  if (platform === 'darwin') return { command: 'open', args: [] }
  // `start` is a cmd built-in; its first quoted argument is the window title.
  if (platform === 'win32') return { command: 'cmd', args: ['/c', 'start', '""'] }
  return { command: 'xdg-open', args: [] }
}
