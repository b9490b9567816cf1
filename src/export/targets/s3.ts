import type { Target } from '../target.js'

export const s3: Target = () => { throw new Error('the s3 target is not written yet') }
