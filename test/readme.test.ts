import t from 'tap'
import { readFileSync } from 'node:fs'
import { OptionsSchema } from '../src/options.js'

// Every option is defined once (docs/delivery.md §3): the README's option table and CLI help are generated from the schema and the flag table
// (scripts/readme-sections.mjs --write) and must not drift from them.
t.test('README.md carries the generated option table and --help text', async t => {
  const { render } = await import('../scripts/readme-sections.mjs' as string) as { render: (s: string) => string }
  const readme = readFileSync('README.md', 'utf8')
  t.equal(render(readme), readme, 'run `npm run build && node scripts/readme-sections.mjs --write`')
  for (const key of Object.keys(OptionsSchema.properties)) t.match(readme, `| \`${key}\` |`, `option ${key} is documented`)
})

t.test('README.md starts with the two commands a newcomer runs', async t => {
  const head = readFileSync('README.md', 'utf8').split('\n').slice(0, 6).join('\n')
  t.match(head, /npm ci && npm start/)
  t.match(head, /npm test/)
})
