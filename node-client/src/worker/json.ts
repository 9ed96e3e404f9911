/**
 * Strict JSON for what a worker reads (SPEC.md 8.3): `args` must be RFC 8259 JSON with no
 * duplicate member names, nesting at most json-max-depth deep, no integer literal of more than
 * 4300 digits, and no byte order mark. JSON.parse alone keeps the last of duplicate keys and turns
 * integers beyond 2^53 into approximations, so this is a parser of its own.
 *
 * Integers outside Number's safe range (|n| > 2^53 - 1) are returned as BigInt, so that a value
 * such as 9007199254740993 reaches the function exactly; every other number is a Number. A number
 * that is not finite as a double (1e400) is refused: it fits no native type.
 */
import { LIMITS } from '../protocol.js';

export const INTEGER_MAX_DIGITS = 4300;

export class StrictJsonError extends Error {
  override readonly name = 'StrictJsonError';
}

const NUMBER = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;
const ESCAPES: Readonly<Record<string, string>> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };

class Parser {
  private at = 0;

  constructor(private readonly text: string, private readonly maxDepth: number) {}

  parse(): unknown {
    this.space();
    const value = this.value(1);
    this.space();
    if (this.at !== this.text.length) this.fail('unexpected text after the value');
    return value;
  }

  private fail(problem: string): never {
    throw new StrictJsonError(`${problem} at character ${this.at}`);
  }

  private space(): void {
    const text = this.text;
    while (this.at < text.length) {
      const code = text.charCodeAt(this.at);
      if (code !== 0x20 && code !== 0x09 && code !== 0x0a && code !== 0x0d) return;
      this.at += 1;
    }
  }

  private value(depth: number): unknown {
    const char = this.text[this.at];
    if (char === '{' || char === '[') {
      if (depth > this.maxDepth) this.fail(`nesting deeper than ${this.maxDepth}`);
      return char === '{' ? this.object(depth) : this.array(depth);
    }
    if (char === '"') return this.string();
    if (char === '-' || (char !== undefined && char >= '0' && char <= '9')) return this.number();
    for (const [word, value] of [['true', true], ['false', false], ['null', null]] as const) {
      if (this.text.startsWith(word, this.at)) {
        this.at += word.length;
        return value;
      }
    }
    return this.fail(char === undefined ? 'unexpected end of the text' : `unexpected ${JSON.stringify(char)}`);
  }

  private object(depth: number): Record<string, unknown> {
    const result: Record<string, unknown> = {};
    this.at += 1;
    this.space();
    if (this.text[this.at] === '}') {
      this.at += 1;
      return result;
    }
    for (;;) {
      if (this.text[this.at] !== '"') this.fail('expected a member name');
      const key = this.string();
      if (Object.hasOwn(result, key)) this.fail(`duplicate member name ${JSON.stringify(key.slice(0, 64))}`);
      this.space();
      if (this.text[this.at] !== ':') this.fail('expected ":"');
      this.at += 1;
      this.space();
      // defineProperty: a member named __proto__ is an own property, as JSON.parse makes it.
      Object.defineProperty(result, key, { value: this.value(depth + 1), enumerable: true, writable: true, configurable: true });
      this.space();
      const next = this.text[this.at];
      this.at += 1;
      if (next === '}') return result;
      if (next !== ',') this.fail('expected "," or "}"');
      this.space();
    }
  }

  private array(depth: number): unknown[] {
    const result: unknown[] = [];
    this.at += 1;
    this.space();
    if (this.text[this.at] === ']') {
      this.at += 1;
      return result;
    }
    for (;;) {
      result.push(this.value(depth + 1));
      this.space();
      const next = this.text[this.at];
      this.at += 1;
      if (next === ']') return result;
      if (next !== ',') this.fail('expected "," or "]"');
      this.space();
    }
  }

  private string(): string {
    const text = this.text;
    let at = this.at + 1;
    let out = '';
    let start = at;
    for (;;) {
      if (at >= text.length) this.fail('unterminated string');
      const code = text.charCodeAt(at);
      if (code === 0x22) break;
      if (code < 0x20) {
        this.at = at;
        this.fail('control character in a string');
      }
      if (code !== 0x5c) {
        at += 1;
        continue;
      }
      out += text.slice(start, at);
      const escape = text[at + 1] ?? '';
      if (escape === 'u') {
        const hex = text.slice(at + 2, at + 6);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) {
          this.at = at;
          this.fail('bad \\u escape');
        }
        out += String.fromCharCode(parseInt(hex, 16));
        at += 6;
      } else {
        const plain = ESCAPES[escape];
        if (plain === undefined) {
          this.at = at;
          this.fail('bad escape');
        }
        out += plain;
        at += 2;
      }
      start = at;
    }
    this.at = at + 1;
    return out + text.slice(start, at);
  }

  private number(): number | bigint {
    NUMBER.lastIndex = this.at;
    const match = NUMBER.exec(this.text);
    if (!match) return this.fail('bad number');
    const literal = match[0];
    this.at += literal.length;
    if (match[1] === undefined && match[2] === undefined) {
      const digits = literal.length - (literal.startsWith('-') ? 1 : 0);
      if (digits > INTEGER_MAX_DIGITS) this.fail(`an integer of more than ${INTEGER_MAX_DIGITS} digits`);
      if (digits <= 15) return Number(literal);
      const big = BigInt(literal);
      return big <= BigInt(Number.MAX_SAFE_INTEGER) && big >= -BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
    }
    const value = Number(literal);
    if (!Number.isFinite(value)) this.fail(`${literal.slice(0, 32)} is too large for a number`);
    return value;
  }
}

/** Parses strict JSON text; throws StrictJsonError saying what is wrong and where. */
export function parseStrict(text: string, maxDepth: number = LIMITS['json-max-depth']): unknown {
  if (text.startsWith('\ufeff')) throw new StrictJsonError('a byte order mark at character 0');
  return new Parser(text, maxDepth).parse();
}

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Bytes as UTF-8 text; null when they are not valid UTF-8. A BOM is kept, not dropped. */
export function decodeUtf8(bytes: Uint8Array): string | null {
  try {
    return UTF8.decode(bytes);
  } catch {
    return null;
  }
}
