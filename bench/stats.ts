/** min/median/max of a sample, and a ratio of medians: how results are reported. */
export interface Summary {
  n: number;
  min: number;
  median: number;
  max: number;
}

export function summarize(xs: number[]): Summary {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  const median = s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { n: s.length, min: s[0]!, median, max: s[s.length - 1]! };
}

export const ms = (x: number) => `${x.toFixed(1)} ms`;

export function row(label: string, s: Summary, fmt: (x: number) => string = ms): string {
  return `| ${label} | ${s.n} | ${fmt(s.min)} | ${fmt(s.median)} | ${fmt(s.max)} |`;
}

/**
 * Median of per-round ratios a[i]/b[i]: each round measures both back to
 * back, so slow drift of the machine cancels out of every ratio.
 */
export function pairedRatio(a: number[], b: number[]): number {
  return summarize(a.map((x, i) => x / b[i]!)).median;
}
