// The Docker image, built and run for real: podman (or docker) builds the Dockerfile, then
// containers serve a read-only mounted fixture dir on a loopback port. Skipped, with the reason
// printed, only where neither podman nor docker can run containers here.
import t, { type Test } from 'tap'
import { zstdContentSize, zstdFrameWindowSize } from '../src/codecs.js'
import { spawn, spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { brotliCompressSync, brotliDecompressSync, constants as zc, gunzipSync } from 'node:zlib'
import { Agent, request } from 'undici'
import { get } from './helpers/http.js'
import { until } from './helpers/poll.js'
import { SQLITE } from './helpers/site.js'

const ROOT = resolve(import.meta.dirname, '..')
const IMAGE = process.env.WASM_SERVE_TEST_IMAGE ?? 'wasm-serve:test'
const FFMPEG = join(ROOT, 'node_modules/@ffmpeg/core/dist/esm/ffmpeg-core.wasm')
const PREFIX = `wasm-serve-test-${process.pid}`

const installed = ['podman', 'docker'].find(
  (cmd) => spawnSync(cmd, ['--version'], { stdio: 'ignore' }).status === 0
)
const isPodman = installed === 'podman'
// container-base.sh writes a containers.conf that this machine's podman needs (ulimits, runc);
// .ci/run exports it, a developer running `npm test` by hand may not have.
const CONF = '/var/tmp/container-base/containers.conf'
if (isPodman && !process.env.CONTAINERS_CONF && existsSync(CONF)) process.env.CONTAINERS_CONF = CONF
// A docker client without a daemon to talk to (`docker info` fails) cannot build or run anything.
const engine = installed !== undefined && spawnSync(installed, ['info'], { stdio: 'ignore', timeout: 30_000 }).status === 0 ? installed : undefined

interface Run { code: number | null; stdout: string; stderr: string; ms: number }

/** Runs the container engine; resolves with the outcome, never rejects (assertions decide). */
function cli (args: string[], timeoutMs = 120_000): Promise<Run> {
  const start = Date.now()
  return new Promise((resolve) => {
    const child = spawn(engine!, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s })
    child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s })
    child.on('close', (code) => resolve({ code, stdout: stdout.trim(), stderr: stderr.trim(), ms: Date.now() - start }))
    child.on('error', (err) => resolve({ code: -1, stdout, stderr: String(err), ms: Date.now() - start }))
  })
}

async function build (context: string, tag: string): Promise<Run> {
  // --pull=never: the base is the local node:24-slim (on CI, container-base.sh's stand-in);
  // --format docker keeps HEALTHCHECK, which the OCI format drops.
  const pull = isPodman ? [`--pull=${process.env.CONTAINER_PULL ?? 'never'}`, '--format', 'docker'] : []
  return cli(['build', ...pull, '-t', tag, context], 15 * 60_000)
}

const started: string[] = []
/** Starts a detached container publishing `port` on a random loopback port; returns its base URL. */
async function start (t: Test, name: string, opts: { args?: string[], cmd?: string[], port?: number, image?: string } = {}) {
  const port = opts.port ?? 8080
  started.push(name)
  const r = await cli(['run', '-d', '--name', name, '-p', `127.0.0.1::${port}`,
    ...(opts.args ?? []), opts.image ?? IMAGE, ...(opts.cmd ?? [])])
  t.equal(r.code, 0, `${name} starts`, { stderr: r.stderr })
  const mapped = await cli(['port', name, String(port)])
  const hostPort = /127\.0\.0\.1:(\d+)/.exec(mapped.stdout)?.[1]
  if (!hostPort) throw new Error(`no published port for ${name}: ${mapped.stdout} ${mapped.stderr}`)
  const base = `http://127.0.0.1:${hostPort}`
  await waitHealthy(base, name)
  return base
}

async function waitHealthy (base: string, name: string) {
  const healthy = async () => {
    try {
      const res = await request(`${base}/healthz`, { headersTimeout: 2000, bodyTimeout: 2000 })
      await res.body.dump()
      return res.statusCode === 200
    } catch { return false }
  }
  if (await until(healthy, { timeout: 60_000, interval: 200 }).then(() => true, () => false)) return
  const logs = await cli(['logs', name])
  throw new Error(`${name} did not answer /healthz within 60 s\n${logs.stdout}\n${logs.stderr}`)
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

if (engine) {
  await main()
} else {
  t.plan(0, installed === undefined
    ? 'neither podman nor docker is installed, the container image cannot be built here'
    : `${installed} is installed but cannot run containers here (\`${installed} info\` fails)`)
}

async function main () {
  t.setTimeout(30 * 60_000)

  const work = await mkdtemp(join(tmpdir(), 'wasm-serve-container-'))
  t.teardown(async () => {
    await Promise.all(started.map((name) => cli(['rm', '-f', ...(isPodman ? ['-t', '0'] : []), name])))
    await cli(['rmi', '-f', `${IMAGE}-derived`])
    await rm(work, { recursive: true, force: true })
  })

  // Fixture dir: a real module with a brotli sibling (modest quality: the test only needs exact
  // bytes back) and a compressible file without siblings.
  const srv = join(work, 'srv')
  await mkdir(srv, { mode: 0o755 })
  const wasm = SQLITE
  const wasmBr = brotliCompressSync(wasm, {
    params: { [zc.BROTLI_PARAM_QUALITY]: 5, [zc.BROTLI_PARAM_SIZE_HINT]: wasm.length },
  })
  await writeFile(join(srv, 'sqlite3.wasm'), wasm)
  await writeFile(join(srv, 'sqlite3.wasm.br'), wasmBr)
  // The big module gets a dir of its own: the server would otherwise compress it (D4) in every
  // container that mounts `srv`, a minute of CPU each.
  const bigDir = join(work, 'big')
  await mkdir(bigDir)
  await copyFile(FFMPEG, join(bigDir, 'ffmpeg-core.wasm'))
  const appJs = Buffer.from('export const lines = [\n' +
    Array.from({ length: 400 }, (_, i) => `  "line ${i}: wasm-serve container fixture",\n`).join('') + ']\n')
  await writeFile(join(srv, 'app.js'), appJs)
  const cfgDir = join(work, 'config')
  await mkdir(cfgDir)
  await writeFile(join(cfgDir, 'wasm-serve.json'), JSON.stringify({ root: '/srv', crossOriginIsolation: 'require-corp' }))

  // Build first, outside any subtest: if it fails, nothing else can run and the output says why.
  const r = await build(ROOT, IMAGE)
  t.equal(r.code, 0, `${engine} build exits 0`, { output: r.code === 0 ? '' : (r.stdout + '\n' + r.stderr).slice(-6000) })
  if (r.code !== 0) return
  t.comment(`image build time: ${(r.ms / 1000).toFixed(1)} s`)

  t.test('the runtime image is small and has wasm-serve on PATH', async (t) => {
    const size = await cli(['image', 'inspect', '--format', '{{.Size}}', IMAGE])
    const bytes = Number(size.stdout)
    t.ok(bytes > 0, 'image size is known')
    // What wasm-serve adds to the base image (README, Docker): production node_modules, dist, public.
    const du = await cli(['run', '--rm', '--entrypoint', 'du', IMAGE, '-sk', '--apparent-size', '/app/node_modules', '/app/dist', '/app/public'])
    t.equal(du.code, 0, 'du runs in the image')
    const kib = Object.fromEntries(du.stdout.trim().split('\n').map(l => l.split('\t')).map(([k, path]) => [path!, Number(k)]))
    const mb = (k: number | undefined) => ((k ?? NaN) * 1024 / 1e6).toFixed(1)
    const ours = (kib['/app/node_modules'] ?? NaN) + (kib['/app/dist'] ?? NaN) + (kib['/app/public'] ?? NaN)
    t.ok(ours * 1024 < 40e6, `wasm-serve adds under 40 MB to the base image (${mb(ours)} MB)`)
    t.comment(`image size: ${(bytes / 1e6).toFixed(1)} MB; wasm-serve: node_modules ${mb(kib['/app/node_modules'])} MB, dist + public ${mb((kib['/app/dist'] ?? NaN) + (kib['/app/public'] ?? NaN))} MB`)
    // Dev dependencies stay in the build stage (@ffmpeg/core alone is 32 MB, playwright-core ~10 MB).
    const ls = await cli(['run', '--rm', '--entrypoint', 'sh', IMAGE, '-c',
      'for d in @ffmpeg/core playwright-core typescript tap undici; do [ ! -e /app/node_modules/$d ] || echo "present: $d"; done; command -v wasm-serve'])
    t.notMatch(ls.stdout, /present:/, 'no dev dependencies in the runtime image', { ls: ls.stdout })
    t.match(ls.stdout, /\/usr\/local\/bin\/wasm-serve/, 'wasm-serve is on PATH')
  })

  t.test('a container serving a read-only mount', async (t) => {
    const name = `${PREFIX}-main`
    const base = await start(t, name, { args: ['-v', `${srv}:/srv:ro`] })

    const br = await get(`${base}/sqlite3.wasm`, { 'accept-encoding': 'br' })
    t.equal(br.status, 200, 'status 200')
    t.equal(br.headers['content-type'], 'application/wasm', 'wasm type, no parameters')
    t.equal(br.headers['content-encoding'], 'br', 'Content-Encoding: br')
    t.equal(br.headers['content-length'], String(wasmBr.length), 'Content-Length is the encoded size')
    t.equal(br.headers['x-decoded-content-length'], String(wasm.length), 'X-Decoded-Content-Length is the identity size')
    t.match(br.headers['vary'], /accept-encoding/i, 'Vary: Accept-Encoding')
    t.match(br.headers['etag'], /^"[^"]+"$/, 'strong ETag')
    t.ok(br.body.equals(wasmBr), 'the br sibling byte for byte')

    const id = await get(`${base}/sqlite3.wasm`, { 'accept-encoding': 'identity' })
    t.equal(id.headers['content-type'], 'application/wasm', 'identity: application/wasm too')
    t.ok(id.body.equals(wasm), 'identity bytes byte for byte')
    t.not(id.headers['etag'], br.headers['etag'], 'one ETag per representation')

    if (isPodman) {
      const hc = await cli(['healthcheck', 'run', name])
      t.equal(hc.code, 0, 'podman healthcheck run exits 0', { stdout: hc.stdout, stderr: hc.stderr })
    } else {
      const hc = await cli(['exec', name, 'node', '/app/dist/healthcheck.js'])
      t.equal(hc.code, 0, 'health probe exits 0')
    }
    const uid = await cli(['exec', name, 'id', '-u'])
    t.equal(uid.code, 0, 'exec id -u works')
    t.not(uid.stdout, '0', `runs as a non-root uid (${uid.stdout})`)
    const pid1 = await cli(['exec', name, 'sh', '-c', 'stat -c %u /proc/1'])
    t.equal(pid1.code, 0, 'stat of PID 1 works')
    t.match(pid1.stdout, /^[1-9]\d*$/, `PID 1 (the server) is not root (uid ${pid1.stdout})`)
  })

  t.test('with --read-only and a tmpfs on /tmp it still serves', async (t) => {
    const name = `${PREFIX}-ro`
    const base = await start(t, name, {
      args: ['--read-only', '--tmpfs', '/tmp', '-v', `${srv}:/srv:ro`],
    })
    const br = await get(`${base}/sqlite3.wasm`, { 'accept-encoding': 'br' })
    t.equal(br.status, 200, 'status 200')
    t.ok(br.body.equals(wasmBr), 'precompressed sibling served')
    // A compressible file without siblings is compressed by the server itself (D4), in the
    // background: identity until then. Every answer must decode to the original meanwhile.
    let enc: string | undefined
    let answers = 0
    let intact = true
    await until(async () => {
      const js = await get(`${base}/app.js`, { 'accept-encoding': 'br, gzip' })
      answers++
      enc = js.headers['content-encoding']
      const decoded = enc === 'br' ? brotliDecompressSync(js.body) : enc === 'gzip' ? gunzipSync(js.body) : js.body
      intact &&= js.status === 200 && decoded.equals(appJs)
      return enc !== undefined
    }, { timeout: 15_000, interval: 200 }).catch(() => {}) // the assertion below says what came instead
    t.ok(intact, `app.js: all ${answers} answers decode to the original`)
    t.ok(enc === 'br' || enc === 'gzip', `compressed on the fly (D4) with a read-only filesystem (${enc ?? 'still identity after 15 s'})`)
    const logs = await cli(['logs', name])
    t.notMatch(logs.stdout + logs.stderr, /EROFS|read-only file system|EACCES/i, 'no write errors in the log')
    if (isPodman) {
      // Docker's --read-only mounts no tmpfs at all (podman adds one on /tmp unless told not to):
      // the cache directory cannot be created, and the server must carry on from memory.
      const bare = await start(t, `${PREFIX}-ro-bare`, {
        args: ['--read-only', '--read-only-tmpfs=false', '-v', `${srv}:/srv:ro`],
      })
      const res = await get(`${bare}/sqlite3.wasm`, { 'accept-encoding': 'br' })
      t.ok(res.status === 200 && res.body.equals(wasmBr), 'with no writable directory at all it still serves')
    }
  })

  t.test('configuration by a mounted config file and by environment', async (t) => {
    const base = await start(t, `${PREFIX}-cfg`, {
      port: 9090,
      args: ['-e', 'PORT=9090', '-e', 'WASM_SERVE_CORS=*', '-v', `${srv}:/srv:ro`, '-v', `${cfgDir}:/config:ro`],
      cmd: ['--config', '/config/wasm-serve.json'],
    })
    const res = await get(`${base}/sqlite3.wasm`, { 'accept-encoding': 'br', origin: 'http://localhost:3000' })
    t.equal(res.status, 200, 'root from the config file, port from PORT')
    t.equal(res.headers['access-control-allow-origin'], '*', 'cors from WASM_SERVE_CORS')
    t.equal(res.headers['cross-origin-resource-policy'], 'cross-origin',
      'crossOriginIsolation from the config file (CORP on assets; cross-origin because of cors)')
    if (isPodman) {
      const hc = await cli(['healthcheck', 'run', `${PREFIX}-cfg`])
      t.equal(hc.code, 0, 'the health check follows PORT')
    }
  })

  t.test('the image carries OCI labels: title, version (package.json\'s), licenses, source', async (t) => {
    const r = await cli(['image', 'inspect', '--format', '{{json .Config.Labels}}', IMAGE])
    t.equal(r.code, 0, r.stderr)
    const labels = JSON.parse(r.stdout) as Record<string, string>
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string, license: string }
    t.equal(labels['org.opencontainers.image.title'], 'wasm-serve')
    t.equal(labels['org.opencontainers.image.version'], pkg.version)
    t.equal(labels['org.opencontainers.image.licenses'], pkg.license)
    t.ok('org.opencontainers.image.source' in labels, 'source is labelled (--build-arg SOURCE=…)')
  })

  t.test('the health check follows a --port flag (PORT still says 8080)', { skip: !isPodman && 'docker has no `healthcheck run`' }, async (t) => {
    const name = `${PREFIX}-flag`
    await start(t, name, { port: 9191, args: ['-v', `${srv}:/srv:ro`], cmd: ['/srv', '--port', '9191'] })
    const hc = await cli(['healthcheck', 'run', name])
    t.equal(hc.code, 0, 'healthy on 9191', { stdout: hc.stdout, stderr: hc.stderr })
  })

  t.test('without the -v mount (an empty /srv) /healthz answers 503 empty and the container is unhealthy', async (t) => {
    const name = `${PREFIX}-empty`
    started.push(name)
    const r = await cli(['run', '-d', '--name', name, '-p', '127.0.0.1::8080', IMAGE])
    t.equal(r.code, 0, r.stderr)
    const hostPort = /127\.0\.0\.1:(\d+)/.exec((await cli(['port', name, '8080'])).stdout)?.[1]
    const answer = async () => {
      try {
        const res = await request(`http://127.0.0.1:${hostPort}/healthz`, { headersTimeout: 2000, bodyTimeout: 2000 })
        return { status: res.statusCode, body: await res.body.json() }
      } catch { return undefined }
    }
    const health = await until(answer, { timeout: 60_000, interval: 200, what: '/healthz to answer' })
    t.same(health, { status: 503, body: { status: 'empty', reason: 'the root directory has no file to serve (a volume not mounted?)' } })
    if (isPodman) {
      const hc = await cli(['healthcheck', 'run', name])
      t.not(hc.code, 0, 'podman healthcheck run fails', { stdout: hc.stdout })
    }
  })

  t.test('podman stop during a 32 MB download: response ends cleanly, exit 0 within 10 s', async (t) => {
    const name = `${PREFIX}-stop`
    const base = await start(t, name, { args: ['-v', `${bigDir}:/srv:ro`] })
    const big = await readFile(join(bigDir, 'ffmpeg-core.wasm'))
    const dispatcher = new Agent({ pipelining: 0 })
    const res = await request(`${base}/ffmpeg-core.wasm`, {
      headers: { 'accept-encoding': 'identity' }, dispatcher, bodyTimeout: 15_000,
    })
    t.equal(res.statusCode, 200, 'download starts')
    t.equal(res.headers['content-length'], String(big.length), 'Content-Length of the 32 MB module')

    const chunks: Buffer[] = []
    let stop: Promise<Run> | undefined
    let outcome: string
    try {
      for await (const chunk of res.body) {
        chunks.push(chunk as Buffer)
        if (!stop) {
          // The download has begun: stop now, and read no more until the server says it got
          // SIGTERM, so that most of the 32 MB is still unsent then; then read the rest.
          stop = cli(['stop', '-t', '10', name], 60_000)
          const shuttingDown = async () => { const logs = await cli(['logs', name]); return /shutting down/.test(logs.stdout + logs.stderr) }
          await until(shuttingDown, { timeout: 10_000, interval: 100, what: 'the server to log that it is shutting down' }).catch((err: Error) => t.fail(err.message))
        }
      }
      const got = Buffer.concat(chunks)
      t.equal(got.length, big.length, 'the in-flight response finished in full')
      t.equal(sha(got), sha(big), 'and byte for byte')
      outcome = 'finished in full'
    } catch (err) {
      // The server lets in-flight responses finish before it exits (README, Docker): a response cut
      // short, or one left hanging (a body timeout), is a failure.
      const received = Buffer.concat(chunks).length
      outcome = `closed after ${received} of ${big.length} bytes (${(err as Error).message})`
      t.fail(`the in-flight response did not finish: ${outcome}`)
    }
    t.comment(`download during stop: ${outcome}`)
    const stopped = await stop!
    t.equal(stopped.code, 0, `${engine} stop exits 0`)
    t.ok(stopped.ms < 10_000, `container stopped in ${stopped.ms} ms (< 10 s, no SIGKILL)`)
    const code = await cli(['inspect', '--format', '{{.State.ExitCode}}', name])
    t.equal(code.stdout, '0', 'container exit code 0')
    await dispatcher.close()
  })

  t.test('the user pattern: FROM wasm-serve, COPY, RUN wasm-serve compress', async (t) => {
    const ctx = join(work, 'derived')
    await mkdir(join(ctx, 'site'), { recursive: true })
    await writeFile(join(ctx, 'site', 'sqlite3.wasm'), wasm)
    await writeFile(join(ctx, 'Dockerfile'), [
      `FROM ${IMAGE}`,
      'COPY --chown=node:node site /srv',
      'RUN wasm-serve compress /srv',
      '',
    ].join('\n'))
    const tag = `${IMAGE}-derived`
    const r = await build(ctx, tag)
    t.equal(r.code, 0, 'derived image builds', { output: r.code === 0 ? '' : (r.stdout + '\n' + r.stderr).slice(-4000) })
    if (r.code !== 0) return
    const [a, b] = await Promise.all([
      start(t, `${PREFIX}-replica-a`, { image: tag, args: ['--read-only', '--tmpfs', '/tmp'] }),
      start(t, `${PREFIX}-replica-b`, { image: tag, args: ['--read-only', '--tmpfs', '/tmp'] }),
    ])
    const [ra, rb] = await Promise.all([a, b].map((base) =>
      get(`${base}/sqlite3.wasm`, { 'accept-encoding': 'br' })))
    t.equal(ra.headers['content-encoding'], 'br', 'the build-time .br is served')
    t.ok(brotliDecompressSync(ra.body).equals(wasm), 'and decodes to the module')
    t.equal(ra.headers['etag'], rb.headers['etag'], 'two replicas send the same ETag')
    t.ok(ra.body.equals(rb.body), 'and the same bytes')
    // The image runs Node 24, whose zlib has zstd (Node 20 on this machine has not): the build-time
    // compress wrote a .zst, served with a frame window browsers accept (RFC 9659: at most 8 MB).
    const zs = await get(`${a}/sqlite3.wasm`, { 'accept-encoding': 'zstd' })
    t.equal(zs.headers['content-encoding'], 'zstd', 'the build-time .zst is served to a zstd client')
    t.equal(zs.headers['content-length'], String(zs.body.length))
    t.equal(zs.headers['x-decoded-content-length'], String(wasm.length))
    t.ok(zstdFrameWindowSize(zs.body) <= 8 * 1024 * 1024, `zstd window ${zstdFrameWindowSize(zs.body)} B is within 8 MB`)
    t.equal(zstdContentSize(zs.body), wasm.length, 'the frame records the decoded size')
  })
}
