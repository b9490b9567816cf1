/**
 * The inline `<script>` elements of an HTML document, as a browser's tokenizer finds them, hashed for
 * a Content-Security-Policy (D19 in docs/delivery.md): Emscripten's shell, Godot's export and Unity's
 * template all start the module from an inline script, which `script-src 'self'` blocks. A
 * `'sha256-…'` source for each lets exactly those scripts run, without `'unsafe-inline'`.
 *
 * No HTML tokenizer is a dependency, so this is a scanner of the few tokenizer states that decide
 * where a script's text begins and ends (whatwg HTML §13.2.5, Tokenization): comments, tags with quoted attribute
 * values, and script data up to `</script`. Limits, documented in docs/delivery.md: the document is
 * read as UTF-8; a `<script>` inside an HTML comment's escape (`<!-- <script>` within a script) or in
 * SVG is not told apart; a hash too many (a `<script>` written inside `<textarea>`) only allows a
 * script that is not there.
 */
import { createHash } from 'node:crypto'

/** Where script data ends: `</script` followed by whitespace, `/` or `>` (HTML's "script data end tag name state"). */
const SCRIPT_END = /<\/script[\t\n\f />]/i

/** The text of each inline (no `src`), non-empty script in `html`, in document order. */
export function inlineScripts (html: string): string[] {
  // The input stream's newlines are normalized before tokenizing (§13.2.3.5): CR LF and CR become LF.
  const text = html.replace(/\r\n?/g, '\n')
  const scripts: string[] = []
  let i = 0
  while (true) {
    const lt = text.indexOf('<', i)
    if (lt === -1) return scripts
    if (text.startsWith('<!--', lt)) { i = commentEnd(text, lt + 4); continue }
    const tag = /^<([A-Za-z][^\t\n\f />]*)/.exec(text.slice(lt, lt + 64))
    if (tag === null) { i = lt + 1; continue }
    const { end, hasSrc } = tagEnd(text, lt + tag[0].length)
    i = end
    if (tag[1]!.toLowerCase() !== 'script') continue
    const close = SCRIPT_END.exec(text.slice(end))
    const body = text.slice(end, close === null ? text.length : end + close.index)
    if (!hasSrc && body !== '') scripts.push(body)
    if (close === null) return scripts
    i = end + close.index + close[0].length
  }
}

/** After `<!--`: past `-->` or `--!>`; `<!-->` and `<!--->` end at once (HTML's abrupt-closing-of-empty-comment). */
function commentEnd (text: string, from: number): number {
  if (text.startsWith('>', from)) return from + 1
  if (text.startsWith('->', from)) return from + 2
  const close = /--!?>/.exec(text.slice(from))
  return close === null ? text.length : from + close.index + close[0].length
}

/** After a start tag's name: the index past its `>` (quoted values may hold one), and whether it has a `src` attribute. */
function tagEnd (text: string, from: number): { end: number, hasSrc: boolean } {
  const attributes = /\s*(?:([^\t\n\f />="'<][^\t\n\f />=]*)(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\t\n\f >]*))?|\/)/y
  let hasSrc = false
  let i = from
  while (i < text.length && text[i] !== '>') {
    attributes.lastIndex = i
    const attribute = attributes.exec(text)
    if (attribute === null || attribute[0] === '') { i++; continue }
    if (attribute[1]?.toLowerCase() === 'src') hasSrc = true
    i = attributes.lastIndex
  }
  return { end: Math.min(i + 1, text.length), hasSrc }
}

/** `'sha256-…'` sources for the inline scripts of an HTML document's bytes (CSP3 "Does element match source list": base64 of the digest of the UTF-8 text). */
export function scriptHashes (html: Buffer): string[] {
  const hashes = inlineScripts(html.toString('utf8')).map(script => `'sha256-${createHash('sha256').update(script, 'utf8').digest('base64')}'`)
  return [...new Set(hashes)]
}
