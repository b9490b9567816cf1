import type { Target } from '../target.js'

export const vercel: Target = () => { throw new Error('the vercel target is not written yet') }
