/**
 * Labels as Cilium writes them: "source:key=value". Docker labels get the
 * source "container". A label set is sorted and deduplicated, so the same
 * labels always make the same set (and the same identity).
 */
export interface Label {
  source: string;
  key: string;
  value: string;
}

/** Docker's and tools' own labels say nothing about what a workload is; they stay out of identities. */
export const IGNORED_LABEL_PREFIXES = ['com.docker.', 'org.opencontainers.', 'org.label-schema.', 'io.buildah.', 'desktop.docker.io/'];

export function fromDocker(labels: Record<string, string> | null | undefined): string[] {
  const out = Object.entries(labels ?? {})
    .filter(([k]) => !IGNORED_LABEL_PREFIXES.some((p) => k.startsWith(p)))
    .map(([k, v]) => format({ source: 'container', key: k, value: v }));
  return normalize(out);
}

export function normalize(labels: string[]): string[] {
  return [...new Set(labels)].sort();
}

export function format(l: Label): string {
  return `${l.source}:${l.key}${l.value === '' ? '' : `=${l.value}`}`;
}

/** Labels given by hand ("key=value" or "source:key=value"); one without a source gets "unspec", as in Cilium. */
export function fromUser(texts: string[]): string[] {
  if (texts.length === 0) throw new Error('give at least one label (key=value)');
  return normalize(
    texts.map((t) => {
      const l = parse(t);
      if (!l.key) throw new Error(`label "${t}" has no key`);
      if (l.source === 'reserved') throw new Error(`label "${t}": the reserved source is the agent's own`);
      return format({ ...l, source: l.source === 'any' ? 'unspec' : l.source });
    }),
  );
}

/** Parses "source:key=value"; "key=value" gets the source "any" (matches every source). */
export function parse(text: string): Label {
  const eq = text.indexOf('=');
  const head = eq < 0 ? text : text.slice(0, eq);
  const value = eq < 0 ? '' : text.slice(eq + 1);
  const colon = head.indexOf(':');
  if (colon < 0) return { source: 'any', key: head, value };
  return { source: head.slice(0, colon), key: head.slice(colon + 1), value };
}

/** Splits a selector key ("k", "container:k", "any:k") into source and key. */
export function selectorKey(k: string): { source: string; key: string } {
  const colon = k.indexOf(':');
  return colon < 0 ? { source: 'any', key: k } : { source: k.slice(0, colon), key: k.slice(colon + 1) };
}
