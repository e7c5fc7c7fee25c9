import { Logger } from 'winston';
import { KVStore } from '../store/kvstore';
import { MIN_USER_IDENTITY, RESERVED, reservedLabels } from './reserved';

const ID_PREFIX = 'identity/v1/id/';
const VALUE_PREFIX = 'identity/v1/value/';
const MAX_IDENTITY = (1 << 24) - 1;

export interface Identity {
  id: number;
  labels: string[];
}

/**
 * Label set -> number, the same number for the same set, through the store's
 * create-only writes (compare-and-set): two allocators racing for one set or
 * one number cannot both win, which is what makes an etcd backend safe too.
 * Local users are counted; an identity nobody uses is released after a grace
 * period, so a restarting container keeps its number.
 */
export class IdentityAllocator {
  private readonly byId = new Map<number, Identity>();
  private readonly byKey = new Map<string, number>();
  private readonly refs = new Map<number, number>();
  private readonly releaseTimers = new Map<number, NodeJS.Timeout>();
  private next = MIN_USER_IDENTITY;
  private readonly releasedListeners: Array<() => void> = [];

  private constructor(
    private readonly store: KVStore,
    private readonly log: Logger,
    private readonly graceMs: number,
  ) {}

  static async load(store: KVStore, log: Logger, graceMs: number): Promise<IdentityAllocator> {
    const a = new IdentityAllocator(store, log, graceMs);
    for (const [k, v] of await store.list(ID_PREFIX)) {
      const id = Number(k.slice(ID_PREFIX.length));
      a.remember({ id, labels: JSON.parse(v) as string[] });
    }
    return a;
  }

  /** Called after an identity is released, so policy stops naming it. */
  onReleased(listener: () => void): void {
    this.releasedListeners.push(listener);
  }

  /** Takes a reference on the identity of these (normalized) labels, allocating it if needed. */
  async acquire(labels: string[]): Promise<Identity> {
    const key = JSON.stringify(labels);
    let id = this.byKey.get(key);
    if (id === undefined) id = await this.allocate(labels, key);
    this.refs.set(id, (this.refs.get(id) ?? 0) + 1);
    const pending = this.releaseTimers.get(id);
    if (pending) {
      clearTimeout(pending);
      this.releaseTimers.delete(id);
    }
    return this.byId.get(id)!;
  }

  /** Drops a reference; the last one starts the grace period. */
  release(id: number): void {
    const n = (this.refs.get(id) ?? 0) - 1;
    if (n > 0 || !this.byId.has(id)) {
      this.refs.set(id, n);
      return;
    }
    this.refs.delete(id);
    if (id < MIN_USER_IDENTITY || this.releaseTimers.has(id)) return;
    const t = setTimeout(() => {
      this.releaseTimers.delete(id);
      // A store that fails now keeps the identity: the next grace period tries again.
      this.forget(id).catch((err: unknown) => {
        this.log.error(`releasing identity ${id} failed (retried after the grace period): ${(err as Error).message}`);
        this.release(id);
      });
    }, this.graceMs);
    t.unref();
    this.releaseTimers.set(id, t);
  }

  /** After endpoints took their references back at start: unused identities start their grace period. */
  sweepUnused(): void {
    for (const id of this.byId.keys()) if (!this.refs.has(id)) this.release(id);
  }

  get(id: number): Identity | undefined {
    const reserved = reservedLabels(id);
    return reserved ? { id, labels: reserved } : this.byId.get(id);
  }

  /** Every identity known: reserved ones and those allocated from labels. */
  list(): Identity[] {
    const reserved = Object.values(RESERVED)
      .filter((id) => id !== RESERVED.unknown)
      .map((id) => ({ id, labels: reservedLabels(id)! }));
    return [...reserved, ...[...this.byId.values()].sort((a, b) => a.id - b.id)];
  }

  users(id: number): number {
    return this.refs.get(id) ?? 0;
  }

  private async allocate(labels: string[], key: string): Promise<number> {
    for (let tries = 0; tries < 1000; tries++) {
      const existing = await this.store.get(VALUE_PREFIX + key);
      if (existing !== undefined) {
        this.remember({ id: Number(existing), labels });
        return Number(existing);
      }
      const candidate = this.freeNumber();
      if (!(await this.store.create(`${ID_PREFIX}${candidate}`, key))) {
        this.next = candidate + 1; // someone else took the number: try the next
        continue;
      }
      if (await this.store.create(VALUE_PREFIX + key, String(candidate))) {
        this.remember({ id: candidate, labels });
        this.log.info(`identity ${candidate} allocated`, { identity: candidate, labels });
        return candidate; // its user regenerates policy once it is assigned; a second pass here would be wasted
      }
      // Lost the race for this label set: give the number back and use the winner's.
      await this.store.batch([{ type: 'del', key: `${ID_PREFIX}${candidate}` }]);
    }
    throw new Error(`could not allocate an identity for ${labels.join(',')}: the store keeps refusing`);
  }

  private async forget(id: number): Promise<void> {
    const ident = this.byId.get(id);
    if (!ident || (this.refs.get(id) ?? 0) > 0) return;
    await this.store.batch([
      { type: 'del', key: `${ID_PREFIX}${id}` },
      { type: 'del', key: VALUE_PREFIX + JSON.stringify(ident.labels) },
    ]);
    this.byId.delete(id);
    this.byKey.delete(JSON.stringify(ident.labels));
    this.log.info(`identity ${id} released`, { identity: id, labels: ident.labels });
    for (const l of this.releasedListeners) l();
  }

  private freeNumber(): number {
    for (let i = 0; i <= MAX_IDENTITY - MIN_USER_IDENTITY; i++) {
      const n = MIN_USER_IDENTITY + ((this.next - MIN_USER_IDENTITY + i) % (MAX_IDENTITY - MIN_USER_IDENTITY));
      if (!this.byId.has(n)) {
        this.next = n + 1;
        return n;
      }
    }
    throw new Error('every identity number is in use');
  }

  private remember(i: Identity): void {
    this.byId.set(i.id, i);
    this.byKey.set(JSON.stringify(i.labels), i.id);
    if (i.id >= this.next) this.next = i.id + 1;
  }
}
