import { IPv4, IPv6, Validator, collapseIPv6Number } from 'ip-num';

/**
 * Addresses and prefixes as numbers, for the whole agent: IPAM does
 * arithmetic on them, the datapath writes them into maps and routes, policy
 * matches CIDRs. Text is parsed once, at the edges.
 */
export type Family = 4 | 6;

/** One address. */
export interface Address {
  family: Family;
  value: bigint;
}

/** A prefix held as numbers so that pools can do arithmetic without re-parsing. */
export interface Cidr {
  family: Family;
  base: bigint;
  bits: number;
}

/** Bits in an address of the family: 32 or 128. */
export const familyBits = (f: Family): number => (f === 4 ? 32 : 128);

export function familyOf(text: string): Family | undefined {
  if (Validator.isValidIPv4String(text)[0]) return 4;
  if (Validator.isValidIPv6String(text)[0]) return 6;
  return undefined;
}

/** Parses a bare address ("10.0.0.1", "f00d::1"); throws a message fit for a user. */
export function parseAddress(text: string): Address {
  const family = familyOf(text);
  if (family === 4) return { family, value: IPv4.fromDecimalDottedString(text).getValue() };
  if (family === 6) return { family, value: IPv6.fromString(text).getValue() };
  throw new Error(`"${text}" is not an IPv4 or IPv6 address`);
}

/** Parses "a.b.c.d/n" or "x::/n". The address must be the start of the prefix. */
export function parseCidr(text: string): Cidr {
  const [addr, len, extra] = text.split('/');
  if (addr === undefined || len === undefined || extra !== undefined || !/^\d{1,3}$/.test(len)) {
    throw new Error(`"${text}" is not a CIDR prefix (expected address/length)`);
  }
  const { family, value } = parseAddress(addr);
  const bits = Number(len);
  if (bits > familyBits(family)) throw new Error(`"${text}": prefix length ${bits} is longer than ${familyBits(family)}`);
  const cidr = { family, base: value, bits };
  if ((value & hostMask(cidr)) !== 0n) {
    throw new Error(`"${text}" has host bits set; did you mean ${formatCidr({ ...cidr, base: value & ~hostMask(cidr) })}?`);
  }
  return cidr;
}

/** ADDRESS:PORT as users write it: [ADDRESS]:PORT for IPv6. */
export function formatHostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

export function formatAddress(family: Family, value: bigint): string {
  return family === 4 ? new IPv4(value).toString() : collapseIPv6Number(new IPv6(value).toString());
}

export function formatCidr(c: Cidr): string {
  return `${formatAddress(c.family, c.base)}/${c.bits}`;
}

function hostMask(c: Cidr): bigint {
  return (1n << BigInt(familyBits(c.family) - c.bits)) - 1n;
}

export function lastAddress(c: Cidr): bigint {
  return c.base | hostMask(c);
}

export function size(c: Cidr): bigint {
  return hostMask(c) + 1n;
}

export function contains(c: Cidr, family: Family, value: bigint): boolean {
  return c.family === family && value >= c.base && value <= lastAddress(c);
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  return a.family === b.family && a.base <= lastAddress(b) && b.base <= lastAddress(a);
}

/** The full-length prefix of one address: what containers get (/32, /128). */
export function hostPrefix(family: Family, value: bigint): string {
  return `${formatAddress(family, value)}/${familyBits(family)}`;
}
