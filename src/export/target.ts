/**
 * What an export target is: a function from the site (site.ts) to the files an engine reads, with a
 * warning for every rule it cannot express. Each warning is also written into the output as a
 * comment where the format has comments, and printed by the command: never silently dropped.
 */
import type { Site } from './site.js'

export interface OutputFile {
  /** The file's conventional name for the engine: `nginx.conf`, `Caddyfile`, `_headers`, `vercel.json`. */
  name: string
  text: string
}

export interface Exported {
  files: OutputFile[]
  /** One line each, without a prefix: what the engine will not do that wasm-serve does, and what to do about it. */
  warnings: string[]
}

export type Target = (site: Site) => Exported
