/** Cilium's policy rule JSON, as users write it (v1.x). */
export interface Selector {
  matchLabels?: Record<string, string>;
  matchExpressions?: Array<{ key: string; operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'; values?: string[] }>;
}

export interface PortProtocol {
  port: string;
  protocol?: string;
}

/**
 * One HTTP request pattern; a request must match every field given. method,
 * path and host are extended regular expressions matched against the whole
 * value; each headers entry ("Name" or "Name: value") must be present.
 */
export interface HttpRule {
  method?: string;
  path?: string;
  host?: string;
  headers?: string[];
}

/** L7 rules of a port: its requests are judged by the proxy (proxy/). */
export interface L7Rules {
  http?: HttpRule[];
}

export interface PortRule {
  ports?: PortProtocol[];
  rules?: L7Rules;
}

export interface CidrSet {
  cidr: string;
  except?: string[];
}

export interface IngressRule {
  fromEndpoints?: Selector[];
  fromRequires?: Selector[];
  fromCIDR?: string[];
  fromCIDRSet?: CidrSet[];
  fromEntities?: string[];
  toPorts?: PortRule[];
}

/** Cilium's toServices entry: a service by name (Docker has no namespaces: "default" or none). */
export interface ServiceRef {
  k8sService?: { serviceName: string; namespace?: string };
}

export interface EgressRule {
  toEndpoints?: Selector[];
  toServices?: ServiceRef[];
  toRequires?: Selector[];
  toCIDR?: string[];
  toCIDRSet?: CidrSet[];
  toEntities?: string[];
  toPorts?: PortRule[];
}

export interface RuleLabel {
  key: string;
  value?: string;
  source?: string;
}

export interface Rule {
  endpointSelector: Selector;
  ingress?: IngressRule[];
  egress?: EgressRule[];
  labels?: RuleLabel[];
  description?: string;
}

export const ENTITIES = ['all', 'world', 'host', 'init', 'cluster', 'remote-node', 'health', 'unmanaged'] as const;
export type Entity = (typeof ENTITIES)[number];

/** A rule's labels as "source:key=value" strings (source defaults to "unspec", as in Cilium). */
export function ruleLabels(r: Rule): string[] {
  return (r.labels ?? []).map((l) => `${l.source ?? 'unspec'}:${l.key}${l.value ? `=${l.value}` : ''}`).sort();
}
