/**
 * The JSON of a message's content: object keys sorted, `$typeName` left out, so that equal
 * content gives equal text whatever the construction order. Lists keep their order: callers
 * sort them. Not the agent's `canonicalJson` (which keeps every key and writes an undefined
 * list element as nothing, not `null`): the two hash different things and need not agree.
 */
export function contentJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null";
  if (Array.isArray(value)) {
    if (value.every((v) => typeof v === "string" || typeof v === "number")) {
      return JSON.stringify(value);
    }
    return `[${value.map(contentJson).join(",")}]`;
  }
  const obj = value as Record<string, unknown>;
  const parts: string[] = [];
  for (const key of Object.keys(obj).sort()) {
    if (key === "$typeName" || obj[key] === undefined) continue;
    parts.push(`${JSON.stringify(key)}:${contentJson(obj[key])}`);
  }
  return `{${parts.join(",")}}`;
}

/**
 * A 64-bit hash (two mixed 32-bit lanes) fed value by value, so that no text has to be
 * built to hash structured content. Every string is preceded by its length, so that
 * neighbouring fields stay apart ("ab","c" and "a","bc" differ).
 */
export class Hash64 {
  private h1 = 0xdeadbeef;
  private h2 = 0x41c6ce57;

  /** A 32-bit integer (higher bits are dropped). */
  int(n: number): this {
    this.h1 = Math.imul(this.h1 ^ n, 2654435761);
    this.h2 = Math.imul(this.h2 ^ n, 1597334677);
    return this;
  }

  str(s: string): this {
    let h1 = Math.imul(this.h1 ^ s.length, 2654435761);
    let h2 = Math.imul(this.h2 ^ s.length, 1597334677);
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      h1 = Math.imul(h1 ^ c, 2654435761);
      h2 = Math.imul(h2 ^ c, 1597334677);
    }
    this.h1 = h1;
    this.h2 = h2;
    return this;
  }

  /** The two lanes, mixed: to feed into another hash with `int`. */
  lanes(): [number, number] {
    const h1 =
      Math.imul(this.h1 ^ (this.h1 >>> 16), 2246822507) ^
      Math.imul(this.h2 ^ (this.h2 >>> 13), 3266489909);
    const h2 =
      Math.imul(this.h2 ^ (this.h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
    return [h1, h2];
  }

  /** 16 hex characters, as one flat string: `+` would make a 16-character string a rope of
   * two halves, more than twice its size, and the hub keeps one version per intent. */
  hex(): string {
    const [h1, h2] = this.lanes();
    return [
      (h1 >>> 0).toString(16).padStart(8, "0"),
      (h2 >>> 0).toString(16).padStart(8, "0"),
    ].join("");
  }
}

/** A 64-bit hash of a string's characters, as 16 hex characters. */
export function hash64(text: string): string {
  const h = new Hash64();
  for (let i = 0; i < text.length; i++) h.int(text.charCodeAt(i));
  return h.hex();
}

/** Content version of a value: the hash of its canonical JSON. */
export function contentVersion(value: unknown): string {
  return hash64(contentJson(value));
}
