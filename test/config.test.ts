// Configuration (docs/delivery.md §3): the config file is validated against the one schema with
// every problem reported at once, with its JSON path, before a port is bound; precedence is
// defaults < file < WASM_SERVE_* / PORT / HOST < flags. In-process through parseCli, and through the
// real CLI (`node dist/cli.js`) where the outcome is only visible from outside.
import t from 'tap'
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import Fastify from 'fastify'
import { request } from 'undici'
import { parseCompressArgs } from '../src/compress/args.js'
import { FLAGS, parseCli } from '../src/config.js'
import { OptionsError, OptionsSchema, resolveOptions, type OptionProblem } from '../src/options.js'
import wasmServe, { OptionsError as PluginOptionsError, type WasmServePluginOptions } from '../src/plugin.js'
import { OptionsSchema as DefinedSchema } from '../src/schema.js'
import { checkDirectory } from '../src/args.js'
import { NoRootError, StartError, startErrorText, TlsError, UsageError } from '../src/start-errors.js'
import { loadTls } from '../src/tls.js'
import { ROOT, runCli, serveCli, SERVING } from './helpers/cli.js'

const EXAMPLE = join(ROOT, 'config.example.json')
const SQLITE = join(ROOT, 'node_modules/@sqlite.org/sqlite-wasm/sqlite-wasm/jswasm/sqlite3.wasm')

/** TMP/site holds a real wasm module and a page; TMP/conf holds config files that point at it. */
const TMP = mkdtempSync(join(tmpdir(), 'wasm-serve-config-'))
const SITE = join(TMP, 'site')
const CONF = join(TMP, 'conf')
mkdirSync(SITE)
mkdirSync(CONF)
copyFileSync(SQLITE, join(SITE, 'sqlite3.wasm'))
writeFileSync(join(SITE, 'index.html'), '<!doctype html><title>config</title>\n')
t.teardown(() => rmSync(TMP, { recursive: true, force: true }))

function writeConfig (name: string, data: unknown): string {
  const file = join(CONF, name)
  writeFileSync(file, typeof data === 'string' ? data : JSON.stringify(data, null, 2))
  return file
}

/** The problems an OptionsError carries; fails the test with whatever else was thrown. */
function problemsOf (fn: () => unknown): OptionProblem[] {
  try { fn() } catch (err) {
    if (err instanceof OptionsError) return err.problems
    throw err
  }
  throw new Error('expected an OptionsError, nothing was thrown')
}

async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  await new Promise(resolve => server.close(resolve))
  return port
}

async function isFree (port: number): Promise<boolean> {
  const server = createServer()
  return new Promise(resolve => {
    server.once('error', () => resolve(false))
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => server.close(() => resolve(true)))
  })
}

t.test('the schema the server loads (src/options.schema.json) is the one src/schema.ts defines (`npm run schema`)', async t => {
  t.equal(readFileSync(join(ROOT, 'src/options.schema.json'), 'utf8'), JSON.stringify(DefinedSchema, null, 2) + '\n', 'byte for byte, as the script writes it')
})

t.test('config.example.json', async t => {
  const example = JSON.parse(readFileSync(EXAMPLE, 'utf8')) as Record<string, unknown>

  t.test('is valid against the schema', async t => {
    t.doesNotThrow(() => resolveOptions(example, 'config.example.json'))
  })

  t.test('documents every top-level key of the schema, and no other', async t => {
    t.same(Object.keys(example).sort(), Object.keys(OptionsSchema.properties).sort())
  })

  t.test('documents every key of compress and of a route', async t => {
    const compress = OptionsSchema.properties.compress.properties
    t.same(Object.keys(example.compress as object).sort(), Object.keys(compress).sort())
    const routes = example.routes as Array<Record<string, unknown>>
    const route = OptionsSchema.properties.routes.items.properties
    t.same([...new Set(routes.flatMap(r => Object.keys(r)))].sort(), Object.keys(route).sort())
  })

  t.test('is accepted by the CLI, with its root relative to the file', async t => {
    const cli = parseCli(['--config', EXAMPLE], {}, '/')
    t.equal(cli.options.root, join(ROOT, example.root as string))
    t.equal(cli.options.memoryBudget, 256 * 1024 * 1024)
  })

  t.test('starts the real CLI', async t => {
    const { url } = await serveCli(t, [SITE, '--config', EXAMPLE, '--port', '0'])
    const res = await request(`${url}/sqlite3.wasm`, { headers: { 'accept-encoding': 'identity' } })
    const body = Buffer.from(await res.body.arrayBuffer())
    t.equal(res.statusCode, 200)
    t.ok(body.equals(readFileSync(SQLITE)), 'exact bytes')
    t.equal(res.headers['cache-control'], 'public, max-age=3600, must-revalidate', 'the example\'s wasm route applies')
  })
})

/** Seven mistakes of different kinds in one file; each must be reported with its JSON path. */
const BROKEN = {
  colour: 'blue',
  port: 'eighty',
  memoryBudget: 'lots',
  crossOriginIsolation: 'yes',
  routes: [{
    match: '**/*.wasm',
    cache: 'no-store',
    headers: { 'X-Evil': 'a\r\nSet-Cookie: x=1', Connection: 'close' },
  }],
}
const EXPECTED: Array<{ path: string, message: RegExp }> = [
  { path: '', message: /unknown key "colour"/ },
  { path: '/routes/0', message: /unknown key "cache"/ },
  { path: '/port', message: /integer/ },
  { path: '/memoryBudget', message: /expected .*(size|byte)/ },
  { path: '/routes/0/headers/X-Evil', message: /CR|LF/ },
  { path: '/routes/0/headers/Connection', message: /Connection/ },
  { path: '/crossOriginIsolation', message: /expected .*require-corp.*credentialless/ },
]

t.test('a config file with several mistakes', async t => {
  const file = writeConfig('broken.json', BROKEN)

  t.test('reports every problem at once with its JSON path', async t => {
    const problems = problemsOf(() => parseCli(['--config', file], {}, TMP))
    for (const want of EXPECTED) {
      t.ok(problems.some(p => p.path === want.path && want.message.test(p.message)), `${want.path || '/'} ${want.message}`, { problems })
    }
  })

  t.test('makes the CLI exit non-zero listing them all, before binding its port', async t => {
    const port = await freePort()
    const run = runCli(t, ['--config', file, '--port', String(port), SITE])
    const { code } = await run.exited
    t.equal(code, 2, 'exit code 2, as every start-up error')
    t.notMatch(run.out.stdout, SERVING, 'never said it was serving')
    t.notMatch(run.out.stdout, /listening/i)
    t.match(run.out.stderr, file, 'names the config file')
    for (const want of EXPECTED) {
      const line = run.out.stderr.split('\n').find(l => l.trim().startsWith(`${want.path || '/'}:`) && want.message.test(l))
      t.ok(line, `stderr lists ${want.path || '/'}`, { stderr: run.out.stderr })
    }
    t.notMatch(run.out.stderr, /\n\s+at /, 'no stack trace')
    t.ok(await isFree(port), 'the port is still free')
  })
})

t.test('a config file that cannot be used is a clear error', async t => {
  t.throws(() => parseCli(['--config', join(CONF, 'absent.json')], {}, TMP), { code: 'WASM_SERVE_USAGE', message: /absent\.json/ })
  const bad = writeConfig('bad.json', '{ "port": 8080, }')
  t.throws(() => parseCli(['--config', bad], {}, TMP), { code: 'WASM_SERVE_USAGE', message: /bad\.json.*not valid JSON/ })
  const array = writeConfig('array.json', [])
  t.same(problemsOf(() => parseCli(['--config', array], {}, TMP)).map(p => p.path), [''])
})

t.test('precedence: defaults < file < environment < flags', async t => {
  const file = writeConfig('layers.json', { port: 4001, host: '127.0.0.3', memoryBudget: '10MB', spa: 'index.html', logLevel: 'error' })
  const cases: Array<[string, string[], NodeJS.ProcessEnv, Record<string, unknown>]> = [
    ['defaults', [], {}, { port: 8080, host: '127.0.0.1', memoryBudget: 256 * 1024 * 1024, spa: false, logLevel: 'info' }],
    ['file over defaults', ['--config', file], {}, { port: 4001, host: '127.0.0.3', memoryBudget: 10 * 1024 * 1024, spa: 'index.html', logLevel: 'error' }],
    ['env over file', ['--config', file], { PORT: '4002', HOST: '127.0.0.4', WASM_SERVE_MEMORY_BUDGET: '20MB', WASM_SERVE_SPA: 'app.html', WASM_SERVE_LOG_LEVEL: 'debug' },
      { port: 4002, host: '127.0.0.4', memoryBudget: 20 * 1024 * 1024, spa: 'app.html', logLevel: 'debug' }],
    ['WASM_SERVE_PORT works like PORT', ['--config', file], { WASM_SERVE_PORT: '4005' }, { port: 4005 }],
    ['flags over env', ['--config', file, '--port', '4003', '--host', '127.0.0.5', '--memory-budget', '30MB', '--spa=home.html', '--log-level', 'warn'],
      { PORT: '4002', HOST: '127.0.0.4', WASM_SERVE_MEMORY_BUDGET: '20MB', WASM_SERVE_SPA: 'app.html', WASM_SERVE_LOG_LEVEL: 'debug' },
      { port: 4003, host: '127.0.0.5', memoryBudget: 30 * 1024 * 1024, spa: 'home.html', logLevel: 'warn' }],
    ['flags over file', ['--config', file, '-p', '4004'], {}, { port: 4004, host: '127.0.0.3' }],
  ]
  for (const [name, argv, env, want] of cases) t.match(parseCli(argv, env, TMP).options, want, name)
})

t.test('precedence through the real CLI: the flag beats the environment, which beats the file', async t => {
  const [a, b, c] = [await freePort(), await freePort(), await freePort()]
  const file = writeConfig('ports.json', { root: '../site', port: a, crossOriginIsolation: 'require-corp', cors: false })
  const env = { PORT: String(b), WASM_SERVE_CROSS_ORIGIN_ISOLATION: 'credentialless', WASM_SERVE_CORS: '*' }
  for (const [args, port] of [[['--port', String(c)], c], [[], b]] as const) {
    const { url, child, exited } = await serveCli(t, ['--config', file, ...args], { env, cwd: ROOT })
    t.equal(url, `http://127.0.0.1:${port}`, `serves on ${port === c ? 'the flag\'s' : 'the environment\'s'} port`)
    const res = await request(`${url}/index.html`)
    await res.body.dump()
    t.equal(res.statusCode, 200, 'serves the file\'s root (relative to the file, not the cwd)')
    t.equal(res.headers['cross-origin-embedder-policy'], 'credentialless', 'environment beats file for crossOriginIsolation')
    t.equal(res.headers['access-control-allow-origin'], '*', 'environment beats file for cors')
    child.kill('SIGTERM')
    t.equal((await exited).code, 0)
  }
})

t.test('paths in a config file are relative to the file', async t => {
  const file = writeConfig('paths.json', { root: '../site', compress: { cacheDir: './cache' } })
  const cli = parseCli(['--config', file], {}, '/')
  t.equal(cli.options.root, SITE)
  t.equal(cli.options.compress.cacheDir, join(CONF, 'cache'))
  t.equal(parseCli(['--config', 'conf/paths.json'], {}, TMP).options.root, SITE, 'also when --config is itself relative')
  t.equal(parseCli(['-c', file, './other'], {}, TMP).options.root, join(TMP, 'other'), 'the dir argument beats the file, relative to the cwd')
  t.equal(parseCli(['-c', file], { WASM_SERVE_ROOT: 'env-root' }, TMP).options.root, join(TMP, 'env-root'), 'WASM_SERVE_ROOT beats the file, relative to the cwd')
  t.equal(parseCli(['-c', file, './other'], { WASM_SERVE_ROOT: 'env-root' }, TMP).options.root, join(TMP, 'other'), 'the dir argument beats WASM_SERVE_ROOT')
})

t.test('WASM_SERVE_* variables map to options', async t => {
  const cases: Array<[NodeJS.ProcessEnv, Record<string, unknown>]> = [
    [{ WASM_SERVE_CORS: '*' }, { cors: { origin: '*' } }],
    [{ WASM_SERVE_CORS: 'https://a.example,https://b.example' }, { cors: { origin: ['https://a.example', 'https://b.example'] } }],
    [{ WASM_SERVE_CORS: 'https://a.example' }, { cors: { origin: ['https://a.example'] } }],
    [{ WASM_SERVE_CORS: 'false' }, { cors: false }],
    [{ WASM_SERVE_CORS: '{"origin":["https://c.example"]}' }, { cors: { origin: ['https://c.example'] } }],
    [{ WASM_SERVE_CROSS_ORIGIN_ISOLATION: 'require-corp' }, { crossOriginIsolation: 'require-corp' }],
    [{ WASM_SERVE_CROSS_ORIGIN_ISOLATION: 'credentialless' }, { crossOriginIsolation: 'credentialless' }],
    [{ WASM_SERVE_EARLY_HINTS: 'true' }, { earlyHints: true }],
    [{ WASM_SERVE_SPA: 'index.html' }, { spa: 'index.html' }],
    [{ WASM_SERVE_DOTFILES: 'allow' }, { dotfiles: 'allow' }],
    [{ WASM_SERVE_MEMORY_BUDGET: '64MB' }, { memoryBudget: 64 * 1024 * 1024 }],
    [{ WASM_SERVE_MEMORY_BUDGET: '1000' }, { memoryBudget: 1000 }],
    [{ WASM_SERVE_PRECOMPRESSED: 'br,gzip' }, { precompressed: ['br', 'gzip'] }],
    [{ WASM_SERVE_PRECOMPRESSED: 'br' }, { precompressed: ['br'] }],
    [{ WASM_SERVE_PRELOAD: '/a.wasm,/b.wasm' }, { preload: ['/a.wasm', '/b.wasm'] }],
    [{ WASM_SERVE_PRELOAD: '/a.wasm' }, { preload: ['/a.wasm'] }],
    [{ WASM_SERVE_COMPRESS: '{"onTheFly":false,"minSize":2048}' }, { compress: { onTheFly: false, minSize: 2048 } }],
    [{ WASM_SERVE_ROUTES: '[{"match":"**/*.wasm","cacheControl":"no-cache"}]' }, { routes: [{ match: '**/*.wasm', cacheControl: 'no-cache' }] }],
    [{ WASM_SERVE_LOG_LEVEL: 'warn' }, { logLevel: 'warn' }],
    [{ WASM_SERVE_HOST: '0.0.0.0' }, { host: '0.0.0.0' }],
    [{ HOST: '0.0.0.0', PORT: '9090' }, { host: '0.0.0.0', port: 9090 }],
    [{ PORT: '', HOST: '' }, { host: '127.0.0.1', port: 8080 }],
  ]
  for (const [env, want] of cases) {
    const name = Object.entries(env).map(([k, v]) => `${k}=${v}`).join(' ')
    let options: unknown
    try { options = parseCli([], env, TMP).options } catch (err) { options = { error: (err as Error).message } }
    t.match(options, want, name)
  }
})

t.test('a bad environment value is reported with its JSON path', async t => {
  t.ok(problemsOf(() => parseCli([], { PORT: 'http' }, TMP)).some(p => p.path === '/port'), 'PORT=http')
  t.ok(problemsOf(() => parseCli([], { WASM_SERVE_DOTFILES: 'maybe' }, TMP)).some(p => p.path === '/dotfiles'), 'WASM_SERVE_DOTFILES=maybe')
  t.ok(problemsOf(() => parseCli([], { WASM_SERVE_CROSS_ORIGIN_ISOLATION: 'yes' }, TMP)).some(p => p.path === '/crossOriginIsolation'), 'WASM_SERVE_CROSS_ORIGIN_ISOLATION=yes')
})

t.test('flags map to options', async t => {
  const cases: Array<[string[], Record<string, unknown>]> = [
    [['--isolate'], { crossOriginIsolation: 'require-corp' }],
    [['--isolate=credentialless'], { crossOriginIsolation: 'credentialless' }],
    [['--isolate=require-corp'], { crossOriginIsolation: 'require-corp' }],
    [['--cors'], { cors: { origin: '*' } }],
    [['--cors=*'], { cors: { origin: '*' } }],
    [['--cors=https://a.example,https://b.example'], { cors: { origin: ['https://a.example', 'https://b.example'] } }],
    [['--spa'], { spa: 'index.html' }],
    [['--spa=app.html'], { spa: 'app.html' }],
    [['--early-hints'], { earlyHints: true }],
    [['--preload', '/a.wasm', '--preload', '/b.wasm'], { preload: ['/a.wasm', '/b.wasm'] }],
    [['--memory-budget', '64MB'], { memoryBudget: 64 * 1024 * 1024 }],
    [['--quiet'], { logLevel: 'warn' }],
    [['-q', '--log-level', 'debug'], { logLevel: 'debug' }],
    [['--log-level', 'silent'], { logLevel: 'silent' }],
    [['--port', '0'], { port: 0 }],
    [['--host', '::1'], { host: '::1' }],
  ]
  for (const [argv, want] of cases) {
    let options: unknown
    try { options = parseCli(argv, {}, TMP).options } catch (err) { options = { error: (err as Error).message } }
    t.match(options, want, argv.join(' '))
  }
})

t.test('a flag with an optional value leaves a following directory alone', async t => {
  for (const flag of ['--isolate', '--cors', '--spa']) {
    const cli = parseCli([flag, './dir'], {}, TMP)
    t.equal(cli.options.root, join(TMP, 'dir'), `${flag} ./dir serves ./dir`)
    t.equal(cli.rootLabel, './dir')
  }
  t.match(parseCli(['--isolate', './dir'], {}, TMP).options, { crossOriginIsolation: 'require-corp' })
  t.match(parseCli(['./dir', '--isolate'], {}, TMP).options, { root: join(TMP, 'dir'), crossOriginIsolation: 'require-corp' })
})

t.test('bad flag values are reported under the flag\'s name, with the option\'s JSON path for programs', async t => {
  const cases: Array<[string[], string, string]> = [
    [['--cors=not-an-origin'], '/cors', '--cors'],
    [['--port', 'abc'], '/port', '--port'],
    [['--port', '70000'], '/port', '--port'],
    [['--preload', 'a.wasm'], '/preload/0', '--preload'],
    [['--memory-budget', 'lots'], '/memoryBudget', '--memory-budget'],
  ]
  for (const [argv, path, name] of cases) {
    const problems = problemsOf(() => parseCli(argv, {}, TMP))
    t.ok(problems.some(p => p.path.startsWith(path) && p.name === name), `${argv.join(' ')}: ${path} shown as ${name}`, { problems })
  }
  const port = (() => { try { parseCli(['--port', 'abc'], {}, TMP) } catch (err) { return err } })()
  t.ok(port instanceof OptionsError)
  t.equal((port as OptionsError).message, '--port: expected an integer 0–65535, got "abc"', 'one line: the flag, what it takes, the value')
  t.equal(startErrorText(port as OptionsError), 'wasm-serve: --port: expected an integer 0–65535, got "abc" (see wasm-serve --help)\n', 'pointing at --help')
  t.match(problemsOf(() => parseCli(['--port', '70000'], {}, TMP))[0], { message: 'expected an integer 0–65535', value: 70000 })
  t.match(problemsOf(() => parseCli(['--preload', 'a.wasm'], {}, TMP))[0], { message: 'must start with "/"', value: 'a.wasm' })
})

t.test('a bad variable is named as the variable; a config file keeps the JSON path', async t => {
  const text = (fn: () => unknown) => { try { fn() } catch (err) { return err instanceof OptionsError ? startErrorText(err) : String(err) } return 'nothing thrown' }
  t.equal(text(() => parseCli([], { PORT: 'abc' }, TMP)), 'wasm-serve: PORT: expected an integer 0–65535, got "abc"\n')
  t.equal(text(() => parseCli([], { WASM_SERVE_LOG_LEVEL: 'verbose' }, TMP)), 'wasm-serve: WASM_SERVE_LOG_LEVEL: expected fatal, error, warn, info, debug, trace or silent, got "verbose"\n')
  const file = writeConfig('port-abc.json', { port: 'abc' })
  t.equal(text(() => parseCli(['--config', file], {}, TMP)), `wasm-serve: invalid configuration:\n  /port: expected an integer 0–65535, got "abc" (config file ${file})\n`)
  const typo = writeConfig('typo.json', { rot: '../site', isolation: 'require-corp' })
  t.equal(text(() => parseCli(['--config', typo], {}, TMP)), `wasm-serve: invalid configuration:\n  /: unknown key "rot" (did you mean "root"?) (config file ${typo})\n  /: unknown key "isolation" (config file ${typo})\n`, 'an unknown key names the nearest one, if any')
})

t.test('usage mistakes are UsageErrors naming what is wrong', async t => {
  const usage = (argv: string[]) => { try { parseCli(argv, {}, TMP) } catch (err) { return err instanceof UsageError ? err.message : `not a UsageError: ${String(err)}` } return 'nothing thrown' }
  t.equal(usage(['--prot', '80']), 'unknown flag --prot (did you mean --port?)')
  t.equal(usage(['--isolat']), 'unknown flag --isolat (did you mean --isolate?)')
  t.equal(usage(['--Port', '80']), 'unknown flag --Port (did you mean --port?)')
  t.equal(usage(['-port', '80']), 'unknown flag -port (did you mean --port?)', 'a long flag with one dash is not read as -p "ort"')
  t.equal(usage(['--bogus']), 'unknown flag --bogus', 'nothing near: no guess')
  t.equal(usage(['-x']), 'unknown flag -x')
  t.equal(usage(['a', 'b']), 'expected at most one directory, got "a", "b"')
  t.equal(usage(['--port']), '--port needs a value (N)')
  t.equal(usage(['--port', '--host', 'x']), '--port needs a value (N), got the flag --host')
  t.equal(usage(['--config']), '--config needs a value (FILE)')
  t.equal(usage(['--https=yes']), '--https takes no value, got "yes"')
  t.equal(usage(['--log-level', 'verbose']), '--log-level: expected fatal, error, warn, info, debug, trace or silent, got "verbose"')
  t.equal(usage(['--isolate=yes']), '--isolate: expected require-corp, credentialless, document, document-credentialless or report, got "yes"')
  t.equal(usage(['--isolate=credentialles']), '--isolate: expected require-corp, credentialless, document, document-credentialless or report, got "credentialles" (did you mean credentialless?)')
  t.equal(usage(['--isolate', 'credentialles', 'dist']), 'expected at most one directory, got "credentialles", "dist" (--isolate takes the next word only when it is require-corp, credentialless, document, document-credentialless or report; to give it "credentialles", write --isolate=credentialles)')
})

t.test('every flag that takes a value takes it as --flag value and as --flag=value', async t => {
  const values: Record<string, string> = { port: '4100', host: '::1', config: join(CONF, 'empty.json'), isolate: 'credentialless', cors: 'https://a.example', spa: 'app.html', preload: '/a.wasm', 'tls-cert': 'c.pem', 'tls-key': 'k.pem', dictionaries: 'old', 'memory-budget': '64MB', 'log-level': 'debug', immutable: 'media/**', 'no-cache': 'app-*.js', 'log-format': 'json', secure: 'report-only', workers: '2' }
  writeConfig('empty.json', {})
  for (const flag of FLAGS.filter(f => f.arg !== undefined)) {
    const value = values[flag.name]
    if (value === undefined) { t.fail(`no sample value for --${flag.name}`); continue }
    // --tls-cert goes with --tls-key; the files are read later, by the server.
    const pair = flag.name === 'tls-cert' ? ['--tls-key=k.pem'] : flag.name === 'tls-key' ? ['--tls-cert=c.pem'] : []
    const spaced = parseCli([`--${flag.name}`, value, ...pair, './dir'], {}, TMP)
    const joined = parseCli([`--${flag.name}=${value}`, ...pair, './dir'], {}, TMP)
    t.same(spaced.options, joined.options, `--${flag.name} ${value} is --${flag.name}=${value}`)
    t.equal(spaced.rootLabel, './dir', `--${flag.name} ${value}: the directory stays the directory`)
  }
})

t.test('an optional value is taken from the next word only when it is one; otherwise the word is the directory', async t => {
  const cases: Array<[string[], Record<string, unknown>, string | null]> = [
    [['dist', '--cors', 'https://a.example'], { cors: { origin: ['https://a.example'] } }, 'dist'],
    [['--cors', 'https://a.example,https://b.example', 'dist'], { cors: { origin: ['https://a.example', 'https://b.example'] } }, 'dist'],
    [['--cors', '*', 'dist'], { cors: { origin: '*' } }, 'dist'],
    [['--cors', 'dist'], { cors: { origin: '*' } }, 'dist'],
    [['--isolate', 'credentialless', 'dist'], { crossOriginIsolation: 'credentialless' }, 'dist'],
    [['--isolate', 'require-corp'], { crossOriginIsolation: 'require-corp' }, null],
    [['--isolate', 'dist'], { crossOriginIsolation: 'require-corp' }, 'dist'],
    [['dist', '--spa', 'app.html'], { spa: 'app.html' }, 'dist'],
    [['--spa', 'shell.htm', 'dist'], { spa: 'shell.htm' }, 'dist'],
    [['--spa', 'dist'], { spa: 'index.html' }, 'dist'],
    [['--spa', '--isolate', 'dist'], { spa: 'index.html', crossOriginIsolation: 'require-corp' }, 'dist'],
    [['--isolate', '--', 'credentialless'], { crossOriginIsolation: 'require-corp' }, 'credentialless'],
  ]
  for (const [argv, want, dir] of cases) {
    const cli = parseCli(argv, {}, TMP)
    t.match(cli.options, want, argv.join(' '))
    t.equal(cli.rootLabel, dir, `${argv.join(' ')}: directory ${String(dir)}`)
  }
})

t.test('what asked for the port is known: a flag, a variable, the config file, or nothing (the default)', async t => {
  const file = writeConfig('port-only.json', { port: 4200 })
  t.equal(parseCli([], {}, TMP).portFrom, undefined, 'the default')
  t.equal(parseCli(['--port', '4201'], { PORT: '4202' }, TMP).portFrom, '--port')
  t.equal(parseCli([], { PORT: '4202' }, TMP).portFrom, 'PORT')
  t.equal(parseCli([], { WASM_SERVE_PORT: '4203', PORT: '4202' }, TMP).portFrom, 'WASM_SERVE_PORT')
  t.equal(parseCli(['--config', file], {}, TMP).portFrom, `the config file ${file}`)
  t.equal(parseCli(['--config', file, '-p', '8080'], {}, TMP).portFrom, '--port', 'asking for 8080 is asking too')
})

/** Every spelling of a size the one grammar (src/size.ts) accepts, with its value: KB = KiB = 1024. */
const SIZES: Array<[string, number]> = [
  ['1024', 1024], ['0', 0], ['100B', 100], ['100 b', 100], ['100 bytes', 100], ['1 byte', 1],
  ['1KB', 1024], ['1kb', 1024], ['512 KB', 512 * 1024], ['1KiB', 1024], ['1 kib', 1024],
  ['64MB', 64 * 2 ** 20], ['64mb', 64 * 2 ** 20], ['64MiB', 64 * 2 ** 20], ['64 MiB', 64 * 2 ** 20], ['1.5MB', 1.5 * 2 ** 20], ['1.5MiB', 1.5 * 2 ** 20],
  ['2GB', 2 * 2 ** 30], ['2GiB', 2 * 2 ** 30], ['1TB', 2 ** 40], ['1TiB', 2 ** 40], [' 8 MB ', 8 * 2 ** 20], ['0.5KB', 512],
]
/** Not sizes: no unit guessed ("1k"), no sign, no exponent, no trailing junk. */
const NOT_SIZES = ['lots', '1k', '1M', '-1', '1e3', '12abc', '1.5.5MB', 'MB', '0x10', '1 KB B', '1,5MB']

/** Where a size can be typed: each returns the bytes it became, or throws. */
const SIZE_PLACES: Array<[string, (size: string) => number]> = [
  ['memoryBudget option', size => resolveOptions({ memoryBudget: size }).memoryBudget],
  ['compress.minSize option', size => resolveOptions({ compress: { minSize: size } }).compress.minSize],
  ['--memory-budget', size => parseCli(['--memory-budget', size], {}, TMP).options.memoryBudget],
  ['WASM_SERVE_MEMORY_BUDGET', size => parseCli([], { WASM_SERVE_MEMORY_BUDGET: size }, TMP).options.memoryBudget],
  ['WASM_SERVE_COMPRESS minSize', size => parseCli([], { WASM_SERVE_COMPRESS: JSON.stringify({ minSize: size }) }, TMP).options.compress.minSize],
  ['compress --min-size', size => {
    const parsed = parseCompressArgs(['dir', '--min-size', size])
    if (parsed.kind !== 'run') throw new Error(parsed.kind === 'error' ? parsed.message : parsed.kind)
    return parsed.options.minSize
  }],
]

t.test('every size spelling is read the same in every option, variable and flag that takes a size', async t => {
  for (const [place, read] of SIZE_PLACES) {
    for (const [size, bytes] of SIZES) {
      let got: unknown
      try { got = read(size) } catch (err) { got = (err as Error).message }
      t.equal(got, Math.floor(bytes), `${place}: ${JSON.stringify(size)}`)
    }
  }
  t.equal(resolveOptions({ memoryBudget: 5000, compress: { minSize: 0 } }).memoryBudget, 5000, 'a plain number is bytes')
  t.equal(resolveOptions({}).memoryBudget, 256 * 2 ** 20, 'the default 256MB is 256 MiB, as before')
  t.equal(resolveOptions({}).compress.minSize, 1024)
  t.match(parseCompressArgs(['dir']), { kind: 'run', options: { minSize: 1024 } }, 'compress --min-size defaults to 1KiB')
})

t.test('a bad size is refused with the option or flag named, the value, and examples', async t => {
  // [where, how, the JSON path, the name the line starts with, where the value came from]
  const cases: Array<[string, (size: string) => unknown, string, string, RegExp?]> = [
    ['memoryBudget option', size => resolveOptions({ memoryBudget: size }), '/memoryBudget', '/memoryBudget'],
    ['compress.minSize option', size => resolveOptions({ compress: { minSize: size } }), '/compress/minSize', '/compress/minSize'],
    ['--memory-budget', size => parseCli(['--memory-budget', size], {}, TMP), '/memoryBudget', '--memory-budget'],
    ['--memory-budget=', size => parseCli([`--memory-budget=${size}`], {}, TMP), '/memoryBudget', '--memory-budget'],
    ['WASM_SERVE_MEMORY_BUDGET', size => parseCli([], { WASM_SERVE_MEMORY_BUDGET: size }, TMP), '/memoryBudget', 'WASM_SERVE_MEMORY_BUDGET'],
    ['WASM_SERVE_COMPRESS minSize', size => parseCli([], { WASM_SERVE_COMPRESS: JSON.stringify({ minSize: size }) }, TMP), '/compress/minSize', '/compress/minSize', /\(environment WASM_SERVE_COMPRESS\)$/],
  ]
  for (const [place, run, path, shown, origin] of cases) {
    for (const size of NOT_SIZES) {
      let error: unknown
      try { run(size) } catch (err) { error = err }
      const name = `${place}: ${JSON.stringify(size)}`
      if (!(error instanceof OptionsError)) { t.fail(`${name}: expected an OptionsError`, { error }); continue }
      t.match(error.problems, [{ path, value: size }], name)
      const line = error.message.split('\n').find(l => l.trim().startsWith(`${shown}:`)) ?? ''
      t.match(line, `got ${JSON.stringify(size)}`, `${name}: the message gives the value`)
      t.match(line, /64MB.*1\.5MiB/, `${name}: and examples`)
      if (origin !== undefined) t.match(line, origin, `${name}: and where it came from`)
    }
  }
  for (const size of NOT_SIZES) {
    const parsed = parseCompressArgs(['dir', `--min-size=${size}`])
    t.match(parsed, { kind: 'error', flag: '--min-size', value: size, message: /^--min-size: expected .*64MB.*, got / }, `compress --min-size ${JSON.stringify(size)}`)
  }
  for (const bad of [-1, 1.5, true, null]) {
    t.match(problemsOf(() => resolveOptions({ memoryBudget: bad })), [{ path: '/memoryBudget' }], `memoryBudget: ${String(bad)}`)
  }
  // A bound beyond 2^53 bytes is no bound: read as the largest exact integer, then capped by the plugin.
  for (const huge of [2 ** 60, 1e30, '9999999TB']) t.equal(resolveOptions({ memoryBudget: huge }).memoryBudget, Number.MAX_SAFE_INTEGER, `memoryBudget: ${String(huge)}`)
})

/** Catches what `fn` throws or rejects with. */
async function caught (fn: () => unknown): Promise<unknown> {
  try { await fn() } catch (err) { return err }
  return undefined
}

t.test('each kind of start-up error has its code, the option or flag concerned, and the value', async t => {
  const missingPem = join(TMP, 'missing.pem')
  const noRoot = Fastify({ logger: false })
  t.teardown(() => noRoot.close())
  const insideRoot = Fastify({ logger: false })
  t.teardown(() => insideRoot.close())
  const cases: Array<[string, unknown, { name: string, code: string, option?: string, value?: unknown }]> = [
    ['an unknown flag', await caught(() => parseCli(['--prot', '80'], {}, TMP)), { name: 'UsageError', code: 'WASM_SERVE_USAGE', option: '--prot' }],
    ['an unknown short flag', await caught(() => parseCli(['-x'], {}, TMP)), { name: 'UsageError', code: 'WASM_SERVE_USAGE', option: '-x' }],
    ['a flag without its value', await caught(() => parseCli(['--port'], {}, TMP)), { name: 'UsageError', code: 'WASM_SERVE_USAGE', option: '--port' }],
    ['two directories', await caught(() => parseCli(['a', 'b'], {}, TMP)), { name: 'UsageError', code: 'WASM_SERVE_USAGE', value: ['a', 'b'] }],
    ['--tls-cert alone', await caught(() => parseCli(['--tls-cert', 'c.pem'], {}, TMP)), { name: 'UsageError', code: 'WASM_SERVE_USAGE', option: '--tls-cert', value: 'c.pem' }],
    ['--tls-key alone', await caught(() => parseCli(['--tls-key', 'k.pem'], {}, TMP)), { name: 'UsageError', code: 'WASM_SERVE_USAGE', option: '--tls-key', value: 'k.pem' }],
    ['an unreadable config file', await caught(() => parseCli(['--config', missingPem], {}, TMP)), { name: 'UsageError', code: 'WASM_SERVE_USAGE', option: '--config', value: missingPem }],
    ['a bad option', await caught(() => parseCli(['--port', 'abc'], {}, TMP)), { name: 'OptionsError', code: 'WASM_SERVE_BAD_OPTIONS', option: '--port', value: 'abc' }],
    ['a bad option from a config file', await caught(() => parseCli(['--config', writeConfig('port-eighty.json', { port: 'eighty' })], {}, TMP)), { name: 'OptionsError', code: 'WASM_SERVE_BAD_OPTIONS', option: '/port', value: 'eighty' }],
    ['a missing directory', await caught(() => checkDirectory(join(TMP, 'nope'), 'nope', folder => folder)), { name: 'NoRootError', code: 'WASM_SERVE_NO_ROOT', option: '<dir>', value: 'nope' }],
    ['an unreadable certificate', await caught(() => loadTls({ cert: missingPem, key: missingPem })), { name: 'TlsError', code: 'WASM_SERVE_TLS', option: '/https/cert', value: missingPem }],
    ['a plugin without root', await caught(() => noRoot.register(wasmServe, { watch: false } as WasmServePluginOptions).ready()), { name: 'OptionsError', code: 'WASM_SERVE_BAD_OPTIONS', option: '/root', value: null }],
    ['a cacheDir inside the root', await caught(() => insideRoot.register(wasmServe, { root: SITE, watch: false, compress: { cacheDir: join(SITE, 'cache') } }).ready()),
      { name: 'OptionsError', code: 'WASM_SERVE_BAD_OPTIONS', option: '/compress/cacheDir', value: join(SITE, 'cache') }],
  ]
  for (const [what, error, want] of cases) {
    t.ok(error instanceof StartError, `${what}: a StartError`, { error })
    t.match(error, want, what)
  }
  t.ok(cases[0][1] instanceof UsageError)
  t.ok(cases.find(c => c[0] === 'a missing directory')?.[1] instanceof NoRootError)
  const [tls, pluginNoRoot, cacheDir] = cases.slice(-3).map(c => c[1])
  t.ok(tls instanceof TlsError)
  t.ok(pluginNoRoot instanceof PluginOptionsError, 'the plugin\'s missing root is an option problem: /root')
  t.ok(cacheDir instanceof PluginOptionsError, 'the plugin exports OptionsError under that name, with its problems')
  t.same((cacheDir as OptionsError).problems.map(p => p.path), ['/compress/cacheDir'])
})

t.test('a config header name with CR LF is printed escaped, on its own line, and the CLI exits 2', async t => {
  const file = writeConfig('evil-header.json', { routes: [{ match: '**', headers: { 'X-Ok\r\nX-Evil: 1': 'v', 'X-Bidi\u202e': 'v' } }] })
  const proc = runCli(t, [SITE, '--config', file, '--port', '0'])
  t.equal((await proc.exited).code, 2, 'exit 2')
  t.notMatch(proc.out.stderr, /[\r\u202e]/, 'no raw CR or bidi control reaches the terminal')
  t.notMatch(proc.out.stderr, /^X-Evil/m, 'the injected text does not start a line of its own')
  const lines = proc.out.stderr.trimEnd().split('\n')
  t.equal(lines.length, 3, 'the heading and one line per problem')
  t.match(lines[1], /^ {2}\/routes\/0\/headers\/X-Ok\\r\\nX-Evil: 1: header names must be HTTP tokens/, 'the name is shown with its CR LF escaped')
  t.match(lines[2], /^ {2}\/routes\/0\/headers\/X-Bidi\\u202e: /)
  t.notMatch(proc.out.stdout, SERVING, 'never served')
})

t.test('a memoryBudget beyond what the machine has is capped to it with one warning, and the server serves', async t => {
  const { url, out } = await serveCli(t, [SITE, '--memory-budget', '9999999TB', '--port', '0'])
  const res = await request(`${url}/sqlite3.wasm`, { headers: { 'accept-encoding': 'identity' } })
  const body = Buffer.from(await res.body.arrayBuffer())
  t.equal(res.statusCode, 200)
  t.ok(body.equals(readFileSync(SQLITE)), 'exact bytes')
  const warnings = out.stdout.split('\n').filter(l => l.startsWith('{')).map(l => JSON.parse(l) as Record<string, unknown>).filter(l => (l.level as number) >= 40)
  t.equal(warnings.length, 1, 'one warning')
  const machine = Math.min(totalmem(), process.constrainedMemory?.() || Infinity)
  t.match(warnings[0], { memoryBudget: Number.MAX_SAFE_INTEGER, available: machine }, 'naming both numbers')
  t.match(warnings[0]!.msg, /^memoryBudget 8PB is more than this machine has \(\S+\); using \S+$/)
})

t.test('an origin as copied from the address bar (a trailing slash) is the origin; a bad one is one line saying what an origin is', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'wasm-serve-origin-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  t.same(parseCli([dir, '--cors', 'https://a.example/'], {}, dir).options.cors, { origin: ['https://a.example'] })
  t.same(parseCli([dir], { WASM_SERVE_CORS: 'https://a.example/,http://localhost:5173/' }, dir).options.cors, { origin: ['https://a.example', 'http://localhost:5173'] })
  for (const [argv, env] of [[[dir, '--cors=a.example'], {}], [[dir], { WASM_SERVE_CORS: 'a.example' }]] as const) {
    const err = t.throws(() => parseCli([...argv], env, dir)) as OptionsError
    t.ok(err instanceof OptionsError)
    t.equal(err.problems.length, 1, 'one problem, not the unions around it')
    t.match(err.problems[0], { path: '/cors/origin/0', message: /^expected an origin: a scheme and a host, maybe a port, no path/ })
  }
  const fromFile = t.throws(() => resolveOptions({ cors: { origin: ['https://a.example/app'] } })) as OptionsError
  t.same(fromFile.problems.map(p => p.path), ['/cors/origin/0'], 'a config file gets the same single line, with its JSON path')
})

t.test('true means what the bare flag means: crossOriginIsolation "require-corp", cors every origin, spa index.html', async t => {
  const resolved = resolveOptions({ crossOriginIsolation: true, cors: true, spa: true })
  t.equal(resolved.crossOriginIsolation, 'require-corp')
  t.same(resolved.cors, { origin: '*' })
  t.equal(resolved.spa, 'index.html')
  const dir = mkdtempSync(join(tmpdir(), 'wasm-serve-true-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const fromEnv = parseCli([dir], { WASM_SERVE_CORS: 'true', WASM_SERVE_SPA: 'true', WASM_SERVE_CROSS_ORIGIN_ISOLATION: 'true' }, dir).options
  t.same([fromEnv.cors, fromEnv.spa, fromEnv.crossOriginIsolation], [{ origin: '*' }, 'index.html', 'require-corp'], 'and from the environment')
  writeFileSync(join(dir, 'index.html'), '<!doctype html><title>app</title>\n')
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(wasmServe, { root: dir, watch: false, spa: true, cors: true, crossOriginIsolation: true })
  const res = await app.inject({ url: '/settings/profile', headers: { accept: 'text/html', origin: 'https://a.example' } })
  t.equal(res.statusCode, 200, 'the plugin takes them too')
  t.equal(res.headers['cross-origin-embedder-policy'], 'require-corp')
  t.equal(res.headers['access-control-allow-origin'], '*')
  t.match(String(t.throws(() => resolveOptions({ spa: 'yes' }))), /spa/, 'other values are still refused')
})
