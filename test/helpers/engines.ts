/**
 * Real nginx (with the brotli static module) and Caddy, run unprivileged from temp dirs on a free
 * loopback port, serving a configuration `wasm-serve export` wrote, or any other; stopped with
 * SIGTERM when the test ends. `NO_NGINX` / `NO_CADDY` say why a test must be skipped.
 */
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import type { Test } from 'tap'
import { get } from './http.js'
import { until } from './poll.js'
import { tempDir } from './site.js'

export const BROTLI_MODULE = '/usr/lib/nginx/modules/ngx_http_brotli_static_module.so'
export const NO_NGINX = spawnSync('nginx', ['-v']).status !== 0 ? 'nginx is not installed (apt-get install nginx libnginx-mod-http-brotli-static)' : !existsSync(BROTLI_MODULE) ? `no ${BROTLI_MODULE} (apt-get install libnginx-mod-http-brotli-static)` : undefined
export const NO_CADDY = spawnSync('caddy', ['version']).status !== 0 ? 'caddy is not installed (apt-get install caddy)' : undefined

/** A port nothing listens on now (the engine may still lose a race for it: callers retry). */
export async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise(resolve => server.close(resolve))
  return port
}

/** An engine process serving on a fresh port; retried when the port was taken meanwhile. */
export async function startEngine (t: Test, name: string, launch: (port: number) => { cmd: string, args: string[], env?: NodeJS.ProcessEnv }): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    const port = await freePort()
    const { cmd, args, env } = launch(port)
    const child = spawn(cmd, args, { env: env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (b: Buffer) => { output += b.toString() })
    child.stderr.on('data', (b: Buffer) => { output += b.toString() })
    let exited = false
    const exit = new Promise(resolve => child.on('exit', () => { exited = true; resolve(undefined) }))
    // SIGTERM: nginx's master then stops its workers (after SIGKILL they would live on).
    t.teardown(async () => { if (!exited) { child.kill('SIGTERM'); await exit } })
    const url = `http://127.0.0.1:${port}`
    const up = await until(async () => exited || await get(url + '/index.html').then(() => true, () => false), { timeout: 10_000, what: `${name} to listen\n${output}` })
    if (up && !exited) return url
    if (!/address already in use/i.test(output) || attempt >= 3) throw new Error(`${name} did not start:\n${output}`)
  }
}

/** nginx, unprivileged from a temp dir, with the exported file included in http {} as documented. */
export async function startNginx (t: Test, exported: string): Promise<string> {
  const dir = tempDir(t, 'nginx')
  return startEngine(t, 'nginx', port => {
    writeFileSync(join(dir, 'site.conf'), exported.replace('listen 8080;', `listen 127.0.0.1:${port};`))
    writeFileSync(join(dir, 'nginx.conf'), [
      `load_module ${BROTLI_MODULE};`,
      // As root, nginx's workers would run as nobody and not read the 0700 temp dirs.
      ...(process.getuid?.() === 0 ? ['user root;'] : []),
      `pid ${dir}/nginx.pid;`,
      `error_log ${dir}/error.log warn;`,
      'events {}',
      'http {',
      '  access_log off;',
      ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map(k => `  ${k}_temp_path ${dir};`),
      `  include ${dir}/site.conf;`,
      '}',
      '',
    ].join('\n'))
    return { cmd: 'nginx', args: ['-p', dir, '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'] }
  })
}

/** Caddy with its admin endpoint off and its state in a temp dir; the site address from SITE_ADDRESS as documented. */
export async function startCaddy (t: Test, exported: string): Promise<string> {
  const dir = tempDir(t, 'caddy')
  writeFileSync(join(dir, 'Caddyfile'), `{\n\tadmin off\n}\n${exported}`)
  return startEngine(t, 'caddy', port => ({
    cmd: 'caddy',
    args: ['run', '--adapter', 'caddyfile', '--config', join(dir, 'Caddyfile')],
    env: { ...process.env, SITE_ADDRESS: `http://127.0.0.1:${port}`, HOME: dir, XDG_CONFIG_HOME: dir, XDG_DATA_HOME: dir },
  }))
}

export function validate (engine: 'nginx' | 'caddy', dir: string, exported: string): { status: number | null, output: string } {
  if (engine === 'caddy') {
    writeFileSync(join(dir, 'Caddyfile'), `{\n\tadmin off\n}\n${exported}`)
    const r = spawnSync('caddy', ['validate', '--adapter', 'caddyfile', '--config', join(dir, 'Caddyfile')], { env: { ...process.env, HOME: dir, XDG_CONFIG_HOME: dir, XDG_DATA_HOME: dir } })
    return { status: r.status, output: `${r.stdout.toString()}${r.stderr.toString()}` }
  }
  writeFileSync(join(dir, 'site.conf'), exported)
  writeFileSync(join(dir, 'nginx.conf'), `load_module ${BROTLI_MODULE};\npid ${dir}/nginx.pid;\nerror_log ${dir}/error.log;\nevents {}\nhttp { include ${dir}/site.conf; }\n`)
  const r = spawnSync('nginx', ['-t', '-p', dir, '-c', join(dir, 'nginx.conf')])
  return { status: r.status, output: r.stderr.toString() }
}
