/** Field checks for libnetwork requests: each failure names the field and what was expected. */
export type Body = Record<string, unknown>;

const ID = /^[A-Za-z0-9_.-]{1,128}$/;

export function asBody(raw: unknown): Body {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new Error('request body must be a JSON object');
  return raw as Body;
}

export function id(body: Body, field: string): string {
  const v = body[field];
  if (typeof v !== 'string' || !ID.test(v)) throw new Error(`${field} must be a Docker ID (letters and digits), got ${show(v)}`);
  return v;
}

export function optionalString(body: Body, field: string): string {
  const v = body[field];
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string' || v.length > 256) throw new Error(`${field} must be a string, got ${show(v)}`);
  return v;
}

export function optionalBool(body: Body, field: string): boolean {
  const v = body[field];
  if (v === undefined || v === null) return false;
  if (typeof v !== 'boolean') throw new Error(`${field} must be true or false, got ${show(v)}`);
  return v;
}

export function optionalObject(body: Body, field: string): Body {
  const v = body[field];
  if (v === undefined || v === null) return {};
  return asBody(v);
}

export function stringMap(body: Body, field: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(optionalObject(body, field))) {
    if (typeof v !== 'string') throw new Error(`${field}.${k} must be a string, got ${show(v)}`);
    out[k] = v;
  }
  return out;
}

export function optionalArray(body: Body, field: string): Body[] {
  const v = body[field];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new Error(`${field} must be a list, got ${show(v)}`);
  return v.map(asBody);
}

function show(v: unknown): string {
  const s = v === undefined ? 'undefined' : JSON.stringify(v);
  return s.length > 60 ? `${s.slice(0, 60)}...` : s;
}
