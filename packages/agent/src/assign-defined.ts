// Optional fields copied only when set: with exactOptionalPropertyTypes an optional field
// holds a value or is absent, never `undefined`, so `{ ...a, x: b.x }` does not type-check
// when `b.x` may be undefined, and an absent field must stay absent.

/** Sets on `to` each field of `from` whose value is not undefined, in `from`'s order. */
export function assignDefined<T extends object>(
  to: T,
  from: { [K in keyof T]?: T[K] | undefined },
): T {
  for (const key of Object.keys(from) as (keyof T)[]) {
    const value = from[key];
    if (value !== undefined) to[key] = value as T[keyof T];
  }
  return to;
}
