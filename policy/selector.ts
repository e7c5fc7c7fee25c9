import { parse, selectorKey } from '../labels/labels';
import { Selector } from './rule';

/** Whether a label set (["container:id=app1", ...]) satisfies a selector. A key without a source matches any source. */
export function matches(sel: Selector, labels: string[]): boolean {
  const parsed = labels.map(parse);
  const valuesOf = (k: string): string[] => {
    const { source, key } = selectorKey(k);
    return parsed.filter((l) => l.key === key && (source === 'any' || l.source === source)).map((l) => l.value);
  };
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (!valuesOf(k).includes(v)) return false;
  for (const e of sel.matchExpressions ?? []) {
    const vs = valuesOf(e.key);
    const ok =
      e.operator === 'Exists'
        ? vs.length > 0
        : e.operator === 'DoesNotExist'
          ? vs.length === 0
          : e.operator === 'In'
            ? vs.some((v) => e.values!.includes(v))
            : !vs.some((v) => e.values!.includes(v));
    if (!ok) return false;
  }
  return true;
}

export function isEmpty(sel: Selector): boolean {
  return Object.keys(sel.matchLabels ?? {}).length === 0 && (sel.matchExpressions ?? []).length === 0;
}
