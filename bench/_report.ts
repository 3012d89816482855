// What bench/run.ts measures and how it prints it.

/** One measured figure. `value` is in nanoseconds for times, operations/s for rates. */
export interface Figure {
  section: string;
  name: string;
  value: number;
  unit: "ns" | "ops/s";
  /** Percentiles and notes, already formatted. */
  detail?: string;
  /** The command that produced the figure. */
  command: string;
  /** One of this library's locks (drawn in colour), not a comparison. */
  ours: boolean;
}

/** A time in ns as ns/µs/ms, or a rate in operations/s as k/s or M/s. */
export function format(value: number, unit: Figure["unit"]): string {
  if (unit === "ops/s") {
    return value >= 1e6 ? `${(value / 1e6).toFixed(2)} M/s` : `${(value / 1e3).toFixed(1)} k/s`;
  }
  if (value < 1e3) return `${value.toFixed(1)} ns`;
  if (value < 1e6) return `${(value / 1e3).toFixed(2)} µs`;
  return `${(value / 1e6).toFixed(2)} ms`;
}
