// Glob patterns of policy selectors, matched without regular expressions.
//
// A regular expression built from a glob backtracks: `*a*a*a…*b` against a long name that does
// not match tries every way to split the name among the stars, exponential in their number (a
// 16-star glob blocked the hub for over 40 s on a 36-character cluster id). Here every
// alternative of a glob is a list of one-character tokens and stars, matched with two pointers
// that go back only to the last star: at most (name length + 1) x (tokens + 1) steps.
//
// Syntax: `*` (any run of characters), `?` (one character), `[abc]`, `[a-z]`, `[!a-z]` or
// `[^a-z]` (one character of a set, or not of it), `{a,b}` (alternatives, nesting allowed) and
// a leading `!` (every name the rest does not match). Other characters stand for themselves and
// must be name characters (lowercase letters, digits, '-' and '.').

/** Longest glob a policy may hold, in characters. */
export const MAX_GLOB_LENGTH = 128;
/** Most `*` and `?` one glob may hold. */
export const MAX_GLOB_WILDCARDS = 16;
/** Most alternatives the braces of one glob may expand to. */
export const MAX_GLOB_ALTERNATIVES = 32;

const STAR = 0;
/** A character set: sorted inclusive code ranges, or their complement. */
interface CharSet {
  negated: boolean;
  ranges: number[];
}
/** STAR, one exact character code (as `code + 1`, so that it is never STAR), `?` or a set. */
type Token = number | "any" | CharSet;

/** A compiled glob; `test` runs in (name length + 1) x (pattern length + 1) steps at most. */
export interface Glob {
  test(name: string, steps?: { count: number }): boolean;
}

const LITERAL = /^[a-z0-9.-]$/;

function closingBrace(pattern: string, open: number): number {
  let depth = 0;
  for (let i = open; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === "[") {
      const end = pattern.indexOf("]", i + 2);
      if (end < 0) return -1;
      i = end;
    } else if (c === "{") depth++;
    else if (c === "}" && --depth === 0) return i;
  }
  return -1;
}

function splitTopLevel(body: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (c === "{") depth++;
    else if (c === "}") depth--;
    else if (c === "," && depth === 0) {
      parts.push(body.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(body.slice(start));
  return parts;
}

/** The brace-free patterns a glob stands for, in order. */
function expandBraces(pattern: string): string[] {
  const open = pattern.indexOf("{");
  if (open < 0) {
    if (pattern.includes("}")) throw new Error('"}" without "{"');
    return [pattern];
  }
  const close = closingBrace(pattern, open);
  if (close < 0) throw new Error('unclosed "{"');
  const body = pattern.slice(open + 1, close);
  if (body.includes("..")) throw new Error("brace ranges ({a..b}) are not supported");
  const head = pattern.slice(0, open);
  const out: string[] = [];
  for (const tail of expandBraces(pattern.slice(close + 1))) {
    for (const part of splitTopLevel(body)) {
      for (const middle of expandBraces(part)) {
        out.push(head + middle + tail);
        if (out.length > MAX_GLOB_ALTERNATIVES) {
          throw new Error(`braces expand to more than ${MAX_GLOB_ALTERNATIVES} alternatives`);
        }
      }
    }
  }
  return out;
}

/** Parses `[...]` starting at `open`; returns the set and the index after `]`. */
function parseSet(pattern: string, open: number): [CharSet, number] {
  let i = open + 1;
  const negated = pattern[i] === "!" || pattern[i] === "^";
  if (negated) i++;
  const ranges: number[] = [];
  const first = i;
  for (; i < pattern.length && (pattern[i] !== "]" || i === first); i++) {
    const c = pattern[i]!;
    if (c === "[" && pattern[i + 1] === ":")
      throw new Error("character classes ([:alpha:]) are not supported");
    if (pattern[i + 1] === "-" && i + 2 < pattern.length && pattern[i + 2] !== "]") {
      const from = c.charCodeAt(0);
      const to = pattern.charCodeAt(i + 2);
      if (to < from) throw new Error(`range ${c}-${pattern[i + 2]} is reversed`);
      ranges.push(from, to);
      i += 2;
    } else ranges.push(c.charCodeAt(0), c.charCodeAt(0));
  }
  if (i >= pattern.length) throw new Error('unclosed "["');
  return [{ negated, ranges }, i + 1];
}

function tokenize(pattern: string): Token[] {
  const tokens: Token[] = [];
  for (let i = 0; i < pattern.length; ) {
    const c = pattern[i]!;
    if (c === "*") {
      if (tokens.at(-1) !== STAR) tokens.push(STAR);
      i++;
    } else if (c === "?") {
      tokens.push("any");
      i++;
    } else if (c === "[") {
      const [set, next] = parseSet(pattern, i);
      tokens.push(set);
      i = next;
    } else if (LITERAL.test(c)) {
      tokens.push(c.charCodeAt(0) + 1);
      i++;
    } else {
      throw new Error(
        `${JSON.stringify(c)} is not supported (globs use * ? [...] {a,b} and a leading !)`,
      );
    }
  }
  return tokens;
}

function matchesOne(token: Token, code: number): boolean {
  if (token === "any") return true;
  if (typeof token === "number") return token === code + 1;
  let inside = false;
  for (let r = 0; r < token.ranges.length && !inside; r += 2)
    inside = code >= token.ranges[r]! && code <= token.ranges[r + 1]!;
  return inside !== token.negated;
}

/**
 * Two pointers over name and tokens; on a mismatch the last star takes one more character and
 * matching resumes after it. Earlier stars never need to take more: whatever they would take,
 * the last star can take instead. Each restart moves the last star's start right, so the loop
 * runs at most (name length + 1) x (tokens + 1) times.
 */
function matchTokens(tokens: readonly Token[], name: string, steps?: { count: number }): boolean {
  let t = 0;
  let i = 0;
  let starToken = -1;
  let starName = 0;
  while (i < name.length) {
    if (steps !== undefined) steps.count++;
    const token = tokens[t];
    if (token === STAR) {
      starToken = t++;
      starName = i;
    } else if (token !== undefined && matchesOne(token, name.charCodeAt(i))) {
      t++;
      i++;
    } else if (starToken >= 0) {
      t = starToken + 1;
      i = ++starName;
    } else return false;
  }
  while (tokens[t] === STAR) t++;
  return t === tokens.length;
}

/** Counts the wildcards (`*`, `?`) outside character sets. */
function wildcards(pattern: string): number {
  let n = 0;
  for (let i = 0; i < pattern.length; i++) {
    if (pattern[i] === "[") {
      const end = pattern.indexOf("]", i + 2);
      if (end < 0) break;
      i = end;
    } else if (pattern[i] === "*" || pattern[i] === "?") n++;
  }
  return n;
}

/**
 * Compiles a glob; throws an Error whose message says what is wrong with it (too long, too
 * many wildcards or alternatives, unsupported or unbalanced syntax).
 */
export function compileGlob(pattern: string): Glob {
  if (pattern.length > MAX_GLOB_LENGTH)
    throw new Error(`${pattern.length} characters, at most ${MAX_GLOB_LENGTH}`);
  const count = wildcards(pattern);
  if (count > MAX_GLOB_WILDCARDS)
    throw new Error(`${count} wildcards (* and ?), at most ${MAX_GLOB_WILDCARDS}`);
  const negated = pattern.startsWith("!");
  const alternatives = expandBraces(negated ? pattern.slice(1) : pattern).map(tokenize);
  return {
    test(name, steps) {
      let found = false;
      for (const tokens of alternatives) {
        if (matchTokens(tokens, name, steps)) {
          found = true;
          break;
        }
      }
      return found !== negated;
    },
  };
}
