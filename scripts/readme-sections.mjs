#!/usr/bin/env node
// The README's option table and CLI help come from the code, where every option is defined once
// (docs/delivery.md §3): the JSON Schema in src/schema.ts (as src/options.schema.json) and the flag
// table in src/config.ts. `node scripts/readme-sections.mjs --write` rewrites them between their
// markers; test/readme.test.ts fails when they drift.
import { readFileSync, writeFileSync } from 'node:fs'
import { OptionsSchema } from '../dist/options.js'
import { envName, helpText } from '../dist/config.js'

export function optionsTable () {
  const rows = []
  const walk = (props, prefix) => {
    for (const [key, schema] of Object.entries(props)) {
      const name = prefix + key
      const def = schema.default === undefined ? '' : `\`${JSON.stringify(schema.default)}\``
      const env = prefix === '' ? `\`${envName(key)}\`` : ''
      rows.push(`| \`${name}\` | ${def} | ${env} | ${(schema.description ?? '').replace(/\|/g, '\\|')} |`)
      if (schema.type === 'object' && schema.properties) walk(schema.properties, `${name}.`)
    }
  }
  walk(OptionsSchema.properties, '')
  const route = OptionsSchema.properties.routes.items.properties
  for (const [key, schema] of Object.entries(route)) rows.push(`| \`routes[].${key}\` |  |  | ${schema.description ?? ''} |`)
  return ['| option | default | environment | what it does |', '|---|---|---|---|', ...rows].join('\n')
}

export function sections () {
  return { options: optionsTable(), help: '```text\n' + helpText() + '```' }
}

export function render (readme) {
  let out = readme
  for (const [name, text] of Object.entries(sections())) {
    const re = new RegExp(`(<!-- ${name}:start -->)[\\s\\S]*?(<!-- ${name}:end -->)`)
    if (!re.test(out)) throw new Error(`README.md has no <!-- ${name}:start --> … <!-- ${name}:end --> markers`)
    out = out.replace(re, `$1\n${text}\n$2`)
  }
  return out
}

if (process.argv.includes('--write')) {
  const readme = readFileSync('README.md', 'utf8')
  writeFileSync('README.md', render(readme))
}
