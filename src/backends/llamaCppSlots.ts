/**
 * The fixed set of context sequences of one in-process model, lent out one per chat call. It keeps
 * no waiting line: the scheduler runs no more calls than the model has slots (its health reports
 * them), so `take` finds a free one unless capacity and calls got out of step.
 */
export class SlotPool<T> {
  private readonly free: T[];

  constructor(items: readonly T[]) {
    if (items.length === 0) throw new Error("a slot pool needs at least one slot");
    this.free = [...items];
  }

  get available(): number {
    return this.free.length;
  }

  /**
   * Takes the free slot with the highest `score` (e.g. the longest prompt prefix already in its
   * cache); undefined when every slot is busy.
   */
  take(score: (item: T) => number = () => 0): T | undefined {
    if (this.free.length === 0) return undefined;
    const scores = this.free.map(score);
    const best = scores.indexOf(Math.max(...scores));
    return this.free.splice(best, 1)[0];
  }

  give(item: T): void {
    this.free.push(item);
  }
}
