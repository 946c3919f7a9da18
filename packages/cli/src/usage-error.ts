/** Bad usage (flags, arguments, config file): `isthmus: <message>` and exit code 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}
