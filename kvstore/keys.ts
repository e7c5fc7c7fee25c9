/**
 * Cilium's kvstore layout (what `cilium kvstore get` and etcdctl show users),
 * the one place key names are spelled.
 */
export const STATE = 'cilium/state/';
export const IDENTITY_ID = `${STATE}identities/v1/id/`;
export const IDENTITY_VALUE = `${STATE}identities/v1/value/`;
export const IDENTITY_LOCK = `${STATE}identities/v1/locks/`;

export const nodesPrefix = (cluster: string): string => `${STATE}nodes/v1/${cluster}/`;
export const ipPrefix = (cluster: string): string => `${STATE}ip/v1/${cluster}/`;
/** Not Cilium's (its ranges come from Kubernetes or the operator): each host range claimed once, by node name. */
export const rangesPrefix = (cluster: string): string => `${STATE}noderanges/v1/${cluster}/`;
export const rangeKey = (cluster: string, cidr: string): string => rangesPrefix(cluster) + cidr.replace('/', '-');

/**
 * A label set as Cilium writes it in keys and values: `source:key=value;` per
 * label, sorted. A ';' or '%' inside a label is percent-encoded so the list
 * always splits back into the labels it came from.
 */
export function encodeLabels(labels: string[]): string {
  return [...labels]
    .sort()
    .map((l) => `${l.replace(/%/g, '%25').replace(/;/g, '%3B')};`)
    .join('');
}

export function decodeLabels(text: string): string[] {
  return text
    .split(';')
    .filter((l) => l !== '')
    .map((l) => l.replace(/%3B/g, ';').replace(/%25/g, '%'));
}
