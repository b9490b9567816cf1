/**
 * GET /healthz: 200 `{status:'ok', files}` while the root is there and has files to serve; 503 with
 * `{status:'missing'|'empty', reason}` otherwise. A forgotten `docker run -v` mount leaves the image's
 * empty /srv: every request would be a 404 behind a "healthy" container, so the orchestrator is told
 * instead (Docker's HEALTHCHECK, a Kubernetes readiness probe: both read any status but 2xx/3xx as
 * failing). `healthzRequireFiles: false` keeps an empty root healthy (a site filled after start-up).
 */
import { stat } from 'node:fs/promises'

export interface Health {
  code: 200 | 503
  body: { status: 'ok', files: number } | { status: 'missing' | 'empty', reason: string }
}

/** The root's state now: a stat per call (cheap), for a mount can vanish while the server runs. */
export async function healthOf (input: { root: string, files: number, requireFiles: boolean }): Promise<Health> {
  const dir = await stat(input.root).catch(() => undefined)
  // The reason names no path: /healthz is public, and the log says which directory at start-up.
  if (dir === undefined || !dir.isDirectory()) return { code: 503, body: { status: 'missing', reason: 'the root directory is missing' } }
  if (input.requireFiles && input.files === 0) {
    return { code: 503, body: { status: 'empty', reason: 'the root directory has no file to serve (a volume not mounted?)' } }
  }
  return { code: 200, body: { status: 'ok', files: input.files } }
}
