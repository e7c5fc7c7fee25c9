import { RouterAddress, addRouterAddress, removeRouterAddress } from '../datapath/host-router';
import { parseAddress } from '../net/address';
import { KVStore, listJSON, putJSON } from '../store/kvstore';

export interface NetworkFamily {
  /** The pool as Docker stored it ("0.0.0.0/0" for host-range networks). */
  pool: string;
  /** Bare gateway address containers route through. */
  gateway: string;
  /** True when the gateway was added to cilium_host for this network (--subnet networks). */
  ownGateway: boolean;
}

export interface Network {
  id: string;
  ipv4?: NetworkFamily;
  ipv6?: NetworkFamily;
  createdAt: string;
}

const key = (id: string) => `network/${id}`;

/**
 * Docker networks of this driver, persisted (dockerd never replays
 * CreateNetwork), and the router addresses they put on cilium_host: the
 * host range's own, and the gateway of each --subnet network. The plugin and
 * the reconciler add and remove networks only through here.
 */
export class NetworkManager {
  private readonly byId = new Map<string, Network>();

  private constructor(
    private readonly store: KVStore,
    private readonly baseRouters: RouterAddress[],
  ) {}

  static async load(store: KVStore, baseRouters: RouterAddress[]): Promise<NetworkManager> {
    const m = new NetworkManager(store, baseRouters);
    for (const n of await listJSON<Network>(store, 'network/')) m.byId.set(n.id, n);
    return m;
  }

  /** Every address cilium_host must hold now. */
  routerAddresses(): RouterAddress[] {
    return [...this.baseRouters, ...this.list().flatMap((n) => (n.ipv4?.ownGateway ? [parseAddress(n.ipv4.gateway)] : []))];
  }

  get(id: string): Network | undefined {
    return this.byId.get(id);
  }

  list(): Network[] {
    return [...this.byId.values()];
  }

  /** Its gateway on cilium_host first (taken back if the record cannot be written), then the record. */
  async add(n: Network): Promise<void> {
    const gateway = n.ipv4?.ownGateway ? parseAddress(n.ipv4.gateway) : undefined;
    if (gateway) await addRouterAddress(gateway);
    try {
      await this.store.batch([putJSON(key(n.id), n)]);
    } catch (err) {
      if (gateway) await removeRouterAddress(gateway);
      throw err;
    }
    this.byId.set(n.id, n);
  }

  /** The record, then its gateway; a network not known is a no-op. */
  async remove(id: string): Promise<Network | undefined> {
    const n = this.byId.get(id);
    if (!n) return undefined;
    await this.store.batch([{ type: 'del', key: key(id) }]);
    this.byId.delete(id);
    if (n.ipv4?.ownGateway) await removeRouterAddress(parseAddress(n.ipv4.gateway));
    return n;
  }
}
