import { Logger } from 'winston';
import { deleteRoute, replaceGatewayRoute } from '../datapath/rtnl';
import { formatCidr, parseAddress, parseCidr } from '../net/address';
import { NodeRegistry, internalIP } from './registry';

/**
 * Native routing: each other host's container range is routed through that
 * host's address on the underlay, and its packets arrive as they were sent;
 * the receiver knows the sender's identity from the ipcache. Routes follow
 * the node registry: a host that leaves takes its route with it.
 */
export class NativeRoutes {
  private readonly installed = new Map<string, string>(); // range -> gateway
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly nodes: NodeRegistry,
    private readonly log: Logger,
  ) {}

  start(): Promise<void> {
    this.nodes.onChanged(() => {
      void this.sync();
    });
    return this.sync();
  }

  /** The routes of every range this host has routed to, as `range via gateway`. */
  list(): Array<{ range: string; via: string }> {
    return [...this.installed].map(([range, via]) => ({ range, via }));
  }

  private sync(): Promise<void> {
    this.chain = this.chain.then(() =>
      this.apply().catch((err: unknown) => {
        this.log.error(`routes to other nodes: ${(err as Error).message}`);
      }),
    );
    return this.chain;
  }

  private async apply(): Promise<void> {
    const want = new Map<string, string>();
    for (const n of this.nodes.remote()) {
      const via = internalIP(n);
      if (n.IPv4AllocCIDR && via) want.set(n.IPv4AllocCIDR, via);
    }
    for (const [range, via] of want) {
      if (this.installed.get(range) === via) continue;
      const c = parseCidr(range);
      await replaceGatewayRoute(4, c.base, c.bits, parseAddress(via).value);
      this.installed.set(range, via);
      this.log.info(`route to ${range} via ${via}`);
    }
    for (const range of [...this.installed.keys()]) {
      if (want.has(range)) continue;
      const c = parseCidr(range);
      await deleteRoute(4, c.base, c.bits);
      this.installed.delete(range);
      this.log.info(`route to ${formatCidr(c)} removed: its node left`);
    }
  }
}
