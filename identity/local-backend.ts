import { KVStore } from '../store/kvstore';
import { Identity } from './allocator';
import { IdentityBackend } from './backend';

const ID_PREFIX = 'identity/v1/id/';
const VALUE_PREFIX = 'identity/v1/value/';

/** Identities of one host, in its embedded store: number -> labels, and labels -> number, each written create-only. */
export class LocalIdentities implements IdentityBackend {
  constructor(private readonly store: KVStore) {}

  async load(): Promise<Identity[]> {
    return (await this.store.list(ID_PREFIX)).map(([k, v]) => ({ id: Number(k.slice(ID_PREFIX.length)), labels: JSON.parse(v) as string[] }));
  }

  async allocate(labels: string[], pick: () => number): Promise<number> {
    const key = JSON.stringify(labels);
    for (let tries = 0; tries < 1000; tries++) {
      const existing = await this.store.get(VALUE_PREFIX + key);
      if (existing !== undefined) return Number(existing);
      const candidate = pick();
      if (!(await this.store.create(`${ID_PREFIX}${candidate}`, key))) continue; // someone else took the number
      if (await this.store.create(VALUE_PREFIX + key, String(candidate))) return candidate;
      // Lost the race for this label set: give the number back and use the winner's.
      await this.store.batch([{ type: 'del', key: `${ID_PREFIX}${candidate}` }]);
    }
    throw new Error(`could not allocate an identity for ${labels.join(',')}: the store keeps refusing`);
  }

  use(): void {
    // one host: being allocated is being used
  }

  async release(identity: Identity): Promise<void> {
    await this.store.batch([
      { type: 'del', key: `${ID_PREFIX}${identity.id}` },
      { type: 'del', key: VALUE_PREFIX + JSON.stringify(identity.labels) },
    ]);
  }
}
