import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { encode as reference } from 'gpt-tokenizer';
import { countTextTokens } from '../../container/src/tokens/count';
import { countTokens, decodePieces, encode, loadTokenizer } from '../../container/src/tokens/o200k';

/** gpt-tokenizer reading every piece of text as ordinary text (special tokens included). */
const expected = (text: string) => reference(text, { disallowedSpecial: new Set() });

/** Deterministic PRNG (mulberry32), so a failure names a reproducible input. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Random text from a mix that exercises every branch of the pre-tokenizer and the merges. */
function randomText(next: () => number): string {
  const alphabet = [
    ...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789',
    ...'     \t\n\r\n.,;:!?\'"()[]{}<>/\\|-_=+*&^%$#@~`',
    ...'éèêàçñüößÉÀÑ',
    ...'日本語中文한국어ไทยالعربيةрусскийעברית',
    '😀',
    '👍🏽',
    '🇩🇪',
    '\u0301',
    '\u200d',
    '\ud800',
    "'s",
    "'LL",
    '<|endoftext|>',
    '<|im_start|>',
    ' the',
    'ing',
    '   ',
  ];
  const length = 1 + Math.floor(next() * 60);
  let s = '';
  for (let i = 0; i < length; i++) s += alphabet[Math.floor(next() * alphabet.length)];
  return s;
}

describe('o200k tokenizer (typed-array tables)', () => {
  it('loads all 199,998 ranks of o200k_base', () => {
    expect(loadTokenizer()).toBe(199_998);
  });

  it('encodes the repository documents token for token like gpt-tokenizer', () => {
    const root = join(__dirname, '..', '..');
    for (const file of ['README.md', 'docs/benchmarks.md', 'container/src/tokens/o200k.ts']) {
      const text = readFileSync(join(root, file), 'utf8');
      const tokens = encode(text);
      expect(tokens).toEqual(expected(text));
      expect(countTokens(text)).toBe(tokens.length);
    }
  });

  it('encodes 3,000 random mixed-script texts like gpt-tokenizer', () => {
    const next = rng(20261128);
    const mismatches: string[] = [];
    for (let i = 0; i < 3000; i++) {
      const text = randomText(next);
      const ours = encode(text);
      if (JSON.stringify(ours) !== JSON.stringify(expected(text)) || countTokens(text) !== ours.length)
        mismatches.push(JSON.stringify(text));
    }
    expect(mismatches).toEqual([]);
  });

  it('reads special-token text in a prompt as plain text instead of throwing', () => {
    const text = 'ignore this <|endoftext|> and <|im_start|>system';
    expect(countTokens(text)).toBe(expected(text).length);
    expect(countTextTokens(text)).toBeGreaterThan(5);
  });

  it('decodes into pieces that join to the exact text, multi-byte characters split across tokens included', () => {
    for (const text of ['Hello, world!', '😀👍🏽🇩🇪 and 日本語のテキスト', 'ÀÉÎõü\u0301 ñ']) {
      const tokens = encode(text);
      const pieces = decodePieces(tokens);
      expect(pieces).toHaveLength(tokens.length);
      expect(pieces.join('')).toBe(text);
    }
    // An emoji is several tokens; only the last of them carries the character.
    expect(decodePieces(encode('👍🏽')).filter((p) => p === '').length).toBeGreaterThan(0);
  });

  it('stays linear on a pre-tokenizer piece hundreds of kilobytes long, and still round-trips it', () => {
    // ` ?[^\s\p{L}\p{N}]+[\r\n/]*` makes this one piece; quadratic merging would take minutes
    // (jest's timeout is the guard).
    const huge = `!${'\r\n/'.repeat(300_000)}`;
    expect(countTokens(huge)).toBeGreaterThan(1000);
    const long = `#${'\r\n/'.repeat(700)}`;
    expect(decodePieces(encode(long)).join('')).toBe(long);
  });

  it('keeps a leading byte-order mark when decoding', () => {
    const text = '\ufeffHello';
    expect(decodePieces(encode(text)).join('')).toBe(text);
  });

  it('rejects a token id that is not in the table', () => {
    expect(() => decodePieces([200_000])).toThrow(RangeError);
    expect(() => decodePieces([-1])).toThrow(RangeError);
  });

  it('counts an empty text as zero tokens', () => {
    expect(countTokens('')).toBe(0);
    expect(encode('')).toEqual([]);
  });
});
