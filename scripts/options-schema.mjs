#!/usr/bin/env node
// Writes src/options.schema.json from the TypeBox schema in src/schema.ts (built to dist/schema.js):
// the server loads the JSON, so TypeBox is needed for types and here only. `npm run schema` after
// changing an option; test/config.test.ts fails while the two differ.
import { writeFileSync } from 'node:fs'
import { OptionsSchema } from '../dist/schema.js'

writeFileSync(new URL('../src/options.schema.json', import.meta.url), JSON.stringify(OptionsSchema, null, 2) + '\n')
console.log('wrote src/options.schema.json')
