/**
 * Where browsers send reports (the Reporting API, w3c.github.io/reporting): the one endpoint the
 * isolation report mode (D12 in docs/delivery.md) and the security preset's report-only
 * Content-Security-Policy name in `Reporting-Endpoints`. The sink that receives them is served under
 * the same prefix as the files.
 */

/** The sink's path below the served prefix; `.well-known/` is never hidden as a dotfile (D14). */
export const REPORTS_PATH = '/.well-known/wasm-serve/reports'

/** The endpoint's name in `Reporting-Endpoints`, which `report-to` parameters and directives refer to. */
export const REPORT_GROUP = 'wasm-serve'

/** `Reporting-Endpoints` naming the sink (a relative URL is resolved against the response's URL). */
export function reportingEndpoints (prefix: string): string {
  return `${REPORT_GROUP}="${prefix}${REPORTS_PATH}"`
}
