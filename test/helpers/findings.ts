/** Reading a `wasm-serve check` report in tests: the one finding a rule gave a URL. */
import type { Finding, Report, RuleId } from '../../src/check/index.js'

/** The one finding for `rule` on the URL whose path is `path`; throws, listing the rule's findings, unless exactly one. */
export function finding (report: Report, rule: RuleId, path: string): Finding {
  const found = report.findings.filter(f => f.rule === rule && new URL(f.url).pathname === path)
  if (found.length !== 1) throw new Error(`${found.length} findings for ${rule} on ${path}: ${JSON.stringify(report.findings.filter(f => f.rule === rule))}`)
  return found[0]!
}
