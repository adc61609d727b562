// lbclient's text form of keys and values (lib/escape.ts), made in bounded Buffers, against the
// string-concatenating escaper it replaced (kept here as the reference: same output, byte for byte).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { escapeBytes, escapedChunks } from '../lib/escape';
import { pseudoRandomBytes } from './support/client-helpers';

const UNSAFE_CHAR = /^[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]$/u;

/** The escaper lbclient had before lib/escape.ts (one string concatenation per character). */
function reference(b: Buffer): string {
  const s = b.toString('utf8');
  let out = '';
  if (Buffer.from(s, 'utf8').equals(b)) {
    for (const ch of s) {
      const c = ch.codePointAt(0)!;
      if (ch === '\\') out += '\\\\';
      else if (ch === '\n') out += '\\n';
      else if (ch === '\t') out += '\\t';
      else if (ch === '\r') out += '\\r';
      else if (c < 0x20 || c === 0x7f) out += '\\x' + c.toString(16).padStart(2, '0');
      else if (UNSAFE_CHAR.test(ch)) for (const byte of Buffer.from(ch, 'utf8')) out += '\\x' + byte.toString(16).padStart(2, '0');
      else out += ch;
    }
    return out;
  }
  for (const c of b) {
    if (c === 0x5c) out += '\\\\';
    else if (c >= 0x20 && c < 0x7f) out += String.fromCharCode(c);
    else out += '\\x' + c.toString(16).padStart(2, '0');
  }
  return out;
}

const cases: Buffer[] = [
  Buffer.alloc(0),
  Buffer.from('plain ascii key/123'),
  Buffer.from('tab\tnl\ncr\rback\\slash del\x7f nul\x00 esc\x1b'),
  Buffer.from('caf\u00e9 \u4e2d\u6587 \u{1f600} \u0085 \u009b \u2028 \u2029 \u202e \u200b \ufeff \u{e0001} \u00ad \ufffd'),
  Buffer.from([0xff, 0x7f, 0x41, 0x7e, 0x5c, 0x0a]),
  Buffer.from([0xc3, 0xa9, 0xff]), // valid é, then an invalid byte: the whole is bytes
  Buffer.from([0xed, 0xa0, 0x80]), // a surrogate in UTF-8 form: not valid UTF-8
  Buffer.from([0xc0, 0xaf]), // overlong
  Buffer.from([0xef, 0xbb, 0xbf, 0x41]), // BOM then A: valid, kept
  Buffer.from([0xe2, 0x82]), // truncated sequence
  pseudoRandomBytes(5000, 1),
  Buffer.alloc(100_000, 0x61), // plain ASCII, longer than a chunk: given out as it is, in chunks
  Buffer.concat([Buffer.alloc(70_000, 0x61), Buffer.from('\n')]), // plain but for its last byte
  Buffer.from(Array.from({ length: 0x800 }, (_, i) => String.fromCodePoint(i)).join('')), // every code point below U+0800
  Buffer.from(Array.from({ length: 0x2100 }, (_, i) => String.fromCodePoint(0x1f00 + i)).join('')), // U+1F00..U+3FFF
];

test('escapedChunks and escapeBytes give the reference escaper\'s output, for text, bytes and edge cases', () => {
  for (const [i, b] of cases.entries()) {
    const want = reference(b);
    assert.is(escapeBytes(b), want, `case ${i}`);
    for (const chunk of [1, 7, 64 * 1024]) {
      const parts = [...escapedChunks(b, chunk)];
      assert.is(Buffer.concat(parts).toString('utf8'), want, `case ${i}, chunks of ${chunk}`);
      for (const p of parts) assert.ok(p.length > 0 && p.length <= chunk + 16, `case ${i}: a chunk of ${p.length} bytes for ${chunk}`);
    }
  }
  assert.is([...escapedChunks(Buffer.alloc(0))].length, 0, 'nothing for an empty value');
});

test('random short byte strings, mostly valid UTF-8 and mostly not: same as the reference', () => {
  const alphabet = ['a', '\\', '\n', '\t', '\x00', '\x7f', '\u0085', '\u00e9', '\u2028', '\u202e', '\u4e2d', '\u{1f600}', '\u{e0041}'];
  let x = 12345;
  const rnd = (n: number) => { x = (x * 1103515245 + 12345) >>> 0; return x % n; };
  for (let i = 0; i < 3000; i++) {
    let s = '';
    for (let k = rnd(12); k > 0; k--) s += alphabet[rnd(alphabet.length)];
    let b = Buffer.from(s);
    if (i % 2 === 1 && b.length > 0) { b = Buffer.from(b); b[rnd(b.length)] = rnd(256); } // often breaks a sequence
    assert.is(escapeBytes(b), reference(b), `input ${b.toString('hex')}`);
  }
});

test('a large value is escaped in bounded chunks', () => {
  const b = pseudoRandomBytes(8 << 20, 5);
  let total = 0;
  let largest = 0;
  for (const p of escapedChunks(b)) { total += p.length; largest = Math.max(largest, p.length); }
  assert.ok(largest <= 64 * 1024 + 16, `largest chunk ${largest}`);
  assert.ok(total > b.length * 2, 'random bytes: mostly \\xNN');
});

test.run();
