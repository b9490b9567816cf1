/**
 * Text the CLI prints in plain text that can carry user input (a path, a header name from a config
 * file, a directory as typed), made safe for a terminal: control characters (C0, DEL, C1) and the
 * Unicode bidirectional controls are written as escapes, so a name cannot end a line and fake the
 * next one, move the cursor, recolour the terminal or reorder what follows. The JSON log lines need
 * none of this: JSON escapes control characters itself.
 */
// eslint-disable-next-line no-control-regex
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g
const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' }

export function printable (text: string): string {
  return text.replace(UNPRINTABLE, c => NAMED[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}
