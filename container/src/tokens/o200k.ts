import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TOKENIZER_RANKS } from '../contract';

/**
 * The o200k_base byte-pair encoding (what current OpenAI models use), with its 199,998 ranks
 * held in typed arrays instead of JS strings and Maps.
 *
 * Why not gpt-tokenizer's encoder (whose rank file this reads): its tables are 400,000 heap
 * objects (a string per token and a Map over them) plus a merge cache of up to 100,000
 * entries, all in the old generation, so every full GC had to mark them: in the gateway a
 * mark-compact took ~10 ms with them and ~5 ms without, and at 500 RPS those pauses set the
 * latency tail. Typed arrays are one object each to the GC. It also throws on text that
 * contains a special token such as `<|endoftext|>`; a prompt is plain text, so here every
 * piece of text is encoded as ordinary text, as the OpenAI API does with user content.
 *
 * Checked token for token against gpt-tokenizer in test/unit/o200k.test.ts.
 */

const FILE = TOKENIZER_RANKS.bundledName;

/**
 * o200k's pre-tokenizer: the text is cut into pieces by this pattern, and each piece is
 * byte-pair encoded on its own (the pattern tiktoken and gpt-tokenizer use).
 */
const CONTRACTION = "(?:'(?:[sS]|[dD]|[mM]|[tT]|[lL][lL]|[vV][eE]|[rR][eE]))?";
const SPLIT = new RegExp(
  [
    String.raw`[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+${CONTRACTION}`,
    String.raw`[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*${CONTRACTION}`,
    String.raw`\p{N}{1,3}`,
    String.raw` ?[^\s\p{L}\p{N}]+[\r\n/]*`,
    String.raw`\s*[\r\n]+`,
    String.raw`\s+(?!\S)`,
    String.raw`\s+`,
  ].join('|'),
  'gu',
);

/** Where the rank file is: beside this module in a bundle (the Lambdas), else in the package. */
function rankFile(): string {
  const beside = join(__dirname, FILE);
  return existsSync(beside) ? beside : require.resolve(TOKENIZER_RANKS.packageFile);
}

const NO_RANK = 0x7fffffff;

class BytePairRanks {
  /** Every token's bytes, back to back; token r is `bytes[offsets[r]..offsets[r + 1])`. */
  private readonly bytes: Uint8Array;
  private readonly offsets: Uint32Array;
  /** Open addressing over FNV-1a hashes of the token bytes: rank + 1, 0 = empty. */
  private readonly slots: Int32Array;
  private readonly mask: number;

  constructor(file: Uint8Array) {
    const lines = countLines(file);
    this.offsets = new Uint32Array(lines + 1);
    // Base64 is 4 characters per 3 bytes, so the file's size bounds the decoded bytes.
    const bytes = new Uint8Array(file.length);
    let at = 0;
    let rank = 0;
    let i = 0;
    while (i < file.length) {
      let end = i;
      while (end < file.length && file[end] !== 0x20) end++;
      this.offsets[rank] = at;
      at = decodeBase64(file, i, end, bytes, at);
      let value = 0;
      i = end + 1;
      for (; i < file.length && file[i] !== 0x0a; i++) value = value * 10 + ((file[i] as number) - 0x30);
      if (value !== rank) throw new Error(`${FILE}: line ${rank + 1} has rank ${value}`);
      rank++;
      i++;
    }
    this.offsets[rank] = at;
    this.bytes = bytes.slice(0, at);
    let size = 1;
    while (size < rank * 2) size <<= 1;
    this.slots = new Int32Array(size);
    this.mask = size - 1;
    for (let r = 0; r < rank; r++) {
      const start = this.offsets[r] as number;
      const end = this.offsets[r + 1] as number;
      let slot = hash(this.bytes, start, end) & this.mask;
      while (this.slots[slot] !== 0) slot = (slot + 1) & this.mask;
      this.slots[slot] = r + 1;
    }
  }

  get size(): number {
    return this.offsets.length - 1;
  }

  /** The rank of `piece[start..end)`, or NO_RANK. */
  rank(piece: Uint8Array, start: number, end: number): number {
    const length = end - start;
    const { bytes, offsets, slots, mask } = this;
    let slot = hash(piece, start, end) & mask;
    for (;;) {
      const entry = slots[slot] as number;
      if (entry === 0) return NO_RANK;
      const r = entry - 1;
      const from = offsets[r] as number;
      if ((offsets[r + 1] as number) - from === length) {
        let k = 0;
        while (k < length && bytes[from + k] === piece[start + k]) k++;
        if (k === length) return r;
      }
      slot = (slot + 1) & mask;
    }
  }

  tokenBytes(rank: number): Uint8Array {
    if (!Number.isInteger(rank) || rank < 0 || rank >= this.size) throw new RangeError(`no token ${rank}`);
    return this.bytes.subarray(this.offsets[rank], this.offsets[rank + 1]);
  }
}

function countLines(file: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < file.length; i++) if (file[i] === 0x0a) n++;
  return file.length > 0 && file[file.length - 1] !== 0x0a ? n + 1 : n;
}

const BASE64 = new Int8Array(128).fill(-1);
for (const [i, c] of [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'].entries())
  BASE64[c.charCodeAt(0)] = i;

/** Decodes `src[from..to)` (base64, `=` padded) into `out` at `at`; returns the new end. */
function decodeBase64(src: Uint8Array, from: number, to: number, out: Uint8Array, at: number): number {
  let acc = 0;
  let bits = 0;
  for (let i = from; i < to; i++) {
    const c = src[i] as number;
    if (c === 0x3d) break;
    const v = c < 128 ? (BASE64[c] as number) : -1;
    if (v < 0) throw new Error(`${FILE}: not base64 at byte ${i}`);
    acc = ((acc << 6) | v) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[at++] = (acc >> bits) & 0xff;
    }
  }
  return at;
}

function hash(b: Uint8Array, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) h = Math.imul(h ^ (b[i] as number), 0x01000193);
  return h >>> 0;
}

let ranks: BytePairRanks | undefined;

function table(): BytePairRanks {
  ranks ??= new BytePairRanks(readFileSync(rankFile()));
  return ranks;
}

const utf8 = new TextEncoder();
/**
 * The merge below is quadratic in a piece's length, and the pre-tokenizer can return long
 * pieces (a run of punctuation with line breaks, `!\r\n/\r\n/...`, is one). A piece longer
 * than this many bytes is merged in windows of this size: linear, exact for every piece real
 * text has, a few tokens off at the cuts of pathological ones.
 */
const MAX_PIECE_BYTES = 256;
/** Scratch space for one piece's bytes and its merge state. */
let pieceBytes = new Uint8Array(1024);
const partStart = new Int32Array(MAX_PIECE_BYTES + 1);
const partRank = new Int32Array(MAX_PIECE_BYTES + 1);

/**
 * Byte-pair merge of `pieceBytes[from..to)` (tiktoken's `_byte_pair_merge`): start from single
 * bytes and repeatedly merge the adjacent pair whose concatenation has the lowest rank
 * (leftmost on a tie) until no adjacent pair is a token. Calls `emit` with each token, returns
 * their number. `to - from` is at most MAX_PIECE_BYTES.
 */
function mergePiece(t: BytePairRanks, from: number, to: number, emit?: (rank: number) => void): number {
  const piece = pieceBytes;
  const whole = t.rank(piece, from, to);
  if (whole !== NO_RANK) {
    emit?.(whole);
    return 1;
  }
  const starts = partStart;
  const pairRank = partRank;
  // parts = [from, from + 1, ..., to]; pairRank[i] = rank of parts i and i+1 together.
  let parts = to - from + 1;
  for (let i = 0; i < parts; i++) {
    starts[i] = from + i;
    pairRank[i] = i + 2 < parts ? t.rank(piece, from + i, from + i + 2) : NO_RANK;
  }
  for (;;) {
    let min = NO_RANK;
    let at = -1;
    for (let i = 0; i < parts - 2; i++) {
      const r = pairRank[i] as number;
      if (r < min) {
        min = r;
        at = i;
      }
    }
    if (at < 0) break;
    // Merge part at+1 into part at, then re-rank the pairs that now end or start there.
    parts--;
    for (let i = at + 1; i < parts; i++) {
      starts[i] = starts[i + 1] as number;
      pairRank[i] = pairRank[i + 1] as number;
    }
    pairRank[at] = pairAt(t, parts, at);
    if (at > 0) pairRank[at - 1] = pairAt(t, parts, at - 1);
  }
  if (emit) {
    for (let i = 0; i + 1 < parts; i++) emit(t.rank(piece, starts[i] as number, starts[i + 1] as number));
  }
  return parts - 1;
}

/** Rank of parts `i` and `i + 1` of the piece being merged, together. */
function pairAt(t: BytePairRanks, parts: number, i: number): number {
  return i + 2 < parts ? t.rank(pieceBytes, partStart[i] as number, partStart[i + 2] as number) : NO_RANK;
}

/** Tokens of `text`, each passed to `emit` if given; returns how many. */
function run(text: string, emit?: (rank: number) => void): number {
  const t = table();
  let n = 0;
  SPLIT.lastIndex = 0;
  for (let m = SPLIT.exec(text); m !== null; m = SPLIT.exec(text)) {
    const s = m[0];
    // A UTF-16 unit is at most 3 UTF-8 bytes (a surrogate pair is 4 for 2 units).
    if (pieceBytes.length < s.length * 3) pieceBytes = new Uint8Array(s.length * 3);
    const { written } = utf8.encodeInto(s, pieceBytes);
    for (let from = 0; from < written; from += MAX_PIECE_BYTES)
      n += mergePiece(t, from, Math.min(written, from + MAX_PIECE_BYTES), emit);
  }
  // One huge piece must not keep megabytes of scratch space for the life of the process.
  if (pieceBytes.length > 64 * 1024) pieceBytes = new Uint8Array(1024);
  return n;
}

/** Number of o200k tokens in `text`, read as plain text. */
export function countTokens(text: string): number {
  return text.length === 0 ? 0 : run(text);
}

/** The o200k tokens of `text`, read as plain text. */
export function encode(text: string): number[] {
  const out: number[] = [];
  run(text, (r) => out.push(r));
  return out;
}

/**
 * The text each token adds when the tokens are decoded in order (a token that ends inside a
 * multi-byte character adds '' and the next one adds the character), so the pieces join to
 * exactly the decoded text.
 */
export function decodePieces(tokens: readonly number[]): string[] {
  const t = table();
  // ignoreBOM: a leading U+FEFF is text like any other, not a marker to drop.
  const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
  const pieces = tokens.map((r) => decoder.decode(t.tokenBytes(r), { stream: true }));
  const rest = decoder.decode();
  if (rest && pieces.length > 0) pieces[pieces.length - 1] += rest;
  return pieces;
}

/** Loads the rank table now (the service does at start, so no request pays for it). */
export function loadTokenizer(): number {
  return table().size;
}
