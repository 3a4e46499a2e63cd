/**
 * Serializes async sections per key: a section starts only after the previous one for the same
 * key has settled. Entries are removed when a key goes quiet, so the map holds only busy keys.
 */
export class KeyedLock {
  private readonly tails = new Map<string, Promise<void>>();

  run<T>(key: string, section: () => Promise<T>): Promise<T> {
    const result = (this.tails.get(key) ?? Promise.resolve()).then(section);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    // tail never rejects: both outcomes of the section map to undefined above.
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }

  /** Keys with a section running or waiting. */
  get busyKeys(): number {
    return this.tails.size;
  }
}
