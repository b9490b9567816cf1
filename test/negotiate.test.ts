import t from 'tap'
import { negotiate, parseAcceptEncoding } from '../src/negotiate.js'
import type { Coding } from '../src/encodings.js'

const ALL: Coding[] = ['br', 'zstd', 'gzip', 'identity']
const NO_BR: Coding[] = ['zstd', 'gzip', 'identity']
const ONLY_IDENTITY: Coding[] = ['identity']

// [Accept-Encoding, available (server order), expected] — D2, RFC 9110 §12.5.3.
const cases: Array<[string | undefined, Coding[], Coding | null]> = [
  [undefined, ALL, 'identity'], // no header: identity (curl without --compressed)
  ['', ALL, 'identity'], // empty: no coding wanted
  ['br', ALL, 'br'],
  ['gzip', ALL, 'gzip'],
  ['zstd', ALL, 'zstd'],
  ['gzip, deflate, br', ALL, 'br'], // tie broken by server order, not header order
  ['gzip, deflate, br, zstd', ALL, 'br'], // Chrome's header
  ['gzip, deflate, br, zstd', NO_BR, 'zstd'],
  ['deflate, gzip', ALL, 'gzip'],
  ['br;q=0.5, gzip;q=0.8', ALL, 'gzip'], // q beats server order
  ['br;q=1.0, gzip;q=0.999', ALL, 'br'],
  ['br;q=0, gzip', ALL, 'gzip'], // q=0 means not acceptable
  ['br;q=0, *', ALL, 'zstd'], // explicit q=0 wins over *
  ['*', ALL, 'br'],
  ['*;q=0', ALL, null], // nothing acceptable, identity excluded too: 406
  ['*;q=0, identity', ALL, 'identity'],
  ['identity;q=0', ONLY_IDENTITY, null],
  ['identity;q=0, gzip', ALL, 'gzip'],
  ['gzip;q=0', ONLY_IDENTITY, 'identity'], // identity acceptable by default
  ['br;q=0, gzip;q=0', ALL, 'identity'],
  ['x-gzip', ALL, 'gzip'], // x-gzip is gzip
  ['X-GZIP', NO_BR, 'gzip'],
  ['BR', ALL, 'br'], // tokens are case-insensitive
  ['Br;Q=0.3, GZip;q=0.2', ALL, 'br'],
  ['  br ;  q=0.9 ,gzip;q=0.1', ALL, 'br'], // optional whitespace
  ['brotli, gzip', ALL, 'gzip'], // never substring matching: "brotli" is not br
  ['gzipped', ALL, 'identity'],
  ['abr', ALL, 'identity'],
  ['br;q=2', ALL, 'identity'], // invalid qvalue: member ignored
  ['br;q=0.1234', ALL, 'identity'], // more than 3 decimals: invalid
  ['br;q=abc, gzip', ALL, 'gzip'],
  ['identity', ALL, 'identity'],
  ['identity;q=0.5, br;q=0.4', ALL, 'identity'],
  ['*;q=0.2, gzip;q=0.1', ALL, 'br'], // * applies to br, zstd and identity; q 0.2 ties, server order
  ['gzip, gzip;q=0', ALL, 'gzip'], // duplicate: the most permissive value is kept
  [',,br,,', ALL, 'br'], // empty list members are ignored
  ['br', ONLY_IDENTITY, 'identity'],
  ['zstd;q=0.9, br;q=0.8', ALL, 'zstd'],
]

t.test('negotiation table (D2)', async t => {
  const outcomes = new Set(cases.map(([, , expected]) => expected))
  t.same([...ALL, null].filter(coding => !outcomes.has(coding)), [], 'every coding, and 406 (null), is the answer to some row')
  for (const [header, available, expected] of cases) {
    t.equal(negotiate(header, available), expected, `${JSON.stringify(header)} with [${available.join(', ')}] → ${String(expected)}`)
  }
})

t.test('parses q-values and folds x-gzip', async t => {
  t.same([...parseAcceptEncoding('br;q=0.5, X-Gzip;q=0.25, *;q=0')], [['br', 0.5], ['gzip', 0.25], ['*', 0]])
})

t.test('answers stay right after more distinct headers than the parse cache holds', async t => {
  for (let i = 0; i < 1200; i++) t.equal(negotiate(`gzip;q=0.${i % 1000}, br;q=0`, ALL), i % 1000 === 0 ? 'identity' : 'gzip')
  t.equal(negotiate('gzip;q=0.5, br;q=0.4', ALL), 'gzip')
  t.equal(negotiate('gzip;q=0.4, br;q=0.5', ALL), 'br')
})
