/**
 * The text report of `wasm-serve check`: one line per rule per URL, `PASS|WARN|FAIL  rule  url
 * evidence`, an indented `fix:` line under each WARN and FAIL, then a line of counts. What comes from
 * the server (evidence, URLs) is printed with control characters escaped (printable.ts): a header
 * value must not write lines of its own.
 */
import { printable } from '../printable.js'
import type { Report } from './run.js'

const WIDTH = 15

export function formatReport (report: Report): string {
  const lines: string[] = []
  for (const f of report.findings) {
    lines.push(`${f.status.toUpperCase()}  ${f.rule.padEnd(WIDTH)} ${printable(f.url)}  ${printable(f.evidence)}`)
    if (f.fix !== undefined) lines.push(`      fix: ${printable(f.fix)}`)
  }
  const count = (s: string) => report.findings.filter(f => f.status === s).length
  const engine = report.engine !== undefined ? `, server: ${report.engine}` : ''
  lines.push(`${count('pass')} pass, ${count('warn')} warn, ${count('fail')} fail (${report.urls.length} URL${report.urls.length === 1 ? '' : 's'} audited${engine})`)
  return lines.join('\n') + '\n'
}
