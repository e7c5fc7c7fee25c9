import { Logger } from 'winston';
import { EtcdStore } from '../kvstore/etcd';
import { nodesPrefix } from '../kvstore/keys';

/** A host of the cluster as it announces itself (Cilium's node object, its field names). */
export interface ClusterNode {
  Name: string;
  Cluster: string;
  /** Cilium's address types; this agent announces its InternalIP. */
  IPAddresses: Array<{ Type: string; IP: string }>;
  IPv4AllocCIDR?: string;
  IPv6AllocCIDR?: string;
  EncryptionKey: 0;
}

export function internalIP(n: ClusterNode): string | undefined {
  return n.IPAddresses.find((a) => a.Type === 'InternalIP')?.IP;
}

/**
 * The cluster's hosts: this one announced under its session lease (it leaves
 * the list by itself when it dies), the others followed from the kvstore.
 * The one owner of what is known of other hosts; routes and the ipcache follow it.
 */
export class NodeRegistry {
  private all = new Map<string, ClusterNode>();
  private readonly listeners: Array<() => void> = [];

  private constructor(
    readonly self: ClusterNode,
    private readonly log: Logger,
  ) {}

  static async join(kv: EtcdStore, self: ClusterNode, log: Logger): Promise<NodeRegistry> {
    const r = new NodeRegistry(self, log);
    await kv.put(nodesPrefix(self.Cluster) + self.Name, JSON.stringify(self), { leased: true });
    await kv.mirror(nodesPrefix(self.Cluster), (entries) => {
      r.followed(entries);
    });
    log.info(`joined cluster ${self.Cluster} as node ${self.Name}`, { node: self.Name, ip: internalIP(self) });
    return r;
  }

  onChanged(listener: () => void): void {
    this.listeners.push(listener);
  }

  /** Every host, this one first. */
  list(): ClusterNode[] {
    return [this.self, ...[...this.all.values()].filter((n) => n.Name !== this.self.Name)];
  }

  remote(): ClusterNode[] {
    return this.list().slice(1);
  }

  private followed(entries: ReadonlyMap<string, string>): void {
    const next = new Map<string, ClusterNode>();
    for (const [k, v] of entries) {
      try {
        const n = JSON.parse(v) as ClusterNode;
        if (n.Name && Array.isArray(n.IPAddresses)) next.set(n.Name, n);
      } catch {
        this.log.warn(`kvstore: node entry ${k} is not a node object: ignored`);
      }
    }
    const seen = (m: Map<string, ClusterNode>) => JSON.stringify([...m.entries()].sort());
    if (seen(next) === seen(this.all)) return;
    for (const name of this.all.keys()) if (!next.has(name) && name !== this.self.Name) this.log.info(`node ${name} left the cluster`, { node: name });
    for (const [name, n] of next)
      if (!this.all.has(name) && name !== this.self.Name) this.log.info(`node ${name} joined the cluster`, { node: name, ip: internalIP(n) });
    this.all = next;
    for (const l of this.listeners) l();
  }
}
