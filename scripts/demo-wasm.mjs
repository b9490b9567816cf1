#!/usr/bin/env node
// Copies a real WebAssembly module (SQLite, ~850 KB) from an installed npm package into public/,
// where the demo page loads it. Runs in `prepare` (npm ci, Docker build). Idempotent and quiet when
// the copy is up to date; never fails when public/ already has a module (e.g. dev dependencies
// omitted); with no module at all it prints what to do and still exits 0 (the server works
// without its demo, and a failing prepare step would abort the whole install).
import { copyFile, mkdir, readFile, rename, stat } from 'node:fs/promises'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const target = path.join(root, 'public', 'sqlite3.wasm')
const SOURCE = { pkg: '@sqlite.org/sqlite-wasm', file: 'sqlite-wasm/jswasm/sqlite3.wasm' }

async function statOrNull (file) {
  try {
    return await stat(file)
  } catch {
    return null
  }
}

/** Resolves the package directory through Node's resolver (works with hoisting and workspaces). */
function findSource () {
  const require = createRequire(path.join(root, 'package.json'))
  try {
    return path.join(path.dirname(require.resolve(`${SOURCE.pkg}/package.json`)), SOURCE.file)
  } catch {
    return path.join(root, 'node_modules', SOURCE.pkg, SOURCE.file)
  }
}

async function main () {
  const source = findSource()
  const [from, to] = await Promise.all([statOrNull(source), statOrNull(target)])
  if (!from) {
    if (to) {
      console.log(`demo-wasm: ${SOURCE.pkg} is not installed; keeping the existing public/sqlite3.wasm`)
      return
    }
    console.error(
      `demo-wasm: cannot find ${SOURCE.pkg} (${path.relative(root, source)}) and public/sqlite3.wasm is missing.\n` +
        '  The demo page needs it: run `npm install` with dev dependencies, then `node scripts/demo-wasm.mjs`.\n' +
        '  The server itself works without it; only the bundled demo page is affected.'
    )
    return
  }
  // Compare bytes, not mtimes: npm extracts every package file with the same fixed date.
  if (to && to.size === from.size && (await readFile(source)).equals(await readFile(target))) return
  await mkdir(path.dirname(target), { recursive: true })
  // Copy then rename, so a server watching public/ never sees a half-written module (D16); the
  // temporary name is a dotfile, which the server does not serve.
  const tmp = path.join(path.dirname(target), `.sqlite3.wasm.${process.pid}.tmp`)
  await copyFile(source, tmp)
  await rename(tmp, target)
  console.log(`demo-wasm: copied ${SOURCE.pkg}/${SOURCE.file} (${from.size} bytes) to public/sqlite3.wasm`)
}

await main()
