/**
 * docs/delivery.md names, for every rule, the tests that check it. Those names must stay true: a
 * test renamed or removed without the rules document following it fails here.
 */
import t from 'tap'
import { existsSync, readFileSync } from 'node:fs'

const doc = readFileSync('docs/delivery.md', 'utf8')

/** Each `test/x.test.ts` reference with the quoted test names that follow it, up to the next reference. */
function citations (): Array<{ file: string, names: string[] }> {
  const out: Array<{ file: string, names: string[] }> = []
  const parts = doc.split(/`(test\/[\w./-]+\.test\.ts)`/)
  for (let i = 1; i < parts.length; i += 2) {
    const text = parts[i + 1]!.split(/\n\n|\n<a id=/)[0]!.replace(/\s*\n\s*/g, ' ')
    out.push({ file: parts[i]!, names: [...text.matchAll(/"([^"]{12,})"/g)].map(m => m[1]!) })
  }
  return out
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

/** The names a test file gives its tests (t.test's first argument), a template's `${…}` kept as written. */
function testNames (file: string): string[] {
  const source = readFileSync(file, 'utf8')
  return [...source.matchAll(/\.test\(\s*(['`])((?:\\.|(?!\1)[^\\])*)\1/g)].map(m => m[2]!.replace(/\\(['`])/g, '$1'))
}

/** A cited name matches a test when a template's value or the document's "…" covers the difference. */
function matches (cited: string, name: string): boolean {
  const fromTemplate = new RegExp('^' + name.split(/\$\{[^}]*\}/).map(escape).join('.*') + '$')
  const fromEllipsis = new RegExp('^' + cited.split('…').map(s => escape(s.trim())).join('.*') + '$')
  return fromTemplate.test(cited) || fromEllipsis.test(name) || fromEllipsis.test(name.replace(/\$\{[^}]*\}/g, '…'))
}

const cited = citations()
t.ok(cited.some(c => c.names.length > 0), 'the document cites tests by name')

for (const { file, names } of cited) {
  t.test(`${file}, as docs/delivery.md cites it`, async t => {
    if (!existsSync(file)) return t.fail(`${file} does not exist`)
    const known = testNames(file)
    const missing = names.filter(n => !known.some(k => matches(n, k)))
    t.same(missing, [], `${names.length} names cited, each a test in the file`)
  })
}
