import Docker from 'dockerode';
import { Logger } from 'winston';
import { fromDocker } from './labels';

export interface ContainerInfo {
  containerId: string;
  name: string;
  labels: string[];
}

/** Retries after Join, in ms: the connect event normally answers first, within ~30 ms. */
const SCHEDULE = [25, 50, 100, 200, 400, 800, 1600, 3200, 6400, 12800];

/**
 * Finds which container an endpoint belongs to, and its labels, without ever
 * taking a container's lock: the network's endpoint list (libnetwork data)
 * names the container as soon as Join returns, and the container list is
 * lock-free. Both arrive long before the container's process starts.
 */
export class ContainerResolver {
  private readonly pending = new Map<string, { networkId: string; timer: NodeJS.Timeout | undefined; attempt: number }>();
  /** Networks being inspected now, and whether another look was asked for meanwhile. */
  private readonly looking = new Map<string, { again: boolean }>();
  private events?: NodeJS.ReadableStream;
  private stopped = false;
  private onResolved: (dockerEndpointId: string, info: ContainerInfo) => Promise<void> = () => Promise.resolve();

  constructor(
    private readonly docker: Docker,
    private readonly log: Logger,
  ) {}

  /** Where each endpoint's container, once found, is delivered (one consumer: the endpoint manager). */
  deliverTo(onResolved: (dockerEndpointId: string, info: ContainerInfo) => Promise<void>): void {
    this.onResolved = onResolved;
  }

  /** Follows network connect events; reconnects if the engine restarts. */
  async start(): Promise<void> {
    try {
      const stream = await this.docker.getEvents({ filters: { type: ['network'], event: ['connect'] } });
      this.events = stream;
      let buf = '';
      stream.on('data', (chunk: Buffer) => {
        buf += chunk.toString();
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line.trim()) this.onEvent(line);
        }
      });
      const again = () => {
        if (!this.stopped) setTimeout(() => void this.start(), 1000).unref();
      };
      stream.on('end', again);
      stream.on('error', again);
      this.log.debug('following Docker network events');
    } catch (err) {
      this.log.warn(`cannot follow Docker events (${(err as Error).message}); retrying, endpoints resolve by polling meanwhile`);
      if (!this.stopped) setTimeout(() => void this.start(), 2000).unref();
    }
  }

  stop(): void {
    this.stopped = true;
    (this.events as { destroy?: () => void } | undefined)?.destroy?.();
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
  }

  /** Starts looking for the container of a freshly joined endpoint. */
  watch(dockerEndpointId: string, networkId: string): void {
    if (this.pending.has(dockerEndpointId)) return;
    this.pending.set(dockerEndpointId, { networkId, timer: undefined, attempt: 0 });
    this.schedule(dockerEndpointId);
  }

  unwatch(dockerEndpointId: string): void {
    clearTimeout(this.pending.get(dockerEndpointId)?.timer);
    this.pending.delete(dockerEndpointId);
  }

  private schedule(dockerEndpointId: string): void {
    const p = this.pending.get(dockerEndpointId);
    if (!p) return;
    const delay = SCHEDULE[p.attempt++];
    if (delay === undefined) {
      this.log.warn(`no container found for endpoint ${dockerEndpointId.slice(0, 12)}: it stays fail-closed (identity init)`);
      this.pending.delete(dockerEndpointId);
      return;
    }
    p.timer = setTimeout(() => {
      p.timer = undefined;
      void this.tryNetwork(p.networkId);
    }, delay);
    p.timer.unref();
  }

  private onEvent(line: string): void {
    try {
      const ev = JSON.parse(line) as { Action?: string; Actor?: { ID?: string } };
      if (ev.Action === 'connect' && ev.Actor?.ID && [...this.pending.values()].some((p) => p.networkId === ev.Actor!.ID)) {
        void this.tryNetwork(ev.Actor.ID);
      }
    } catch {
      /* a malformed event line is not ours to fix */
    }
  }

  /**
   * At most one network inspect in flight per network, however many events
   * arrive: dockerd 20.10's endpoint count can drift when network lookups race
   * endpoint churn (moby#42119; reproduced here with its own bridge driver),
   * so we add as few of them as we can.
   */
  private async tryNetwork(networkId: string): Promise<void> {
    const busy = this.looking.get(networkId);
    if (busy) {
      busy.again = true;
      return;
    }
    const look = { again: true };
    this.looking.set(networkId, look);
    try {
      while (look.again) {
        look.again = false;
        await this.lookAt(networkId);
      }
    } finally {
      this.looking.delete(networkId);
    }
  }

  /** One look at the network resolves every pending endpoint on it. */
  private async lookAt(networkId: string): Promise<void> {
    const waiting = [...this.pending].filter(([, p]) => p.networkId === networkId).map(([id]) => id);
    if (waiting.length === 0) return;
    let containers: Record<string, { EndpointID?: string; Name?: string }> = {};
    try {
      containers = ((await this.docker.getNetwork(networkId).inspect()) as { Containers?: typeof containers }).Containers ?? {};
    } catch (err) {
      this.log.debug(`network inspect ${networkId.slice(0, 12)}: ${(err as Error).message}`);
    }
    for (const epId of waiting) {
      if (!this.pending.has(epId)) continue;
      const found = Object.entries(containers).find(([, c]) => c.EndpointID === epId);
      // A look made for another endpoint (or an event) spends none of this one's attempts.
      if (!found) {
        if (!this.pending.get(epId)!.timer) this.schedule(epId);
        continue;
      }
      const [containerId, c] = found;
      try {
        const [summary] = await this.docker.listContainers({ all: true, filters: { id: [containerId] } });
        if (!summary || !this.pending.has(epId)) continue;
        this.unwatch(epId);
        await this.onResolved(epId, { containerId, name: (c.Name ?? summary.Names[0] ?? '').replace(/^\//, ''), labels: fromDocker(summary.Labels) });
      } catch (err) {
        this.log.warn(`resolving endpoint ${epId.slice(0, 12)}: ${(err as Error).message}`);
        const p = this.pending.get(epId);
        if (p && !p.timer) this.schedule(epId);
      }
    }
  }
}
