/**
 * Log lines for a person at a terminal: pino's JSON records turned into one short line each, as
 * `GET /app.wasm 200 br 339,551 B 2 ms`, the status coloured by class. JSON stays the format for
 * anything that is not a terminal (a pipe, a container log, a log collector), and on `--log-format json`.
 * Text from records is made safe for a terminal (printable.ts). Written as a pino destination (a stream pino writes its JSON lines to) so no transport thread or
 * extra dependency is needed (https://getpino.io/#/docs/api?id=destination).
 */
import { Writable } from 'node:stream'
import { printable } from './printable.js'

export type LogFormat = 'auto' | 'pretty' | 'json'

/** pino's numeric levels (https://getpino.io/#/docs/api?id=levels). */
const LEVELS: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' }
/** pino's own fields and the request line's, which the text already shows. */
const SHOWN = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'reqId', 'req', 'res', 'responseTime'])

const ANSI = { red: 31, green: 32, yellow: 33, cyan: 36, dim: 2 } as const
type Colour = keyof typeof ANSI

/** 'pretty' or 'json' for 'auto': pretty only when a person is reading the stream. */
export function chooseFormat (format: LogFormat, stream: { isTTY?: boolean }): 'pretty' | 'json' {
  if (format !== 'auto') return format
  return stream.isTTY === true ? 'pretty' : 'json'
}

/** ANSI colours only on a terminal, and never when NO_COLOR is set to anything but '' (https://no-color.org). */
export function useColour (stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv): boolean {
  return stream.isTTY === true && (env.NO_COLOR === undefined || env.NO_COLOR === '')
}

function paint (text: string, colour: Colour, on: boolean): string {
  return on ? `\x1b[${ANSI[colour]}m${text}\x1b[0m` : text
}

function statusColour (status: number): Colour {
  if (status >= 500) return 'red'
  if (status >= 400) return 'yellow'
  if (status >= 300) return 'cyan'
  return 'green'
}

/** `339551` → `339,551 B`: digits grouped the same way whatever the locale, so output is comparable. */
export function formatBytes (bytes: number): string {
  return `${String(bytes).replace(/\B(?=(\d{3})+(?!\d))/g, ',')} B`
}

/** One record as a line, without its newline; undefined for a record not worth a line here. */
export function formatRecord (record: Record<string, unknown>, colour: boolean): string | undefined {
  const msg = String(record.msg ?? '')
  // The banner says where it listens, with every address; Fastify's own line would repeat it first.
  if (msg.startsWith('Server listening at ')) return undefined
  if (msg === 'request' && typeof record.status === 'number') {
    const status = paint(String(record.status), statusColour(record.status), colour)
    const encoding = record.encoding === 'identity' ? '' : ` ${String(record.encoding)}`
    return `${printable(String(record.method))} ${printable(String(record.url))} ${status}${printable(encoding)} ${formatBytes(Number(record.bytes ?? 0))} ${String(record.ms)} ms`
  }
  const level = LEVELS[Number(record.level)] ?? 'info'
  const extra = Object.keys(record).filter(k => !SHOWN.has(k)).sort().map(k => `${k}=${fieldText(record[k])}`)
  const head = level === 'info' ? '' : paint(`${level}: `, level === 'warn' ? 'yellow' : level === 'debug' || level === 'trace' ? 'dim' : 'red', colour)
  return `${head}${printable(msg)}${extra.length > 0 ? paint(` (${extra.join(', ')})`, 'dim', colour) : ''}`
}

function fieldText (value: unknown): string {
  if (value !== null && typeof value === 'object') {
    const err = value as { message?: unknown }
    return printable(typeof err.message === 'string' ? err.message : JSON.stringify(value))
  }
  return printable(String(value))
}

/** A pino destination writing each JSON record to `out` as a formatted line. */
export function prettyStream (out: NodeJS.WritableStream, colour: boolean): Writable {
  let pending = ''
  return new Writable({
    write (chunk: Buffer | string, _encoding, done) {
      const lines = (pending + chunk.toString()).split('\n')
      pending = lines.pop() ?? ''
      const text = lines.flatMap(line => {
        if (line === '') return []
        let record: Record<string, unknown>
        try { record = JSON.parse(line) as Record<string, unknown> } catch { return [line] }
        const formatted = formatRecord(record, colour)
        return formatted === undefined ? [] : [formatted]
      })
      if (text.length > 0) out.write(text.join('\n') + '\n')
      done()
    },
  })
}
