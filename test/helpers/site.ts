/** A real site on disk for HTTP tests: a real wasm module with br/gzip siblings, HTML, JS, an image. */
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync, utimesSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { brotliCompressSync, constants, gzipSync } from 'node:zlib'
import Fastify, { type FastifyInstance } from 'fastify'
import wasmServe, { type WasmServePluginOptions } from '../../src/plugin.js'

export const SQLITE = readFileSync('node_modules/@sqlite.org/sqlite-wasm/sqlite-wasm/jswasm/sqlite3.wasm')
/** The smallest useful module: (module (func (export "f"))), 31 bytes. */
export const TINY = Buffer.from('0061736d0100000001040160000003020100070501016600000a040102000b', 'hex')
export const BR = brotliCompressSync(SQLITE, { params: { [constants.BROTLI_PARAM_QUALITY]: 5 } })
export const GZ = gzipSync(SQLITE, { level: 6 })
export const JS = Buffer.from('export function hello () { return "hello from a module" }\n'.repeat(60))

export function makeSite (): string {
  const root = mkdtempSync(join(tmpdir(), 'wasm-serve-site-'))
  writeFileSync(join(root, 'sqlite3.wasm'), SQLITE)
  writeFileSync(join(root, 'sqlite3.wasm.br'), BR)
  writeFileSync(join(root, 'sqlite3.wasm.gz'), GZ)
  writeFileSync(join(root, 'tiny.wasm'), TINY)
  writeFileSync(join(root, 'index.html'), '<!doctype html><title>site</title><h1>site</h1>\n')
  writeFileSync(join(root, 'app.js'), JS)
  writeFileSync(join(root, 'logo.png'), Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex'))
  mkdirSync(join(root, 'Build'))
  writeFileSync(join(root, 'Build', 'game.wasm.br'), BR)
  // Siblings are written after the originals, as a build would; make sure they are not older.
  const later = new Date(Date.now() + 1000)
  for (const f of ['sqlite3.wasm.br', 'sqlite3.wasm.gz']) utimesSync(join(root, f), later, later)
  return root
}

export async function startPlugin (options: WasmServePluginOptions): Promise<{ app: FastifyInstance, url: string }> {
  const app = Fastify({ logger: false })
  await app.register(wasmServe, { watch: false, ...options })
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  return { app, url }
}
