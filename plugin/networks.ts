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

/** Docker networks of this driver, persisted: dockerd never replays CreateNetwork. */
export class NetworkRegistry {
  private readonly byId = new Map<string, Network>();

  private constructor(private readonly store: KVStore) {}

  static async load(store: KVStore): Promise<NetworkRegistry> {
    const reg = new NetworkRegistry(store);
    for (const n of await listJSON<Network>(store, 'network/')) reg.byId.set(n.id, n);
    return reg;
  }

  get(id: string): Network | undefined {
    return this.byId.get(id);
  }

  list(): Network[] {
    return [...this.byId.values()];
  }

  async save(n: Network): Promise<void> {
    await this.store.batch([putJSON(key(n.id), n)]);
    this.byId.set(n.id, n);
  }

  async remove(id: string): Promise<void> {
    await this.store.batch([{ type: 'del', key: key(id) }]);
    this.byId.delete(id);
  }
}
