import type { Target } from '../target.js'

export const netlify: Target = () => { throw new Error('the netlify target is not written yet') }
export const cloudflarePages: Target = () => { throw new Error('the cloudflare-pages target is not written yet') }
