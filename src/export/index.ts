/**
 * `wasm-serve export --target T <dir>`: the delivery policy wasm-serve applies to <dir>, written as
 * configuration for another engine (nginx, Caddy, a CDN's headers file, an object store's metadata),
 * read from the same flags, environment and config file as serving. Deterministic: the same files
 * and options give the same bytes. Exit codes as the server's: 0 written, 2 a usage or option error
 * (nothing written), 1 anything else.
 */
import { mkdir, stat } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { writeAtomic } from '../atomic-write.js'
import type { Io } from '../compress/report.js'
import { checkDirectory } from '../args.js'
import { parseCli, type Flag } from '../config.js'
import { printable } from '../printable.js'
import { EXIT, failureExit, UsageError } from '../start-errors.js'
import { readSite } from './site.js'
import type { Exported } from './target.js'
import { TARGETS } from './targets/index.js'

const NAME = 'wasm-serve export'

const EXPORT_FLAGS: Flag[] = [
  { name: 'target', short: 't', arg: 'ENGINE', choices: Object.keys(TARGETS), doc: `the engine to write for: ${Object.keys(TARGETS).join(', ')}` },
  { name: 'out', short: 'o', arg: 'PATH', doc: 'write to this file (a directory for targets that write two files) instead of stdout' },
]

export const HELP = `Usage: wasm-serve export --target ENGINE <dir> [--out PATH] [serving options]

Writes configuration that makes ENGINE deliver <dir> as wasm-serve would: content types, precompressed
siblings with Vary, cache policy per file, preload links, cross-origin isolation, CORS, hidden
dotfiles and the SPA fallback. Takes the same --config, flags and WASM_SERVE_* environment as serving.
What ENGINE cannot express is stated in the output and printed as a warning.

Engines:
  nginx             an include for the http {} context: maps plus one server {} block
  caddy             a Caddyfile site block
  netlify           _headers and _redirects
  cloudflare-pages  _headers and _redirects
  vercel            vercel.json (headers, rewrites)
  s3                a JSON manifest of per-object metadata for upload tools, and the bucket's CORS rules

Options:
  -t, --target ENGINE   one of the engines above (required)
  -o, --out PATH        write here instead of stdout: a file, or a directory (made if missing) for
                        engines that write two files
  -h, --help            show this help
  (every option of \`wasm-serve --help\` that sets delivery: --config, --isolate, --cors, --spa, --preload, …)

Run \`wasm-serve compress <dir>\` first: engines serve precompressed siblings with their length,
where compressing on the fly would send them chunked, or not at all.

Exit codes: 0 written; 2 a usage, option, config or directory error, nothing written; 1 anything else.
`

export async function runExport (argv: string[], io: Io = { stdout: process.stdout, stderr: process.stderr }, env = process.env, cwd = process.cwd()): Promise<number> {
  try {
    if (argv.includes('--help') || argv.includes('-h')) { io.stdout.write(HELP); return EXIT.ok }
    const cli = parseCli(argv, env, cwd, EXPORT_FLAGS)
    const name = cli.extra.target
    if (typeof name !== 'string') throw new UsageError(`--target is required: one of ${Object.keys(TARGETS).join(', ')}`, { option: '--target' })
    // --target's choices were checked by the argument layer.
    const target = TARGETS[name]!
    const root = cli.options.root
    if (root === null) throw new UsageError('missing <dir>: the directory to export the configuration for', { option: '<dir>' })
    checkDirectory(root, cli.rootLabel ?? root, folder => `export its folder with \`wasm-serve export --target ${name} ${folder}\``)
    const site = await readSite({ ...cli.options, root })
    const exported = target(site)
    const out = cli.extra.out
    const written = typeof out === 'string' ? await writeOut(resolve(cwd, out), exported) : []
    if (typeof out !== 'string') io.stdout.write(exported.files.length === 1 ? exported.files[0]!.text : exported.files.map(f => `# ==> ${f.name} <==\n${f.text}`).join('\n'))
    for (const warning of exported.warnings) io.stderr.write(`${NAME}: warning: ${printable(warning)}\n`)
    if (written.length > 0) io.stderr.write(`${NAME}: wrote ${written.map(printable).join(' and ')} for ${name} (${site.files.length} files)\n`)
    return EXIT.ok
  } catch (err) {
    return failureExit(err, NAME, io.stderr)
  }
}

async function isDirectory (path: string): Promise<boolean> {
  try { return (await stat(path)).isDirectory() } catch { return false }
}

/** One file: PATH itself, unless PATH is a directory; several: into PATH as a directory. Returns the paths written. */
async function writeOut (path: string, exported: Exported): Promise<string[]> {
  const several = exported.files.length > 1
  const intoDir = several || await isDirectory(path)
  if (several) await mkdir(path, { recursive: true })
  const written: string[] = []
  for (const file of exported.files) {
    const target = intoDir ? join(path, file.name) : path
    await writeAtomic(target, Buffer.from(file.text))
    written.push(target)
  }
  return written
}
