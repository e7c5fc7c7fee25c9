import { Logger } from 'winston';
import { EtcdStore } from '../kvstore/etcd';
import { IDENTITY_ID, IDENTITY_LOCK, IDENTITY_VALUE, decodeLabels, encodeLabels } from '../kvstore/keys';
import { Identity } from './allocator';
import { IdentityBackend } from './backend';

/**
 * Identities shared by every host, in Cilium's layout: `id/<ID>` holds the
 * label set (written create-only, so a number has one owner), and each host
 * using it holds `value/<labels>/<node>` under its session lease, so a host
 * that dies stops counting as a user by itself. A new label set is allocated
 * under a cluster-wide lock on it, so two hosts never give it two numbers.
 * Numbers nobody uses any more stay allocated (Cilium's operator collects them;
 * nothing here does yet).
 */
export class ClusterIdentities implements IdentityBackend {
  constructor(
    private readonly kv: EtcdStore,
    private readonly node: string,
    private readonly log: Logger,
  ) {}

  async load(): Promise<Identity[]> {
    return parse(await this.kv.list(IDENTITY_ID));
  }

  async follow(onChange: (all: Identity[]) => void): Promise<void> {
    await this.kv.mirror(IDENTITY_ID, (entries) => {
      onChange(parse(entries));
    });
  }

  /** Waits for etcd: an endpoint with a new label set stays fail-closed (identity init) until it answers. */
  async allocate(labels: string[], pick: () => number): Promise<number> {
    const enc = encodeLabels(labels);
    for (let delay = 500; ; delay = Math.min(delay * 2, 5000)) {
      try {
        return await this.kv.locked(IDENTITY_LOCK + enc, async () => {
          const users = await this.kv.list(`${IDENTITY_VALUE}${enc}/`);
          const id = users.length ? Number(users[0]![1]) : await this.claimNumber(enc, pick);
          await this.kv.put(this.valueKey(enc), String(id), { leased: true });
          return id;
        });
      } catch (err) {
        this.log.warn(`identity for ${labels.join(',')} waits for the kvstore: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  private async claimNumber(enc: string, pick: () => number): Promise<number> {
    for (let tries = 0; tries < 1000; tries++) {
      const candidate = pick();
      if (await this.kv.create(`${IDENTITY_ID}${candidate}`, enc)) return candidate;
    }
    throw new Error(`no free identity number for ${decodeLabels(enc).join(',')}: every one tried was taken`);
  }

  /**
   * Known label sets need no round trip: the endpoint starts, and this host's
   * use is recorded when etcd answers (the number too, if a wiped kvstore lost it).
   */
  use(identity: Identity): void {
    const enc = encodeLabels(identity.labels);
    const write = async (delay: number): Promise<void> => {
      try {
        await this.kv.create(`${IDENTITY_ID}${identity.id}`, enc);
        await this.kv.put(this.valueKey(enc), String(identity.id), { leased: true });
      } catch {
        await new Promise((r) => setTimeout(r, delay));
        return write(Math.min(delay * 2, 5000));
      }
    };
    void write(500);
  }

  async release(identity: Identity): Promise<void> {
    await this.kv.delete(this.valueKey(encodeLabels(identity.labels)));
  }

  private valueKey(enc: string): string {
    return `${IDENTITY_VALUE}${enc}/${this.node}`;
  }
}

function parse(entries: Iterable<[string, string]>): Identity[] {
  const out: Identity[] = [];
  for (const [k, v] of entries) {
    const id = Number(k.slice(IDENTITY_ID.length));
    if (Number.isInteger(id) && id > 0) out.push({ id, labels: decodeLabels(v) });
  }
  return out;
}
