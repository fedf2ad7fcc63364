/** A usage mistake found after flag parsing (e.g. two flags that go together); exits 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}
