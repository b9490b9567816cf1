/**
 * `wasm-serve export` as a command: its usage errors, where it writes, its warnings, and that it
 * reads the same flags, environment and config file as serving. What each target writes is tested
 * in test/export-engines.test.ts and test/export-cdn.test.ts.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import t from 'tap'
import { runExport } from '../src/export/index.js'
import { runCli } from './helpers/cli.js'
import { BR, GZ, JS, PAGE, SQLITE, makeSite, tempDir } from './helpers/site.js'

const FILES = { 'sqlite3.wasm': SQLITE, 'sqlite3.wasm.br': BR, 'sqlite3.wasm.gz': GZ, 'index.html': PAGE, 'app.js': JS }

/** Runs the command in this process, as the CLI would, with what it prints collected. */
async function exportWith (argv: string[], opts: { env?: NodeJS.ProcessEnv, cwd?: string } = {}) {
  const stdout = new PassThrough()
  const stderr = new PassThrough()
  const out = { stdout: '', stderr: '' }
  stdout.setEncoding('utf8').on('data', (s: string) => { out.stdout += s })
  stderr.setEncoding('utf8').on('data', (s: string) => { out.stderr += s })
  const code = await runExport(argv, { stdout, stderr }, opts.env ?? {}, opts.cwd ?? process.cwd())
  return { code, ...out }
}

t.test('usage errors exit 2 with one line naming the problem, and write nothing', async t => {
  const root = makeSite(t, FILES)
  const file = join(root, 'index.html')
  const cases: Array<[string[], RegExp]> = [
    [[root], /--target is required: one of nginx, caddy, netlify, cloudflare-pages, vercel, s3/],
    [['--target', 'apache', root], /--target: expected nginx, caddy, netlify, cloudflare-pages, vercel or s3, got "apache" \(see wasm-serve export --help\)/],
    [['--target', 'ngnix', root], /--target: expected .*, got "ngnix" \(did you mean nginx\?\)/],
    [['--traget', 'nginx', root], /unknown flag --traget \(did you mean --target\?\)/],
    [['--target', 'nginx'], /missing <dir>/],
    [['--target', 'nginx', join(root, 'nope')], /directory not found: .*nope/],
    [['--target', 'nginx', file], /index\.html is a file, not a directory: export its folder with `wasm-serve export --target nginx .*`$/m],
    [['--target', 'nginx', root, '--isolate=bogus'], /--isolate/],
    [['--target', 'nginx', root, '--bogus'], /--bogus/],
    [['--target', 'nginx', root, 'second'], /at most one directory/],
  ]
  for (const [argv, message] of cases) {
    const run = await exportWith(argv)
    t.equal(run.code, 2, argv.join(' '))
    t.match(run.stderr, message, argv.join(' '))
    t.match(run.stderr, /^wasm-serve export: /)
    t.equal(run.stdout, '', 'nothing written')
  }
})

t.test('--help prints the usage and exits 0', async t => {
  const run = await exportWith(['--help'])
  t.equal(run.code, 0)
  t.match(run.stdout, /^Usage: wasm-serve export --target ENGINE <dir>/)
  for (const engine of ['nginx', 'caddy', 'netlify', 'cloudflare-pages', 'vercel', 's3']) t.match(run.stdout, new RegExp(`^  ${engine} `, 'm'))
})

t.test('the same options give the same bytes from flags, environment or a config file', async t => {
  const root = makeSite(t, FILES)
  const fromFlags = await exportWith(['--target', 'nginx', root, '--isolate', '--cors', '--spa', '--preload', '/sqlite3.wasm'])
  t.equal(fromFlags.code, 0, fromFlags.stderr)
  const env = { WASM_SERVE_CROSS_ORIGIN_ISOLATION: 'require-corp', WASM_SERVE_CORS: '*', WASM_SERVE_SPA: 'index.html', WASM_SERVE_PRELOAD: '/sqlite3.wasm' }
  const fromEnv = await exportWith(['--target', 'nginx', root], { env })
  const dir = tempDir(t, 'config')
  writeFileSync(join(dir, 'wasm-serve.json'), JSON.stringify({ root, crossOriginIsolation: 'require-corp', cors: { origin: '*' }, spa: 'index.html', preload: ['/sqlite3.wasm'] }))
  const fromFile = await exportWith(['--target', 'nginx', '--config', 'wasm-serve.json'], { cwd: dir })
  t.equal(fromEnv.stdout, fromFlags.stdout, 'environment')
  t.equal(fromFile.stdout, fromFlags.stdout, 'config file')
  t.match(fromFlags.stdout, /Cross-Origin-Embedder-Policy/i, 'the options took effect')
  const plain = await exportWith(['--target', 'nginx', root])
  t.notMatch(plain.stdout, /require-corp/, 'and without them they are absent')
})

t.test('a second export of the same files is byte-identical, whatever their dates', async t => {
  const root = makeSite(t, FILES)
  const first = await exportWith(['--target', 'caddy', root, '--isolate'])
  writeFileSync(join(root, 'app.js'), JS) // same bytes, a new mtime
  const second = await exportWith(['--target', 'caddy', root, '--isolate'])
  t.equal(first.code, 0)
  t.equal(second.stdout, first.stdout)
})

t.test('--out writes the file, and every warning printed is also in it as a comment', async t => {
  const root = makeSite(t, { ...FILES, 'big.js': JS })
  const dir = tempDir(t, 'out')
  const out = join(dir, 'wasm.conf')
  const run = await exportWith(['--target', 'nginx', root, '--out', out, '--early-hints', '--preload', '/sqlite3.wasm'])
  t.equal(run.code, 0, run.stderr)
  t.equal(run.stdout, '', 'nothing on stdout')
  const text = readFileSync(out, 'utf8')
  const warnings = run.stderr.split('\n').filter(l => l.startsWith('wasm-serve export: warning: ')).map(l => l.slice('wasm-serve export: warning: '.length))
  t.ok(warnings.length >= 3, 'siblings missing, 103 and ETags at least')
  t.match(warnings.join('\n'), /no precompressed siblings \(app\.js, big\.js\)/)
  t.match(warnings.join('\n'), /103 Early Hints/)
  const comments = text.split('\n').filter(l => l.startsWith('#')).join(' ').replace(/\s*#\s*/g, ' ')
  for (const warning of warnings) t.ok(comments.includes(warning), `in the output: ${warning}`)
  t.match(run.stderr, /wrote \S*\/wasm\.conf for nginx \(6 files\)\n/)
})

t.test('a two-file target writes both into --out DIR, and both to stdout with a header each', async t => {
  const root = makeSite(t, FILES)
  const dir = join(tempDir(t, 'out'), 'deploy')
  const run = await exportWith(['--target', 'netlify', root, '--spa', '--out', dir])
  t.equal(run.code, 0, run.stderr)
  t.ok(existsSync(join(dir, '_headers')) && existsSync(join(dir, '_redirects')))
  const printed = await exportWith(['--target', 'netlify', root, '--spa'])
  t.match(printed.stdout, /^# ==> _headers <==\n/)
  t.match(printed.stdout, /\n# ==> _redirects <==\n/)
  t.ok(printed.stdout.includes(readFileSync(join(dir, '_redirects'), 'utf8')))
})

t.test('the CLI runs it as `wasm-serve export`', async t => {
  const root = makeSite(t, FILES)
  const proc = runCli(t, ['export', '--target', 'nginx', root])
  const { code } = await proc.exited
  t.equal(code, 0, proc.out.stderr)
  t.match(proc.out.stdout, /server \{/)
})
