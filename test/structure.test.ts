/**
 * The tree stays readable as docs/architecture.md describes it: no module imports, even for types
 * only, a module that imports it back (the catalog and the header builder once did).
 */
import t from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, normalize } from 'node:path'

function sources (dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap(e => e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [])
}

const files = sources('src')
const imports = new Map(files.map(f => [f, [...readFileSync(f, 'utf8').matchAll(/^(?:import|export)\s[^\n]*?from\s+'(\.[^']+)'/gm)]
  .map(m => normalize(join(dirname(f), m[1]!.replace(/\.js$/, '.ts'))))
  .filter(to => to.endsWith('.ts'))]))

function cycleFrom (start: string): string[] | undefined {
  const path: string[] = []
  const onPath = new Set<string>()
  const done = new Set<string>()
  const visit = (file: string): string[] | undefined => {
    if (onPath.has(file)) return [...path.slice(path.indexOf(file)), file]
    if (done.has(file)) return undefined
    path.push(file)
    onPath.add(file)
    for (const next of imports.get(file) ?? []) {
      const cycle = visit(next)
      if (cycle !== undefined) return cycle
    }
    path.pop()
    onPath.delete(file)
    done.add(file)
    return undefined
  }
  return visit(start)
}

t.ok(files.length > 10, 'the sources are found')
t.same(files.map(cycleFrom).find(c => c !== undefined), undefined, 'no import cycle in src/')
