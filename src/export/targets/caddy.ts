import type { Target } from '../target.js'

export const caddy: Target = () => { throw new Error('the caddy target is not written yet') }
