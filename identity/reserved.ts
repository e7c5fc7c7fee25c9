/** Cilium's reserved identities; numbers below 256 are never allocated from labels. */
export const RESERVED = {
  unknown: 0,
  host: 1,
  world: 2,
  unmanaged: 3,
  health: 4,
  init: 5,
  'remote-node': 6,
} as const;

export type ReservedName = keyof typeof RESERVED;

export const MIN_USER_IDENTITY = 256;
/** CIDR identities are local to this host, as in Cilium (1 << 24 and up). */
export const MIN_CIDR_IDENTITY = 1 << 24;

export function reservedLabels(id: number): string[] | undefined {
  const name = (Object.keys(RESERVED) as ReservedName[]).find((n) => RESERVED[n] === id);
  return name && name !== 'unknown' ? [`reserved:${name}`] : undefined;
}
