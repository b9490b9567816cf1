import type { Target } from '../target.js'

export const nginx: Target = () => { throw new Error('the nginx target is not written yet') }
