import { readFileSync } from 'fs';
import { Etcd3, IKeyValue, Lease, Watcher } from 'etcd3';
import { Logger } from 'winston';

export interface EtcdOptions {
  endpoints: string[];
  /** PEM files for TLS (https:// endpoints): the CA that signed etcd's certificate, and this agent's client pair. */
  trustedCaFile?: string;
  certFile?: string;
  keyFile?: string;
  /** This agent's keys (identity users, its node, its endpoints' addresses) vanish this long after it stops renewing them. */
  leaseTtlSeconds: number;
}

export interface KvstoreStatus {
  backend: 'etcd';
  endpoints: string[];
  connected: boolean;
  /** The session lease every key of this agent is under, as etcd numbers it (hex, as etcdctl prints it). */
  lease?: string;
  leaseTtlSeconds: number;
  lastError?: string;
}

/** A change to a watched prefix: entries that now hold a value, and keys that are gone. */
export type MirrorListener = (entries: ReadonlyMap<string, string>) => void;

/**
 * The cluster's shared state on etcd. Host-scope state (endpoints, addresses)
 * stays in the embedded store; what other hosts must see goes here. Keys
 * written `leased` are tied to this agent's session lease: they vanish when the
 * agent stops renewing it (it died, or lost etcd for longer than the TTL), and
 * are written again under a new lease when the old one is found lost.
 */
export class EtcdStore {
  private lease?: Lease;
  private leaseId?: string | undefined;
  private readonly leased = new Map<string, string>();
  private connected = false;
  private lastError?: string;
  private closed = false;
  private regranting?: Promise<void> | undefined;
  private readonly mirrors: PrefixMirror[] = [];
  private probe?: NodeJS.Timeout;

  private constructor(
    private readonly client: Etcd3,
    private readonly opts: EtcdOptions,
    private readonly log: Logger,
  ) {}

  /** Waits up to timeoutMs for etcd to answer (the agent does not start on a cluster store it never reached). */
  static async connect(opts: EtcdOptions, log: Logger, timeoutMs = 30_000): Promise<EtcdStore> {
    const read = (f?: string) => (f ? readFileSync(f) : undefined);
    const ca = read(opts.trustedCaFile);
    const cert = read(opts.certFile);
    const key = read(opts.keyFile);
    const client = new Etcd3({
      hosts: opts.endpoints,
      dialTimeout: 3000,
      // Unary calls give up instead of hanging on an unreachable etcd; watches and keep-alives are streams.
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + 5000 }),
      ...(ca ? { credentials: { rootCertificate: ca, ...(cert && key ? { privateKey: key, certChain: cert } : {}) } } : {}),
    });
    const store = new EtcdStore(client, opts, log);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        await store.grantLease();
        store.startProbe();
        return store;
      } catch (err) {
        if (Date.now() > deadline) {
          client.close();
          throw new Error(`kvstore etcd at ${opts.endpoints.join(',')} unreachable: ${(err as Error).message}`);
        }
        await sleep(1000);
      }
    }
  }

  status(): KvstoreStatus {
    return {
      backend: 'etcd',
      endpoints: this.opts.endpoints,
      connected: this.connected,
      ...(this.leaseId ? { lease: BigInt(this.leaseId).toString(16) } : {}),
      leaseTtlSeconds: this.opts.leaseTtlSeconds,
      ...(this.lastError ? { lastError: this.lastError } : {}),
    };
  }

  get(key: string): Promise<string | undefined> {
    return this.call(async () => (await this.client.get(key).string()) ?? undefined);
  }

  /** Every entry under prefix, in key order. */
  list(prefix: string): Promise<Array<[string, string]>> {
    return this.call(async () => {
      const all = await this.client.getAll().prefix(prefix).strings();
      return Object.entries(all).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    });
  }

  /** Writes key only if it does not exist (compare-and-set on its create revision); false when someone holds it. */
  create(key: string, value: string, opts: { leased?: boolean } = {}): Promise<boolean> {
    return this.call(async () => {
      const put = this.client.put(key).value(value);
      if (opts.leased) put.lease(this.mustLease());
      const r = await this.client.if(key, 'Create', '==', 0).then(put).commit();
      if (r.succeeded && opts.leased) this.leased.set(key, value);
      return r.succeeded;
    });
  }

  put(key: string, value: string, opts: { leased?: boolean } = {}): Promise<void> {
    return this.call(async () => {
      const put = this.client.put(key).value(value);
      if (opts.leased) put.lease(this.mustLease());
      await put.exec();
      if (opts.leased) this.leased.set(key, value);
    });
  }

  delete(key: string): Promise<void> {
    this.leased.delete(key);
    return this.call(async () => {
      await this.client.delete().key(key).exec();
    });
  }

  /** Runs fn holding the cluster-wide lock named key (etcd's lock recipe: held under its own lease). */
  locked<T>(key: string, fn: () => Promise<T>): Promise<T> {
    return this.call(() =>
      this.client
        .lock(key)
        .ttl(Math.max(5, Math.min(30, this.opts.leaseTtlSeconds)))
        .do(fn),
    );
  }

  /** A live copy of every entry under prefix: listed, then followed; listed again after each reconnect. */
  async mirror(prefix: string, listener: MirrorListener): Promise<PrefixMirror> {
    const m = new PrefixMirror(this.client, prefix, listener, this.log, (ok, err) => {
      this.noteOutcome(ok, err);
    });
    await m.start();
    this.mirrors.push(m);
    return m;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.probe);
    for (const m of this.mirrors) await m.stop();
    // Left to expire, not revoked: an agent restarting puts its keys under a new lease before the old one ends,
    // so other hosts never see this host's endpoints vanish for the restart.
    this.lease?.release();
    this.client.close();
  }

  /** What status() says is at most a few seconds old, even when nothing else talks to etcd (the keep-alives are a TTL/3 apart). */
  private startProbe(): void {
    this.probe = setInterval(() => {
      this.client
        .get('cilium/.heartbeat')
        .options({ deadline: Date.now() + 2000 })
        .then(
          () => {
            this.noteOutcome(true);
          },
          (err: unknown) => {
            this.noteOutcome(false, err as Error);
          },
        );
    }, 3000);
    this.probe.unref();
  }

  private mustLease(): string {
    if (!this.leaseId) throw new Error('no etcd session lease (etcd unreachable)');
    return this.leaseId;
  }

  private async grantLease(): Promise<void> {
    const lease = this.client.lease(this.opts.leaseTtlSeconds, { autoKeepAlive: true });
    lease.on('lost', (err) => {
      if (this.closed || this.lease !== lease) return;
      this.log.warn(`etcd session lease lost (${err.message}): this host's keys are written again under a new one`);
      this.noteOutcome(false, err);
      this.leaseId = undefined;
      void this.regrant();
    });
    lease.on('keepaliveSucceeded', () => {
      this.noteOutcome(true);
    });
    lease.on('keepaliveFailed', () => {
      this.noteOutcome(false, new Error('lease keep-alive failed'));
    });
    try {
      this.leaseId = await lease.grant();
    } catch (err) {
      lease.release();
      throw err;
    }
    this.lease = lease;
    this.noteOutcome(true);
  }

  /** Until etcd answers again: a new lease, then every leased key of this agent under it. */
  private regrant(): Promise<void> {
    this.regranting ??= (async () => {
      for (let delay = 500; !this.closed; delay = Math.min(delay * 2, 5000)) {
        try {
          await this.grantLease();
          for (const [k, v] of this.leased) await this.client.put(k).value(v).lease(this.leaseId!).exec();
          this.log.info(`etcd session lease renewed: ${this.leased.size} keys written again`);
          return;
        } catch (err) {
          this.noteOutcome(false, err as Error);
          await sleep(delay);
        }
      }
    })().finally(() => {
      this.regranting = undefined;
    });
    return this.regranting;
  }

  private async call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      const v = await fn();
      this.noteOutcome(true);
      return v;
    } catch (err) {
      this.noteOutcome(false, err as Error);
      throw new Error(`kvstore: ${(err as Error).message}`);
    }
  }

  private noteOutcome(ok: boolean, err?: Error): void {
    if (ok && !this.connected) this.log.info('kvstore etcd reachable');
    if (!ok && this.connected) this.log.warn(`kvstore etcd unreachable: ${err?.message ?? 'unknown error'}`);
    this.connected = ok;
    if (err) this.lastError = err.message;
  }
}

/** Keeps entries equal to etcd's under one prefix, and says when they changed. */
export class PrefixMirror {
  readonly entries = new Map<string, string>();
  private watcher?: Watcher;
  private stale = false;
  private stopped = false;

  constructor(
    private readonly client: Etcd3,
    private readonly prefix: string,
    private readonly listener: MirrorListener,
    private readonly log: Logger,
    private readonly outcome: (ok: boolean, err?: Error) => void,
  ) {}

  async start(): Promise<void> {
    const revision = await this.relist();
    await this.watch(revision);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.watcher?.cancel().catch(() => undefined);
  }

  private async relist(): Promise<string> {
    const r = await this.client.getAll().prefix(this.prefix).exec();
    this.entries.clear();
    for (const kv of r.kvs) this.entries.set(kv.key.toString(), kv.value.toString());
    this.listener(this.entries);
    return r.header.revision;
  }

  private async watch(revision: string): Promise<void> {
    const w = await this.client
      .watch()
      .prefix(this.prefix)
      .startRevision(String(BigInt(revision) + 1n))
      .create();
    this.watcher = w;
    w.on('put', (kv: IKeyValue) => {
      this.entries.set(kv.key.toString(), kv.value.toString());
      this.listener(this.entries);
    });
    w.on('delete', (kv: IKeyValue) => {
      if (this.entries.delete(kv.key.toString())) this.listener(this.entries);
    });
    w.on('disconnected', (err) => {
      this.stale = true;
      this.outcome(false, err);
    });
    // The watcher resumes where it left off; a fresh list also covers what a compaction took away meanwhile.
    w.on('connected', () => {
      if (!this.stale || this.stopped) return;
      this.stale = false;
      this.relist().then(
        () => {
          this.outcome(true);
        },
        (err: unknown) => {
          this.stale = true;
          this.log.warn(`kvstore: listing ${this.prefix} after reconnecting failed: ${(err as Error).message}`);
        },
      );
    });
    w.on('error', (err) => {
      this.log.warn(`kvstore: watch on ${this.prefix} failed (${err.message}): listing again`);
      void w.cancel().catch(() => undefined);
      if (!this.stopped) void this.restart();
    });
  }

  private async restart(): Promise<void> {
    for (let delay = 500; !this.stopped; delay = Math.min(delay * 2, 5000)) {
      try {
        await this.watch(await this.relist());
        return;
      } catch {
        await sleep(delay);
      }
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
