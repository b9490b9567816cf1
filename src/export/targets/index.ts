/** The engines `wasm-serve export --target` writes for, by name. */
import type { Target } from '../target.js'
import { caddy } from './caddy.js'
import { cloudflarePages, netlify } from './headers-file.js'
import { nginx } from './nginx.js'
import { s3 } from './s3.js'
import { vercel } from './vercel.js'

export const TARGETS: Record<string, Target> = {
  nginx,
  caddy,
  netlify,
  'cloudflare-pages': cloudflarePages,
  vercel,
  s3,
}
