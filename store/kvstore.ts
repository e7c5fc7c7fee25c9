/**
 * The key-value store every piece of this host's persistent state goes
 * through (endpoints, addresses, rules), on LevelDB. What other hosts must
 * see (identities, nodes, endpoint addresses) goes to the cluster's etcd
 * instead (kvstore/etcd.ts), with --kvstore etcd.
 */
export type Op = { type: 'put'; key: string; value: string } | { type: 'del'; key: string };

export interface KVStore {
  get(key: string): Promise<string | undefined>;
  /** All entries whose key starts with prefix, in key order. */
  list(prefix: string): Promise<Array<[string, string]>>;
  /**
   * Applies every op or none, in order with every other write. Durable (on
   * disk, through power loss) before resolving unless durable is false: then
   * it survives a crash of the agent but not of the machine.
   */
  batch(ops: Op[], opts?: { durable?: boolean }): Promise<void>;
  /** Writes key only if absent; false when it already existed (compare-and-set). */
  create(key: string, value: string): Promise<boolean>;
  close(): Promise<void>;
}

export async function getJSON<T>(store: KVStore, key: string): Promise<T | undefined> {
  const raw = await store.get(key);
  return raw === undefined ? undefined : (JSON.parse(raw) as T);
}

export async function listJSON<T>(store: KVStore, prefix: string): Promise<T[]> {
  return (await store.list(prefix)).map(([, v]) => JSON.parse(v) as T);
}

export function putJSON(key: string, value: unknown): Op {
  return { type: 'put', key, value: JSON.stringify(value) };
}
