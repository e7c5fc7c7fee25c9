/** IP protocol numbers the agent speaks of, as the kernel and the BPF programs carry them. */
export const IPPROTO = { ANY: 0, ICMP: 1, TCP: 6, UDP: 17, ICMPV6: 58 } as const;

const NAMES: Record<number, string> = { 0: 'ANY', 1: 'ICMP', 6: 'TCP', 17: 'UDP', 58: 'ICMPv6' };

/** A protocol name (TCP, udp, ANY, ICMPv6...) to its number, or undefined when it names none. */
export function protocolNumber(name: string): number | undefined {
  // Upper-cased, a name can never reach Object.prototype's own (lower-case) keys.
  return (IPPROTO as Record<string, number>)[name.toUpperCase()];
}

/** A number as users read it (TCP, UDP, ICMP, ICMPv6, ANY), else "proto N". */
export function protocolName(n: number): string {
  return NAMES[n] ?? `proto ${n}`;
}
