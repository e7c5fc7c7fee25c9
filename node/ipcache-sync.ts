import { Logger } from 'winston';
import { IpcacheMap } from '../datapath/bpf/maps';
import { Endpoint } from '../endpoint/endpoint';
import { EndpointRegistry } from '../endpoint/registry';
import { RESERVED } from '../identity/reserved';
import { EtcdStore } from '../kvstore/etcd';
import { ipPrefix } from '../kvstore/keys';
import { Cidr, contains, familyBits, parseAddress } from '../net/address';
import { NodeRegistry, internalIP } from './registry';

/** An address and its identity as Cilium keeps it in the kvstore (its field names). */
export interface IPIdentityPair {
  IP: string;
  Mask: null;
  HostIP: string;
  ID: number;
  Key: 0;
  Metadata: string;
}

/**
 * The cluster's address -> identity map. Each ready endpoint of this host is
 * announced under its session lease (a write that fails is retried until
 * etcd answers); every other host's endpoints, and the hosts themselves
 * (remote-node), are written into the datapath's ipcache, so policy judges
 * their packets by identity. The one writer of those remote entries.
 */
export class IpcacheSync {
  private readonly want = new Map<string, IPIdentityPair | null>();
  private flushing = false;
  private retry?: NodeJS.Timeout | undefined;
  private remoteWritten = new Map<string, number>(); // address -> identity in the BPF ipcache
  private kvEntries: ReadonlyMap<string, string> = new Map();

  constructor(
    private readonly kv: EtcdStore,
    private readonly cluster: string,
    private readonly nodes: NodeRegistry,
    private readonly ipcache: IpcacheMap,
    /** This host's own ranges: an announcement from another host inside them is a conflict, never written. */
    private readonly ownRanges: Cidr[],
    private readonly log: Logger,
  ) {}

  get hostIP(): string {
    return internalIP(this.nodes.self)!;
  }

  async start(registry: EndpointRegistry): Promise<void> {
    registry.onSaved((_before, after) => {
      this.announce(after);
    });
    registry.onRemoving((ep) => {
      for (const ip of [ep.ipv4, ep.ipv6]) if (ip) this.set(ip, null);
    });
    await this.kv.mirror(ipPrefix(this.cluster), (entries) => {
      this.kvEntries = entries;
      this.writeRemote();
    });
    this.nodes.onChanged(() => {
      this.writeRemote();
    });
    // What a previous run announced and no endpoint holds any more goes; every ready endpoint is announced again.
    const held = new Set(registry.list().flatMap((e) => [e.ipv4, e.ipv6].filter((x): x is string => Boolean(x))));
    for (const [k, v] of this.kvEntries) {
      const pair = parsePair(v);
      if (pair?.HostIP === this.hostIP && !held.has(pair.IP)) this.set(pair.IP, null, k);
    }
    for (const ep of registry.list()) this.announce(ep);
  }

  /** Remote addresses in the datapath's ipcache (the reconciler leaves them alone). */
  remoteAddresses(): Set<string> {
    return new Set(this.remoteWritten.keys());
  }

  stop(): void {
    if (this.retry) clearTimeout(this.retry);
  }

  private announce(ep: Endpoint): void {
    const ready = ep.state === 'ready';
    for (const ip of [ep.ipv4, ep.ipv6]) {
      if (!ip) continue;
      this.set(ip, ready ? { IP: ip, Mask: null, HostIP: this.hostIP, ID: ep.identity, Key: 0, Metadata: ep.containerName ?? '' } : null);
    }
  }

  private set(ip: string, pair: IPIdentityPair | null, key = ipPrefix(this.cluster) + ip): void {
    this.want.set(key, pair);
    void this.flush();
  }

  private async flush(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      for (const [key, pair] of [...this.want]) {
        try {
          if (pair) await this.kv.put(key, JSON.stringify(pair), { leased: true });
          else await this.kv.delete(key);
          if (this.want.get(key) === pair) this.want.delete(key);
        } catch (err) {
          this.log.debug(`ipcache ${key} waits for the kvstore: ${(err as Error).message}`);
          this.retry ??= setTimeout(() => {
            this.retry = undefined;
            void this.flush();
          }, 1000);
          return;
        }
      }
    } finally {
      this.flushing = false;
    }
    if (this.want.size) void this.flush();
  }

  private writeRemote(): void {
    const next = new Map<string, number>();
    for (const n of this.nodes.remote()) {
      const ip = internalIP(n);
      if (ip) next.set(ip, RESERVED['remote-node']);
    }
    for (const v of this.kvEntries.values()) {
      const pair = parsePair(v);
      if (!pair || pair.HostIP === this.hostIP) continue;
      if (this.inOwnRange(pair.IP)) {
        this.log.warn(`node at ${pair.HostIP} announces ${pair.IP}, inside this host's range: ignored`);
        continue;
      }
      next.set(pair.IP, pair.ID);
    }
    for (const [ip, id] of next) {
      if (this.remoteWritten.get(ip) === id) continue;
      const a = parseAddress(ip);
      this.ipcache.set(a.family, a.value, familyBits(a.family), id);
    }
    for (const ip of this.remoteWritten.keys()) {
      if (next.has(ip)) continue;
      const a = parseAddress(ip);
      this.ipcache.delete(a.family, a.value, familyBits(a.family));
    }
    this.remoteWritten = next;
  }

  private inOwnRange(ip: string): boolean {
    const a = parseAddress(ip);
    return this.ownRanges.some((c) => contains(c, a.family, a.value));
  }
}

function parsePair(text: string): IPIdentityPair | undefined {
  try {
    const p = JSON.parse(text) as IPIdentityPair;
    return typeof p.IP === 'string' && typeof p.HostIP === 'string' && Number.isInteger(p.ID) ? p : undefined;
  } catch {
    return undefined;
  }
}
