/**
 * A first-in first-out queue with O(1) push and shift. `Array.prototype.shift` is O(n), which
 * matters for a session holding hundreds of queued turns.
 */
export class Fifo<T> {
  private items: (T | undefined)[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  peek(): T | undefined {
    return this.items[this.head];
  }

  peekLast(): T | undefined {
    return this.length > 0 ? this.items[this.items.length - 1] : undefined;
  }

  /** Replaces the newest item; the queue must not be empty. */
  replaceLast(item: T): void {
    this.items[this.items.length - 1] = item;
  }

  shift(): T | undefined {
    if (this.length === 0) return undefined;
    const item = this.items[this.head];
    this.items[this.head++] = undefined; // let the item be collected
    // Compact once the dead prefix dominates, so memory stays proportional to the live items.
    if (this.head >= 64 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  /** Removes and returns the items `match` picks, oldest first; the others keep their order. */
  remove(match: (item: T) => boolean): T[] {
    const removed: T[] = [];
    const kept: T[] = [];
    for (const item of this.takeAll()) (match(item) ? removed : kept).push(item);
    this.items = kept;
    return removed;
  }

  /** Removes and returns every item, oldest first. */
  takeAll(): T[] {
    const all = this.items.slice(this.head) as T[];
    this.items = [];
    this.head = 0;
    return all;
  }
}
