import type { Metric, Registry } from "prom-client";

/** As prom-client writes it in the exposition (its typings declare a numeric enum instead). */
type MetricType = "counter" | "histogram";

type Labels = Record<string, string | number>;

export interface TallyConfig {
  registry: Registry;
  name: string;
  help: string;
  labelNames: readonly [string] | readonly [string, string];
}

interface ExportedValue {
  value: number;
  labels: Labels;
  metricName?: string;
}

/**
 * A metric of the turn path, kept in plain numbers per label values and handed to prom-client
 * only when /metrics is read. prom-client's own `inc()` and `observe()` build, validate and hash
 * a label object, and find the bucket by a string key, on every call: about 10 µs per turn in
 * the S1 benchmark's CPU profile, for figures read once every few seconds. The registry takes
 * any metric with a name and `get()` (it formats and escapes the values itself); its types list
 * only its own classes, hence the cast.
 */
abstract class Tally<Cell> {
  /** First label value → second label value ("" when there is one label) → numbers. */
  private readonly cells = new Map<string, Map<string, Cell>>();
  readonly aggregator = "sum";

  readonly name: string;
  readonly help: string;
  private readonly labelNames: TallyConfig["labelNames"];

  constructor(
    config: TallyConfig,
    readonly type: MetricType,
  ) {
    this.name = config.name;
    this.help = config.help;
    this.labelNames = config.labelNames;
    config.registry.registerMetric(this as unknown as Metric);
  }

  protected abstract newCell(): Cell;
  protected abstract exported(cell: Cell, labels: Labels, into: ExportedValue[]): void;

  protected cell(first: string, second = ""): Cell {
    let inner = this.cells.get(first);
    if (!inner) this.cells.set(first, (inner = new Map()));
    let cell = inner.get(second);
    if (!cell) inner.set(second, (cell = this.newCell()));
    return cell;
  }

  async get(): Promise<{
    name: string;
    help: string;
    type: MetricType;
    aggregator: string;
    values: ExportedValue[];
  }> {
    const values: ExportedValue[] = [];
    const [firstName, secondName] = this.labelNames;
    for (const [first, inner] of this.cells) {
      for (const [second, cell] of inner) {
        const labels: Labels = secondName
          ? { [firstName]: first, [secondName]: second }
          : { [firstName]: first };
        this.exported(cell, labels, values);
      }
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}

/** A counter by two labels. */
export class CounterTally extends Tally<{ value: number }> {
  constructor(config: TallyConfig & { labelNames: readonly [string, string] }) {
    super(config, "counter");
  }

  add(first: string, second: string, amount = 1): void {
    this.cell(first, second).value += amount;
  }

  protected newCell(): { value: number } {
    return { value: 0 };
  }

  protected exported(cell: { value: number }, labels: Labels, into: ExportedValue[]): void {
    into.push({ value: cell.value, labels });
  }
}

interface HistogramCell {
  /** Observations per bucket, not cumulative; above the last bound they count only in `count`. */
  buckets: Float64Array;
  sum: number;
  count: number;
}

/** A histogram by one or two labels, exported as prom-client exports its own. */
export class HistogramTally extends Tally<HistogramCell> {
  private readonly bounds: readonly number[];

  constructor(config: TallyConfig & { buckets: readonly number[] }) {
    super(config, "histogram");
    this.bounds = config.buckets;
  }

  observe(value: number, first: string, second?: string): void {
    const cell = this.cell(first, second);
    const { bounds } = this;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    if (i < bounds.length) cell.buckets[i]!++;
    cell.sum += value;
    cell.count++;
  }

  protected newCell(): HistogramCell {
    return { buckets: new Float64Array(this.bounds.length), sum: 0, count: 0 };
  }

  protected exported(cell: HistogramCell, labels: Labels, into: ExportedValue[]): void {
    const bucket = `${this.name}_bucket`;
    let cumulative = 0;
    this.bounds.forEach((le, i) => {
      cumulative += cell.buckets[i]!;
      into.push({ value: cumulative, labels: { le, ...labels }, metricName: bucket });
    });
    into.push({ value: cell.count, labels: { le: "+Inf", ...labels }, metricName: bucket });
    into.push({ value: cell.sum, labels, metricName: `${this.name}_sum` });
    into.push({ value: cell.count, labels, metricName: `${this.name}_count` });
  }
}
