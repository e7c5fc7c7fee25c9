import { Logger } from 'winston';
import { RESERVED } from '../identity/reserved';
import { Family, familyBits, formatAddress } from '../net/address';
import { IpcacheMap } from './bpf/maps';
import { listAddresses, listLinks } from './rtnl';

export interface HostAddress {
  family: Family;
  value: bigint;
}

/** Devices of ours: endpoint veths and cilium_host/cilium_net. */
export const isOwnDevice = (name: string) => name.startsWith('lxc') || name.startsWith('cilium_');

/**
 * Every address of the host's links but our own devices', up or down: a
 * Docker bridge without containers has no carrier and is still the host.
 */
export async function localAddresses(): Promise<HostAddress[]> {
  const names = new Map((await listLinks()).map((l) => [l.index, l.name]));
  return (await listAddresses()).filter((a) => !isOwnDevice(names.get(a.index) ?? '')).map((a) => ({ family: a.family, value: a.value }));
}

/**
 * The one owner of the host identity's entries in the ipcache: the host's
 * addresses as they are now (Docker creates bridges, DHCP moves addresses),
 * and the router addresses on cilium_host. Only packets of the host's own
 * stack carry this identity in the datapath; the entries say which addresses
 * such packets may come from.
 */
export class HostAddressSync {
  private written = new Set<string>();
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly ipcache: IpcacheMap,
    private readonly routers: () => HostAddress[],
    private readonly log: Logger,
  ) {}

  async sync(): Promise<void> {
    const want = new Map<string, HostAddress>();
    for (const a of [...(await localAddresses()), ...this.routers()]) want.set(`${a.family}/${a.value}`, a);
    for (const [k, a] of want) if (!this.written.has(k)) this.ipcache.set(a.family, a.value, familyBits(a.family), RESERVED.host);
    for (const k of this.written) {
      if (want.has(k)) continue;
      const [family, value] = k.split('/');
      const f = Number(family) as Family;
      this.ipcache.delete(f, BigInt(value!), familyBits(f));
      this.log.info(`host address ${formatAddress(f, BigInt(value!))} is gone: no longer the host identity`);
    }
    this.written = new Set(want.keys());
  }

  start(intervalMs: number): void {
    this.timer = setInterval(() => void this.sync().catch((err: unknown) => this.log.warn(`host addresses: ${(err as Error).message}`)), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}
