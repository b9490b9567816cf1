/**
 * Preloads that isolation breaks, said at start-up (D11 and D12 in docs/delivery.md). Under COEP
 * require-corp or Document-Isolation-Policy isolate-and-require-corp, a `<link rel=preload>` without
 * `crossorigin` is a no-cors request: one to another origin is blocked unless that origin sends
 * Cross-Origin-Resource-Policy, and one for what the page then fetch()es (a module, JSON) or loads as
 * a font (both CORS requests) is a different request the browser does not reuse, so it is downloaded
 * twice (w3c/preload#100). The pages are read from the catalog's bytes already in memory (a page
 * too large for the memory budget is not read again for this); route `Link` headers from the config.
 * `modulepreload` is left out: HTML fetches module scripts in CORS mode whatever `crossorigin` says.
 */
import { linkPreloads, scanPage, type Preload } from './check/scan.js'
import type { ResolvedOptions } from './options.js'
import type { Asset, Logger } from './types.js'

/** A URL base for pages of the root: only whether a preload leaves this origin matters. */
const BASE = 'http://wasm-serve.invalid/'

/** The modes that require CORP of no-cors cross-origin responses, or (report) say what would. */
const REQUIRE_CORP = new Set<ResolvedOptions['crossOriginIsolation']>(['require-corp', 'document', 'report'])

export interface LoosePreload {
  /** The page (root-relative) or the route's glob whose Link header has it. */
  where: string
  url: string
  why: string
}

/** Why a preload without crossorigin fails under require-corp, or undefined when it does not. */
function whyLoose (p: Preload): string | undefined {
  if (p.rel !== 'preload' || p.crossorigin) return undefined
  if (new URL(p.url).origin !== new URL(BASE).origin) return 'another origin: blocked unless it sends Cross-Origin-Resource-Policy'
  if (p.as === 'fetch' || p.as === 'font' || /\.wasm$/i.test(new URL(p.url).pathname)) return 'fetch() and fonts make CORS requests that do not reuse it: downloaded twice'
  return undefined
}

/** The loose preloads of the HTML pages held in memory and of the routes' Link headers. */
export function loosePreloads (opts: ResolvedOptions, assets: Iterable<Asset>): LoosePreload[] {
  if (!REQUIRE_CORP.has(opts.crossOriginIsolation)) return []
  const out: LoosePreload[] = []
  const add = (where: string, preloads: Preload[]) => {
    for (const p of preloads) {
      const why = whyLoose(p)
      if (why !== undefined) out.push({ where, url: p.url.replace(BASE, '/'), why })
    }
  }
  for (const route of opts.routes) {
    const link = Object.entries(route.headers ?? {}).find(([name]) => name.toLowerCase() === 'link')?.[1]
    if (link !== undefined) add(`route "${route.match}"`, linkPreloads(link, BASE))
  }
  for (const asset of assets) {
    const { body, coding } = asset.identity
    if (!asset.isHtml || body === null || coding !== 'identity') continue
    add(asset.path, scanPage(body.toString('utf8'), BASE + asset.path).preloads)
  }
  return out
}

/** One warning per loose preload, naming the page or route, the URL and what goes wrong. */
export function warnLoosePreloads (opts: ResolvedOptions, assets: Iterable<Asset>, log: Logger): void {
  for (const loose of loosePreloads(opts, assets)) {
    const mode = opts.crossOriginIsolation === 'report' ? 'once --isolate enforces it (report mode now)' : `under crossOriginIsolation "${String(opts.crossOriginIsolation)}"`
    log.warn({ in: loose.where, preload: loose.url }, `preload without crossorigin ${mode}: ${loose.why}; add crossorigin`)
  }
}
