import type { Io } from '../compress/report.js'

export async function runCheck (_argv: string[], _io?: Io): Promise<number> { throw new Error('wasm-serve check is not written yet') }
