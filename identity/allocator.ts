import { Logger } from 'winston';
import { IdentityBackend } from './backend';
import { MIN_USER_IDENTITY, RESERVED, reservedLabels } from './reserved';

const MAX_IDENTITY = (1 << 24) - 1;

export interface Identity {
  id: number;
  labels: string[];
}

/**
 * Label set -> number, the same number for the same set, through the
 * backend's create-only writes: this host's store, or the cluster's kvstore
 * (then every host's identities are known here, followed as they change).
 * Local users are counted; an identity nobody here uses is released after a
 * grace period, so a restarting container keeps its number.
 */
export class IdentityAllocator {
  private readonly byId = new Map<number, Identity>();
  private readonly byKey = new Map<string, number>();
  private readonly refs = new Map<number, number>();
  private readonly releaseTimers = new Map<number, NodeJS.Timeout>();
  private next = MIN_USER_IDENTITY;
  private readonly changedListeners: Array<() => void> = [];

  private constructor(
    private readonly backend: IdentityBackend,
    private readonly log: Logger,
    private readonly graceMs: number,
  ) {}

  static async load(backend: IdentityBackend, log: Logger, graceMs: number): Promise<IdentityAllocator> {
    const a = new IdentityAllocator(backend, log, graceMs);
    for (const i of await backend.load()) a.remember(i);
    await backend.follow?.((all) => {
      a.followed(all);
    });
    return a;
  }

  /** Called after the set of identities changed other than by this host allocating (a release, another host), so policy follows. */
  onChanged(listener: () => void): void {
    this.changedListeners.push(listener);
  }

  /** Takes a reference on the identity of these (normalized) labels, allocating it if needed. */
  async acquire(labels: string[]): Promise<Identity> {
    const key = JSON.stringify(labels);
    let id = this.byKey.get(key);
    if (id === undefined) {
      id = await this.backend.allocate(labels, () => this.freeNumber());
      if (!this.byId.has(id)) this.log.info(`identity ${id} allocated`, { identity: id, labels });
      this.remember({ id, labels }); // its user regenerates policy once it is assigned
    } else if (!this.refs.has(id) && !this.releaseTimers.has(id)) this.backend.use(this.byId.get(id)!);
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

  private async forget(id: number): Promise<void> {
    const ident = this.byId.get(id);
    if (!ident || (this.refs.get(id) ?? 0) > 0) return;
    await this.backend.release(ident);
    if (!this.backend.follow) this.drop(ident); // a cluster's identity stays for as long as the kvstore holds it
    this.log.info(`identity ${id} released`, { identity: id, labels: ident.labels });
    this.changed();
  }

  /** The kvstore's identities now: others' new ones learnt, vanished ones dropped unless this host still uses them. */
  private followed(all: Identity[]): void {
    const seen = new Set<number>();
    let changed = false;
    for (const i of all) {
      seen.add(i.id);
      const had = this.byId.get(i.id);
      if (had && JSON.stringify(had.labels) === JSON.stringify(i.labels)) continue;
      if (had) this.drop(had);
      this.remember(i);
      changed = true;
    }
    for (const i of [...this.byId.values()]) {
      if (seen.has(i.id)) continue;
      if (this.refs.has(i.id))
        this.backend.use(i); // wiped from the kvstore under a user: written back
      else {
        this.drop(i);
        changed = true;
      }
    }
    if (changed) this.changed();
  }

  private changed(): void {
    for (const l of this.changedListeners) l();
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

  private drop(i: Identity): void {
    this.byId.delete(i.id);
    if (this.byKey.get(JSON.stringify(i.labels)) === i.id) this.byKey.delete(JSON.stringify(i.labels));
  }
}
