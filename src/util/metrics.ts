// Prometheus metrics without a dependency: counters, gauges and histograms with labels, their
// text exposition format (version 0.0.4), and snapshots that several processes' registries can
// be merged from (mwi start --workers: the primary sums its workers' counters).

export type MetricType = 'counter' | 'gauge' | 'histogram';
/** How a gauge of several processes is merged: a per-process amount adds up; a shared fact does not. */
export type GaugeMerge = 'sum' | 'max' | 'min';
export type LabelValues = Readonly<Record<string, string>>;

/** One series: its label values (in the family's label order) and its value, or its histogram. */
export interface SeriesSnapshot {
  labels: string[];
  value?: number;
  /** Histogram: observations per bucket (not cumulative), the last one above every bound. */
  counts?: number[];
  sum?: number;
}

/** A metric family as plain JSON: what a worker sends its primary. */
export interface FamilySnapshot {
  name: string;
  help: string;
  type: MetricType;
  labelNames: string[];
  merge?: GaugeMerge;
  /** Histogram bucket upper bounds (seconds), increasing; +Inf is implied. */
  buckets?: number[];
  series: SeriesSnapshot[];
}

export interface MetricsSnapshot {
  families: FamilySnapshot[];
}

/** Latency buckets for requests, in seconds (1 ms to 10 s). */
export const REQUEST_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Latency buckets for storage operations, in seconds (50 µs to 1 s). */
export const STORAGE_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.25, 1];

/** A copy that shares no array with `s` (and has no undefined fields: it crosses IPC as JSON). */
function copySeries(s: SeriesSnapshot): SeriesSnapshot {
  return { ...s, labels: [...s.labels], ...(s.counts ? { counts: [...s.counts] } : {}) };
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

class Family {
  readonly series = new Map<string, SeriesSnapshot>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: MetricType,
    readonly labelNames: readonly string[],
    readonly merge: GaugeMerge | undefined,
    readonly buckets: readonly number[] | undefined,
  ) {
    if (!NAME.test(name)) throw new TypeError(`invalid metric name ${JSON.stringify(name)}`);
    for (const l of labelNames) if (!LABEL.test(l) || l === 'le') throw new TypeError(`invalid label name ${l}`);
  }

  /** The series of `labels`, created (at zero) on first use. */
  at(labels: LabelValues): SeriesSnapshot {
    for (const k of Object.keys(labels))
      if (!this.labelNames.includes(k)) throw new TypeError(`${this.name} has no label ${k}`);
    const values = this.labelNames.map((n) => labels[n] ?? '');
    const k = values.join('\u0000');
    let s = this.series.get(k);
    if (!s) {
      s = this.buckets ? { labels: values, counts: this.buckets.map(() => 0).concat(0), sum: 0 } : { labels: values };
      if (!this.buckets) s.value = 0;
      this.series.set(k, s);
    }
    return s;
  }

  snapshot(): FamilySnapshot {
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      labelNames: [...this.labelNames],
      ...(this.merge ? { merge: this.merge } : {}),
      ...(this.buckets ? { buckets: [...this.buckets] } : {}),
      series: [...this.series.values()].map(copySeries),
    };
  }
}

export class Counter {
  constructor(private readonly f: Family) {}
  /** Adds `by` (default 1) to the series of `labels`. */
  inc(labels: LabelValues = {}, by = 1): void {
    if (!(by >= 0)) throw new TypeError('a counter only goes up');
    this.f.at(labels).value! += by;
  }
  /** Makes the series exist at zero: a counter is scraped from the start, before its first event. */
  zero(labels: LabelValues = {}): void {
    this.f.at(labels);
  }
}

export class Gauge {
  constructor(private readonly f: Family) {}
  set(value: number, labels: LabelValues = {}): void {
    this.f.at(labels).value = value;
  }
}

export class Histogram {
  constructor(
    private readonly f: Family,
    private readonly bounds: readonly number[],
  ) {}
  /** Records one observation (seconds). */
  observe(value: number, labels: LabelValues = {}): void {
    const s = this.f.at(labels);
    let i = 0;
    while (i < this.bounds.length && value > this.bounds[i]!) i++;
    s.counts![i]!++;
    s.sum! += value;
  }
  zero(labels: LabelValues = {}): void {
    this.f.at(labels);
  }
}

/** The metrics of one process. Names are unique; a series exists once used or zeroed. */
export class MetricsRegistry {
  private readonly families = new Map<string, Family>();

  private add(
    name: string,
    help: string,
    type: MetricType,
    labels: readonly string[],
    merge?: GaugeMerge,
    b?: number[],
  ) {
    if (this.families.has(name)) throw new TypeError(`metric ${name} is registered twice`);
    const f = new Family(name, help, type, labels, merge, b);
    this.families.set(name, f);
    return f;
  }

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return new Counter(this.add(name, help, 'counter', labelNames));
  }

  /** `merge`: how the primary combines its workers' values (default sum). */
  gauge(name: string, help: string, labelNames: readonly string[] = [], merge: GaugeMerge = 'sum'): Gauge {
    return new Gauge(this.add(name, help, 'gauge', labelNames, merge));
  }

  histogram(name: string, help: string, labelNames: readonly string[], buckets: readonly number[]): Histogram {
    for (let i = 1; i < buckets.length; i++)
      if (!(buckets[i]! > buckets[i - 1]!)) throw new TypeError(`${name}: buckets must increase`);
    return new Histogram(this.add(name, help, 'histogram', labelNames, undefined, [...buckets]), buckets);
  }

  snapshot(): MetricsSnapshot {
    return { families: [...this.families.values()].map((f) => f.snapshot()) };
  }

  /** The Prometheus text of this registry alone. */
  render(): string {
    return renderPrometheus(this.snapshot());
  }
}

function mergeValue(a: number, b: number, how: GaugeMerge): number {
  return how === 'max' ? Math.max(a, b) : how === 'min' ? Math.min(a, b) : a + b;
}

/**
 * One snapshot from several processes' (same registrations): counters and histograms add up per
 * series, gauges by their `merge`. A series present in one only is taken as it is.
 */
export function mergeSnapshots(list: readonly MetricsSnapshot[]): MetricsSnapshot {
  const out = new Map<string, { f: FamilySnapshot; series: Map<string, SeriesSnapshot> }>();
  for (const snap of list) {
    for (const f of snap.families) {
      let m = out.get(f.name);
      if (!m) out.set(f.name, (m = { f: { ...f, series: [] }, series: new Map() }));
      for (const s of f.series) {
        const k = s.labels.join('\u0000');
        const prev = m.series.get(k);
        if (!prev) {
          m.series.set(k, copySeries(s));
          continue;
        }
        if (prev.counts && s.counts) {
          prev.counts = prev.counts.map((c, i) => c + (s.counts![i] ?? 0));
          prev.sum = (prev.sum ?? 0) + (s.sum ?? 0);
        } else prev.value = mergeValue(prev.value ?? 0, s.value ?? 0, f.type === 'gauge' ? (f.merge ?? 'sum') : 'sum');
      }
    }
  }
  return { families: [...out.values()].map(({ f, series }) => ({ ...f, series: [...series.values()] })) };
}

const escapeLabel = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
const escapeHelp = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');

function number(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function labelText(names: readonly string[], values: readonly string[], extra?: [string, string]): string {
  const pairs = names.map((n, i) => `${n}="${escapeLabel(values[i] ?? '')}"`);
  if (extra) pairs.push(`${extra[0]}="${escapeLabel(extra[1])}"`);
  return pairs.length ? `{${pairs.join(',')}}` : '';
}

/** The Prometheus text exposition format (0.0.4) of a snapshot. */
export function renderPrometheus(snap: MetricsSnapshot): string {
  const lines: string[] = [];
  for (const f of snap.families) {
    lines.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
    for (const s of f.series) {
      if (f.type !== 'histogram') {
        lines.push(`${f.name}${labelText(f.labelNames, s.labels)} ${number(s.value ?? 0)}`);
        continue;
      }
      const bounds = f.buckets ?? [];
      let cumulative = 0;
      for (const [i, le] of [...bounds.map(String), '+Inf'].entries()) {
        cumulative += s.counts?.[i] ?? 0;
        lines.push(`${f.name}_bucket${labelText(f.labelNames, s.labels, ['le', le])} ${cumulative}`);
      }
      lines.push(`${f.name}_sum${labelText(f.labelNames, s.labels)} ${number(s.sum ?? 0)}`);
      lines.push(`${f.name}_count${labelText(f.labelNames, s.labels)} ${cumulative}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/** The content type of renderPrometheus's text. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
