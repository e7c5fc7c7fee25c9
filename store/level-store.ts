import { ClassicLevel } from 'classic-level';
import { KVStore, Op } from './kvstore';

export type StoreObserver = (op: string, seconds: number, ok: boolean) => void;

/**
 * Embedded LevelDB backend. Writes are synced to disk before they resolve so
 * that an address answered to Docker is never forgotten, even on power loss.
 * LevelDB's LOCK file keeps a second agent off the same state directory.
 */
export class LevelStore implements KVStore {
  private chain: Promise<unknown> = Promise.resolve();
  private observe: StoreObserver = () => undefined;

  private constructor(private readonly db: ClassicLevel) {}

  /** Where each operation's duration and outcome go (metrics, once they exist). */
  observeWith(observe: StoreObserver): void {
    this.observe = observe;
  }

  static async open(dir: string): Promise<LevelStore> {
    const db = new ClassicLevel<string, string>(dir, { keyEncoding: 'utf8', valueEncoding: 'utf8' });
    try {
      await db.open();
    } catch (err) {
      const cause = (err as { cause?: Error }).cause;
      throw new Error(`cannot open state store ${dir}: ${cause?.message ?? (err as Error).message}`);
    }
    return new LevelStore(db);
  }

  get(key: string): Promise<string | undefined> {
    return this.timed('get', async () => (await this.db.get(key)) ?? undefined);
  }

  list(prefix: string): Promise<Array<[string, string]>> {
    return this.timed('list', async () => {
      const out: Array<[string, string]> = [];
      for await (const [k, v] of this.db.iterator({ gte: prefix, lt: prefix + '\uffff' })) out.push([k, v]);
      return out;
    });
  }

  batch(ops: Op[], opts: { durable?: boolean } = {}): Promise<void> {
    const sync = opts.durable ?? true;
    return this.timed('batch', () => this.serial(() => (ops.length === 0 ? Promise.resolve() : this.db.batch(ops, { sync }))));
  }

  create(key: string, value: string): Promise<boolean> {
    return this.timed('create', () =>
      this.serial(async () => {
        if ((await this.db.get(key)) !== undefined) return false;
        await this.db.put(key, value, { sync: true });
        return true;
      }),
    );
  }

  private async timed<T>(op: string, fn: () => Promise<T>): Promise<T> {
    const t0 = process.hrtime.bigint();
    const seconds = () => Number(process.hrtime.bigint() - t0) / 1e9;
    try {
      const v = await fn();
      this.observe(op, seconds(), true);
      return v;
    } catch (err) {
      this.observe(op, seconds(), false);
      throw err;
    }
  }

  /**
   * LevelDB may apply concurrent writes in any order; a release followed by a
   * re-allocation of the same address must reach the disk in that order, and
   * check-then-write must be atomic. One queue gives both.
   */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  close(): Promise<void> {
    return this.db.close();
  }
}
