/**
 * nginx as the benchmark's peer: Debian's nginx with the brotli static module, one worker, pinned to
 * CPU 0 like every other server, serving the same root with its precompressed siblings
 * (`brotli_static`, `gzip_static`), over HTTP/1.1 and over HTTP/2 with TLS. And a throwaway
 * certificate (openssl) both nginx and wasm-serve present to h2load.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const BROTLI_MODULE = '/usr/lib/nginx/modules/ngx_http_brotli_static_module.so'

/** Why nginx cannot be measured here, or undefined. */
export function noNginx () {
  if (spawnSync('nginx', ['-v']).status !== 0) return 'nginx is not installed (apt-get install nginx libnginx-mod-http-brotli-static)'
  if (!existsSync(BROTLI_MODULE)) return `no ${BROTLI_MODULE} (apt-get install libnginx-mod-http-brotli-static)`
  return undefined
}

/** Why h2load cannot run here, or undefined. */
export function noH2load () {
  return spawnSync('h2load', ['--version']).status === 0 ? undefined : 'h2load is not installed (apt-get install nghttp2-client)'
}

function scratch () {
  const dir = mkdtempSync(join(tmpdir(), 'wasm-serve-bench-peer-'))
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }))
  return dir
}

let certificate
/** A self-signed certificate for 127.0.0.1, made once per run: { cert, key } paths. */
export function benchCertificate () {
  if (certificate) return certificate
  const dir = scratch()
  certificate = { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') }
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', certificate.key, '-out', certificate.cert], { stdio: 'ignore' })
  return certificate
}

async function freePort () {
  const server = createServer()
  await new Promise(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address()
  await new Promise(resolve => server.close(resolve))
  return port
}

/**
 * nginx on `root`, `workers` worker processes (1), `taskset -c <cpus>` (0): `{ port, tlsPort, pid, stop }`. The configuration is
 * what an nginx user writes for a static site with precompressed siblings, tuned as a busy site is
 * (open_file_cache); access logging is off, as wasm-serve runs with --quiet.
 */
export async function startNginx (root, { workers = 1, cpus = '0' } = {}) {
  const dir = scratch()
  const [port, tlsPort] = [await freePort(), await freePort()]
  const { cert, key } = benchCertificate()
  writeFileSync(join(dir, 'nginx.conf'), `load_module ${BROTLI_MODULE};
worker_processes ${workers};
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  include /etc/nginx/mime.types;
  types { application/wasm wasm; }
  access_log off;
  sendfile on;
  tcp_nopush on;
  # What a tuned production nginx has: descriptors and stats (siblings' existence too) kept open.
  open_file_cache max=10000 inactive=60s;
  open_file_cache_valid 60s;
  open_file_cache_errors on;
  keepalive_requests 1000000;
  client_body_temp_path ${dir}/tmp;
  proxy_temp_path ${dir}/tmp;
  fastcgi_temp_path ${dir}/tmp;
  uwsgi_temp_path ${dir}/tmp;
  scgi_temp_path ${dir}/tmp;
  server {
    listen 127.0.0.1:${port};
    listen 127.0.0.1:${tlsPort} ssl http2;
    ssl_certificate ${cert};
    ssl_certificate_key ${key};
    root ${root};
    brotli_static on;
    gzip_static on;
    gzip_vary on;
    add_header Cache-Control no-cache;
  }
}
`)
  const child = spawn('taskset', ['-c', cpus, 'nginx', '-p', dir, '-c', join(dir, 'nginx.conf')], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', d => { stderr += d })
  const exited = new Promise(resolve => child.once('exit', resolve))
  const orphan = () => child.kill('SIGKILL')
  process.once('exit', orphan)
  const deadline = Date.now() + 10_000
  while (!await answers(port)) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`nginx did not start: ${stderr.trim()}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  return {
    port,
    tlsPort,
    pid: child.pid,
    async stop () {
      process.off('exit', orphan)
      if (child.exitCode === null) child.kill('SIGQUIT')
      await exited
    },
  }
}

async function answers (port) {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/`, { method: 'HEAD' })
    return res.status > 0
  } catch {
    return false
  }
}
