import { Logger } from 'winston';
import { deleteLink } from './rtnl';

/**
 * Deletes endpoint veths off the engine's path. The kernel spends ~20 ms per
 * veth deletion (RCU grace periods under the rtnl lock), several times all the
 * rest of DeleteEndpoint; the endpoint's routes and map entries are removed
 * before the call returns, so what waits here carries no traffic and no state.
 * One deletion at a time: they serialise on the rtnl lock anyway.
 */
export class LinkReaper {
  private readonly queue = new Set<string>();
  private draining?: Promise<void>;

  constructor(private readonly log: Logger) {}

  schedule(name: string): void {
    this.queue.add(name);
    this.draining ??= this.drain();
  }

  /** A link waiting here is no orphan: reconciliation leaves it alone. */
  has(name: string): boolean {
    return this.queue.has(name);
  }

  get pending(): number {
    return this.queue.size;
  }

  /** Resolves once every scheduled link is gone (at shutdown, so none is left for the next start). */
  async idle(): Promise<void> {
    await this.draining;
  }

  private async drain(): Promise<void> {
    // A Set's iterator also visits names scheduled while it runs.
    for (const name of this.queue) {
      try {
        await deleteLink(name);
      } catch (err) {
        this.log.warn(`cannot delete ${name} (left for reconciliation): ${(err as Error).message}`, { ifName: name });
      }
      this.queue.delete(name);
    }
    this.draining = undefined;
  }
}
