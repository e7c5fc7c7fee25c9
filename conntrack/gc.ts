import { Logger } from 'winston';
import { CtMap, NatMap, monotonicSeconds } from '../datapath/bpf/maps';

export interface GcStats {
  /** Live entries after the last pass. */
  entries: number;
  runs: number;
  lastRun?: string;
  lastDurationMs?: number;
  lastExpired: number;
  lastOrphaned: number;
  /** Translations (masquerade's and services') past their lifetime removed by the last pass. */
  lastNatExpired: number;
  failures: number;
}

/**
 * The conntrack table's garbage collector, its one owner in the agent. The
 * datapath already ignores (and removes) an expired entry when it meets one;
 * this reclaims entries nobody meets again, and those of containers that are
 * gone, every interval; and translations (masquerade's, services') past
 * their lifetime.
 */
export class ConntrackGc {
  readonly stats: GcStats = { entries: 0, runs: 0, lastExpired: 0, lastOrphaned: 0, lastNatExpired: 0, failures: 0 };
  private timer?: NodeJS.Timeout;
  private running: Promise<GcStats> | undefined;

  constructor(
    private readonly ct: CtMap,
    private readonly nat: NatMap[],
    /** Owners (containers) whose connections are kept; others are removed. */
    private readonly owners: () => Set<number>,
    private readonly log: Logger,
    private readonly onPass?: (s: GcStats, scanned: number) => void,
  ) {}

  start(intervalMs: number): void {
    if (intervalMs <= 0) return;
    this.timer = setInterval(() => void this.run().catch(() => undefined), intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.running?.catch(() => undefined);
  }

  /** One pass now (passes never overlap); a failure is logged and counted, never thrown past the timer. */
  run(): Promise<GcStats> {
    this.running ??= this.pass().finally(() => (this.running = undefined));
    return this.running;
  }

  private async pass(): Promise<GcStats> {
    const t0 = process.hrtime.bigint();
    try {
      const now = monotonicSeconds();
      const r = await this.ct.collect(now, this.owners());
      let natExpired = 0;
      for (const m of this.nat) natExpired += (await m.collect(now)).expired;
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      Object.assign(this.stats, {
        entries: r.live,
        lastRun: new Date().toISOString(),
        lastDurationMs: Math.round(ms * 10) / 10,
        lastExpired: r.expired,
        lastOrphaned: r.orphaned,
        lastNatExpired: natExpired,
      });
      this.stats.runs++;
      this.onPass?.(this.stats, r.scanned);
      if (r.expired || r.orphaned)
        this.log.debug(`conntrack gc: ${r.expired} expired, ${r.orphaned} of gone containers removed, ${r.live} live (${ms.toFixed(1)} ms)`);
    } catch (err) {
      this.stats.failures++;
      this.log.error(`conntrack gc failed: ${(err as Error).message}`);
    }
    return this.stats;
  }
}
