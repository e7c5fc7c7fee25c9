import { Endpoint } from '../endpoint/endpoint';
import { EndpointRegistry } from '../endpoint/registry';
import { normalize } from '../labels/labels';

/** An error the API answers with its status and message. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** An endpoint by numeric ID, container name, or Docker endpoint/container ID prefix. */
export function findEndpoint(reg: EndpointRegistry, key: string): Endpoint {
  const all = reg.list();
  // An endpoint number first; Docker's hex IDs can be all digits too (533187766885), so they are tried next.
  const byNumber = /^\d+$/.test(key) ? all.filter((e) => e.id === Number(key)) : [];
  const matches = byNumber.length
    ? byNumber
    : all.filter((e) => e.containerName === key || e.dockerEndpointId.startsWith(key) || (e.containerId?.startsWith(key) ?? false));
  if (matches.length === 1) return matches[0]!;
  throw new HttpError(404, matches.length ? `"${key}" matches ${matches.length} endpoints: be more specific` : `endpoint ${key} not found`);
}

/** A query parameter as text: repeated ones joined by commas, nested ones (`?a[b]=c`) are no text. */
export function queryText(v: unknown): string {
  if (typeof v === 'string') return v;
  return Array.isArray(v) && v.every((x) => typeof x === 'string') ? v.join(',') : '';
}

/** "id=app1" means the container label; "reserved:host" and other sources are kept as written. */
export function userLabels(list: string[]): string[] {
  return normalize(list.filter(Boolean).map((l) => (/^[a-z-]+:/.test(l) ? l : `container:${l}`)));
}
