/**
 * `wasm-serve check <url> [more urls]`: audits deployed pages and modules against the delivery rules
 * and prints the findings (text, or JSON with --json). Exit codes: 0 no FAIL, 1 a FAIL (so CI can
 * gate a deploy on it), 2 a usage error (src/start-errors.ts EXIT).
 */
import type { Io } from '../compress/report.js'
import { printable } from '../printable.js'
import { EXIT, failureExit } from '../start-errors.js'
import { HELP, parseCheckArgs } from './args.js'
import { formatReport } from './report.js'
import { checkUrls } from './run.js'

export { checkUrls, RULE_IDS, type CheckOptions, type Finding, type Report, type RuleId, type Status } from './run.js'

const NAME = 'wasm-serve check'

export async function runCheck (argv: string[], io: Io = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  try {
    const args = parseCheckArgs(argv)
    if (args === 'help') { io.stdout.write(HELP); return EXIT.ok }
    const progress = (line: string) => { io.stderr.write(`${NAME}: ${printable(line)}\n`) }
    const report = await checkUrls(args.urls, { timeoutMs: args.timeoutMs, insecure: args.insecure, progress })
    io.stdout.write(args.json ? JSON.stringify(report, null, 2) + '\n' : formatReport(report))
    return report.findings.some(f => f.status === 'fail') ? EXIT.failed : EXIT.ok
  } catch (err) {
    return failureExit(err, NAME, io.stderr)
  }
}
