// Linting: neostandard, the style Fastify's own repositories use (standard, with TypeScript support).
import neostandard from 'neostandard'

export default [
  ...neostandard({
    ts: true,
    ignores: ['dist/**', 'coverage/**', '.tap/**', 'src/options.validate.cjs', 'test/fixtures/generated/**', 'bench/results/**'],
  }),
  {
    // The demo page, the loader and the page script the browser benchmark injects run in a browser.
    files: ['public/**', 'bench/browser.mjs'],
    languageOptions: { globals: { location: 'readonly', requestAnimationFrame: 'readonly' } },
  },
  {
    // `void promise` marks a promise left to run on purpose (its errors are handled where it is made).
    rules: { 'no-void': ['error', { allowAsStatement: true }] },
  },
]
