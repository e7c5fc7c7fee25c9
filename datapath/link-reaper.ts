import { Worker } from 'worker_threads';
import { join } from 'path';
import { Logger } from 'winston';

/**
 * Deletes endpoint veths off the engine's path and off the agent's thread.
 * The kernel runs a netlink request inside the sender's sendmsg(), and a veth
 * deletion takes ~20 ms there (RCU grace periods under the rtnl lock): sent
 * from the main thread it would stall every plugin and API call meanwhile. A
 * worker thread with its own netlink socket sends them, one at a time (they
 * serialise on the rtnl lock anyway). The endpoint's map entries and record
 * are gone before a link is handed over here, so what waits carries no state.
 */
export class LinkReaper {
  /** Links scheduled, with whoever waits for each to be gone. */
  private readonly queue = new Map<string, Array<(deleted: boolean) => void>>();
  private readonly worker: Worker;
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly log: Logger) {
    this.worker = new Worker(join(__dirname, 'link-reaper-worker.js'));
    this.worker.unref();
    this.worker.on('message', (m: { name: string; deleted?: boolean; error?: string }) => {
      if (m.error) this.log.warn(`cannot delete ${m.name} (left for reconciliation): ${m.error}`, { ifName: m.name });
      const waiters = this.queue.get(m.name) ?? [];
      this.queue.delete(m.name);
      for (const w of waiters) w(m.deleted === true);
      if (this.queue.size === 0) for (const w of this.idleWaiters.splice(0)) w();
    });
    this.worker.on('error', (err) => this.log.error(`link deletion worker failed: ${err.message}`));
  }

  schedule(name: string): void {
    if (this.queue.has(name)) return;
    this.queue.set(name, []);
    this.worker.postMessage(name);
  }

  /** Deletes the link (with its routes and programs) and answers whether it was there. */
  reap(name: string): Promise<boolean> {
    return new Promise((resolve) => {
      this.schedule(name);
      this.queue.get(name)!.push(resolve);
    });
  }

  /** A link waiting here is no orphan: reconciliation leaves it alone. */
  has(name: string): boolean {
    return this.queue.has(name);
  }

  get pending(): number {
    return this.queue.size;
  }

  /** Resolves once every scheduled link is gone, then stops the worker (at shutdown, so none is left for the next start). */
  async close(): Promise<void> {
    if (this.queue.size) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    await this.worker.terminate();
  }
}
