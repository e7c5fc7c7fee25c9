/** Quantiles from a Prometheus histogram's cumulative buckets, interpolated as histogram_quantile does. */
export function histogramQuantiles(text: string, metric: string, labelKey: string, qs: number[]): Map<string, { count: number; q: number[] }> {
  const buckets = new Map<string, Array<[number, number]>>();
  const re = new RegExp(`^${metric}_bucket\\{([^}]*)\\} (\\S+)$`);
  for (const line of text.split('\n')) {
    const m = re.exec(line);
    if (!m) continue;
    const labels = Object.fromEntries([...m[1]!.matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1]!, x[2]!]));
    if (labels.outcome && labels.outcome !== 'success') continue;
    const key = labels[labelKey]!;
    const le = labels.le === '+Inf' ? Infinity : Number(labels.le);
    (buckets.get(key) ?? buckets.set(key, []).get(key)!).push([le, Number(m[2])]);
  }
  const out = new Map<string, { count: number; q: number[] }>();
  for (const [key, bs] of buckets) {
    bs.sort((a, b) => a[0] - b[0]);
    const total = bs[bs.length - 1]![1];
    const q = qs.map((p) => {
      const rank = p * total;
      let prevLe = 0;
      let prevCount = 0;
      for (const [le, count] of bs) {
        if (count >= rank) {
          if (le === Infinity) return prevLe;
          return prevLe + (le - prevLe) * ((rank - prevCount) / Math.max(1, count - prevCount));
        }
        prevLe = le;
        prevCount = count;
      }
      return prevLe;
    });
    out.set(key, { count: total, q });
  }
  return out;
}
