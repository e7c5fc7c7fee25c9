import type { HttpRule } from './rule';

/** An HTTP rule ready to judge requests: each regular expression anchored at both ends, as Cilium anchors them. */
export interface CompiledHttpRule {
  method?: RegExp;
  path?: RegExp;
  host?: RegExp;
  headers: Array<{ name: string; value?: string }>;
}

/** What a rule looks at in a request. */
export interface HttpRequestView {
  method: string;
  /** The request target as sent: the path, with any query. */
  url: string;
  headers: Record<string, string | string[] | undefined>;
}

const anchored = (re: string | undefined) => (re === undefined ? undefined : new RegExp(`^(?:${re})$`));

export function compileHttpRule(r: HttpRule): CompiledHttpRule {
  return {
    ...(r.method !== undefined ? { method: anchored(r.method)! } : {}),
    ...(r.path !== undefined ? { path: anchored(r.path)! } : {}),
    ...(r.host !== undefined ? { host: anchored(r.host)! } : {}),
    headers: (r.headers ?? []).map((h) => {
      const colon = h.indexOf(':');
      return colon < 0 ? { name: h.trim().toLowerCase() } : { name: h.slice(0, colon).trim().toLowerCase(), value: h.slice(colon + 1).trim() };
    }),
  };
}

/** The path a rule's path pattern is matched against: the target without its query. */
export function requestPath(url: string): string {
  const q = url.search(/[?#]/);
  return q < 0 ? url : url.slice(0, q);
}

export function httpRuleMatches(r: CompiledHttpRule, req: HttpRequestView): boolean {
  if (r.method && !r.method.test(req.method)) return false;
  if (r.path && !r.path.test(requestPath(req.url))) return false;
  if (r.host && !r.host.test(String(req.headers.host ?? ''))) return false;
  return r.headers.every((h) => {
    const v = req.headers[h.name];
    if (v === undefined) return false;
    return h.value === undefined || (Array.isArray(v) ? v : [v]).some((x) => x === h.value);
  });
}
