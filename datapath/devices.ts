import { readFileSync } from 'fs';
import { Logger } from 'winston';
import { Cidr, Family, formatAddress, formatCidr, parseAddress } from '../net/address';
import type { Maps } from './bpf/loader';
import { isOwnDevice } from './host-addresses';
import { AddressEntry, HostLink, listAddresses, listLinks } from './rtnl';

/** Docker's bridges: what leaves through them stays on this host, and the engine masquerades its own. */
const isDockerBridge = (name: string) => name === 'docker0' || /^br-[0-9a-f]{12}$/.test(name);

function isGlobal(a: Pick<AddressEntry, 'family' | 'value'>): boolean {
  if (a.family === 4) return a.value >> 24n !== 127n && a.value >> 16n !== 0xa9fen; // not loopback, not 169.254/16
  return a.value !== 1n && a.value >> 118n !== 0x3fan; // not ::1, not fe80::/10
}

export interface MasqueradeDevice {
  name: string;
  ifindex: number;
  ipv4?: string;
  ipv6?: string;
}

/**
 * The masquerade source ports: a range beside the host's ephemeral ports
 * (net.ipv4.ip_local_port_range, which IPv6 shares), so that no connection
 * of the host's own takes a port a translation holds for the same peer.
 */
export function masqueradePorts(rangeFile = '/proc/sys/net/ipv4/ip_local_port_range'): { min: number; max: number } {
  const [lo, hi] = readFileSync(rangeFile, 'utf8').trim().split(/\s+/).map(Number) as [number, number];
  if (65535 - hi >= 1024) return { min: hi + 1, max: 65535 };
  if (lo - 1024 >= 1024) return { min: 1024, max: lo - 1 };
  throw new Error(
    `net.ipv4.ip_local_port_range is ${lo}-${hi}: no 1,024 ports are left beside it for masquerading (narrow it, or run with --enable-masquerade=false)`,
  );
}

/**
 * The one owner of the device maps: the host devices the device program
 * sits on (replies to masqueraded flows, packets to published ports), with
 * the address endpoint traffic takes when masqueraded through each (the
 * device's first global address per family, as the kernel would pick; none
 * with masquerade off), and the destinations never masqueraded. Devices are
 * looked at again periodically: a device that appears later is used, one
 * that goes away is dropped.
 */
export class HostDevices {
  private current = new Map<number, MasqueradeDevice>();
  private timer?: NodeJS.Timeout;
  private readonly missingLogged = new Set<string>();
  private also: Cidr[] = [];

  constructor(
    private readonly dp: { maps: Pick<Maps, 'natDevices' | 'natExclude'>; attachNetdev(ifindex: number): void },
    private readonly cfg: { masquerade: boolean; devices?: string[]; noMasqueradeTo: Cidr[] },
    private readonly log: Logger,
  ) {}

  /** The devices masqueraded through (none with masquerade off). */
  devices(): MasqueradeDevice[] {
    return this.cfg.masquerade ? [...this.current.values()] : [];
  }

  /** Every destination never masqueraded: the configured ones and those of excludeAlso. */
  excluded(): Cidr[] {
    const all = new Map([...this.cfg.noMasqueradeTo, ...this.also].map((c) => [formatCidr(c), c]));
    return [...all.values()];
  }

  /** More destinations reached as they are (the cluster's ranges, as hosts come and go), on top of the configured ones. */
  excludeAlso(cidrs: Cidr[]): void {
    this.also = cidrs;
    this.dp.maps.natExclude.replaceAll(this.excluded().map((c) => ({ family: c.family, base: c.base, bits: c.bits })));
  }

  async start(intervalMs: number): Promise<void> {
    this.dp.maps.natExclude.replaceAll(this.excluded().map((c) => ({ family: c.family, base: c.base, bits: c.bits })));
    await this.sync();
    this.timer = setInterval(() => void this.sync().catch((err: unknown) => this.log.warn(`host devices: ${(err as Error).message}`)), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Writes the devices as they are now, attaching the device program to each new one. */
  async sync(): Promise<void> {
    const links = await listLinks();
    const want = selectDevices(links, await listAddresses(), this.cfg.devices);
    for (const name of this.cfg.devices ?? []) {
      if (!want.some((d) => d.name === name) && !this.missingLogged.has(name)) {
        this.missingLogged.add(name);
        this.log.warn(`--devices: ${name} ${links.some((l) => l.name === name) ? 'has no global address' : 'does not exist'}: not used (yet)`);
      }
    }
    const next = new Map<number, MasqueradeDevice>();
    const as = (d: MasqueradeDevice) => (this.cfg.masquerade ? [d.ipv4, d.ipv6].filter(Boolean).join(' and ') : '');
    for (const d of want) {
      const before = this.current.get(d.ifindex);
      if (before?.name !== d.name) {
        this.dp.attachNetdev(d.ifindex);
        this.log.info(this.cfg.masquerade ? `masquerading through ${d.name} as ${as(d)}` : `serving published ports on ${d.name}`, { device: d.name });
      }
      if (!before || as(before) !== as(d) || before.name !== d.name) {
        this.dp.maps.natDevices.set(
          d.ifindex,
          this.cfg.masquerade ? { ...(d.ipv4 ? { ipv4: parseAddress(d.ipv4).value } : {}), ...(d.ipv6 ? { ipv6: parseAddress(d.ipv6).value } : {}) } : {},
        );
      }
      next.set(d.ifindex, d);
    }
    for (const ifindex of this.dp.maps.natDevices.ifindexes()) {
      if (next.has(ifindex)) continue;
      this.dp.maps.natDevices.delete(ifindex);
      const gone = this.current.get(ifindex);
      this.log.info(`no longer using device ${gone?.name ?? `ifindex ${ifindex}`}`);
    }
    this.current = next;
  }
}

/** The devices to masquerade through, with the first global address of each family. */
export function selectDevices(links: HostLink[], addresses: AddressEntry[], named?: string[]): MasqueradeDevice[] {
  const out: MasqueradeDevice[] = [];
  for (const l of links) {
    const chosen = named ? named.includes(l.name) : l.name !== 'lo' && !isOwnDevice(l.name) && !l.name.startsWith('tmp') && !isDockerBridge(l.name);
    if (!chosen) continue;
    const first = (f: Family) => addresses.find((a) => a.index === l.index && a.family === f && isGlobal(a));
    const v4 = first(4);
    const v6 = first(6);
    if (!v4 && !v6) continue;
    out.push({ name: l.name, ifindex: l.index, ...(v4 ? { ipv4: formatAddress(4, v4.value) } : {}), ...(v6 ? { ipv6: formatAddress(6, v6.value) } : {}) });
  }
  return out;
}
