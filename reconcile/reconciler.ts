import { promises as fs } from 'fs';
import { join } from 'path';
import { Logger } from 'winston';
import { LINKS_DIR, PINNED_MAPS, type Maps } from '../datapath/bpf/loader';
import { staleEntrySweeps } from '../datapath/bpf/stale-entries';
import type { LinkReaper } from '../datapath/link-reaper';
import type { HostLink } from '../datapath/rtnl';
import { failpoint } from '../failpoint/failpoint';
import { Endpoint } from '../endpoint/endpoint';
import type { EndpointManager } from '../endpoint/manager';
import type { Ipam } from '../ipam/ipam';
import type { NetworkManager } from '../network/manager';
import type { DockerView } from './docker-view';

export interface ReconcileReport {
  at: string;
  reason: string;
  dockerReachable: boolean;
  endpointsRemoved: number;
  addressesReleased: number;
  poolsReleased: number;
  networksRemoved: number;
  linksRemoved: number;
  mapEntriesRemoved: number;
  programsReattached: number;
  pinsRemoved: number;
  repairs: string[];
}

export interface ReconcilerDeps {
  endpoints: Pick<EndpointManager, 'list' | 'resolveSoon' | 'delete' | 'isTransient' | 'tag' | 'creating' | 'isSettingUp' | 'reattachPrograms'>;
  networks: Pick<NetworkManager, 'list' | 'remove'>;
  ipam: Pick<Ipam, 'snapshot' | 'releaseAddress' | 'releaseEndpointAddress' | 'releasePool'>;
  maps: Maps;
  /** The host's links, as rtnetlink lists them. */
  links: () => Promise<HostLink[]>;
  reaper: Pick<LinkReaper, 'reap'>;
  /** What Docker holds on this driver's networks; throws when Docker cannot be asked. */
  dockerView: () => Promise<DockerView>;
  bpfRoot: string;
  /** Other hosts' endpoint addresses in the ipcache (a cluster's): not this host's to remove. */
  remoteAddresses?: () => Set<string>;
  log: Logger;
  /** Anything younger than this, relative to Docker's answer, may still be on its way: left alone. */
  graceMs: number;
  /** ms, for the untagged veths' clock. */
  now?: () => number;
}

/**
 * A veth pair exists untagged only between its creation and the alias being
 * set, milliseconds apart within one setup call (the kernel takes no alias at
 * creation). One seen untagged, with its peer still in the host namespace,
 * this long apart was left by an agent that died in between.
 */
export const UNTAGGED_ORPHAN_MS = 5_000;
const HOST_SIDE = /^lxc([0-9a-f]{12})$/;

/**
 * Brings the agent's persisted state, Docker's view and the kernel back in
 * line after crashes and missed calls: releases what no container owns,
 * re-adopts what still runs, and logs every repair. Nothing is removed on
 * Docker's say-so when Docker cannot be asked.
 */
export class Reconciler {
  private running: Promise<ReconcileReport> | undefined;
  last?: ReconcileReport;
  /** Untagged pairs of our naming scheme, by host-side name: when first seen. */
  private readonly untagged = new Map<string, number>();

  constructor(private readonly d: ReconcilerDeps) {}

  /** One pass at a time: a second caller waits for the pass under way. */
  run(reason: string): Promise<ReconcileReport> {
    this.running ??= this.pass(reason).finally(() => (this.running = undefined));
    return this.running;
  }

  private async pass(reason: string): Promise<ReconcileReport> {
    const r: ReconcileReport = {
      at: new Date().toISOString(),
      reason,
      dockerReachable: false,
      endpointsRemoved: 0,
      addressesReleased: 0,
      poolsReleased: 0,
      networksRemoved: 0,
      linksRemoved: 0,
      mapEntriesRemoved: 0,
      programsReattached: 0,
      pinsRemoved: 0,
      repairs: [],
    };
    const repair = (what: string) => {
      r.repairs.push(what);
      this.d.log.warn(`reconcile: ${what}`);
    };
    let view: DockerView | undefined;
    try {
      view = await this.d.dockerView();
      r.dockerReachable = true;
    } catch (err) {
      this.d.log.warn(`reconcile: Docker unreachable (${(err as Error).message}); only kernel state is checked`);
    }
    if (view) {
      await this.networks(view, r, repair);
      await this.endpoints(view, r, repair);
      await this.addresses(view, r, repair);
    }
    failpoint('reconcile-endpoints');
    await this.links(r, repair);
    failpoint('reconcile-links');
    await this.maps(r, repair);
    await this.programs(r, repair);
    await this.pins(r, repair);
    this.last = r;
    if (r.repairs.length) this.d.log.info(`reconcile (${reason}): ${r.repairs.length} repair(s)`);
    return r;
  }

  private old(at: number, view: DockerView): boolean {
    return at < view.takenAt - this.d.graceMs;
  }

  /** Whether a pass saw untagged veth pairs it could not yet call orphans: a later pass will. */
  get pending(): number {
    return this.untagged.size;
  }

  /** Networks Docker no longer has (removed while we were down). */
  private async networks(view: DockerView, r: ReconcileReport, repair: (s: string) => void): Promise<void> {
    for (const n of this.d.networks.list()) {
      if (view.networks.has(n.id) || !this.old(Date.parse(n.createdAt), view)) continue;
      await this.d.networks.remove(n.id);
      r.networksRemoved++;
      repair(`network ${n.id.slice(0, 12)} is gone from Docker: forgotten`);
    }
  }

  /** Endpoints whose container is gone; waiting endpoints whose container Docker names. */
  private async endpoints(view: DockerView, r: ReconcileReport, repair: (s: string) => void): Promise<void> {
    for (const ep of this.d.endpoints.list()) {
      const docker = view.networks.get(ep.dockerNetworkId)?.get(ep.dockerEndpointId);
      if (docker) {
        if (ep.state === 'waiting-for-identity') this.d.endpoints.resolveSoon(ep);
        continue;
      }
      if (!this.old(Date.parse(ep.createdAt), view) || (await handWiredAlive(ep))) continue;
      await this.d.endpoints.delete(ep.dockerEndpointId);
      for (const a of [ep.ipv4, ep.ipv6]) if (a && !view.addresses.has(a) && (await this.d.ipam.releaseEndpointAddress(a))) r.addressesReleased++;
      r.endpointsRemoved++;
      repair(
        `endpoint ${ep.id} (${ep.ifName}, ${[ep.ipv4, ep.ipv6].filter(Boolean).join(' ')}) has no container in Docker: removed and its addresses released`,
      );
    }
  }

  /** Addresses and pools that no container and no network holds. */
  private async addresses(view: DockerView, r: ReconcileReport, repair: (s: string) => void): Promise<void> {
    const held = new Set<string>(view.addresses);
    for (const ep of this.d.endpoints.list()) for (const a of [ep.ipv4, ep.ipv6]) if (a) held.add(a);
    for (const pool of this.d.ipam.snapshot()) {
      for (const a of pool.allocations) {
        if (a.owner !== 'endpoint' || held.has(a.address) || !this.old(a.at, view)) continue;
        await this.d.ipam.releaseAddress(pool.id, a.address);
        r.addressesReleased++;
        repair(`address ${a.address} of pool ${pool.id} has no container: released`);
      }
      if (pool.id.startsWith('subnet-') && !view.subnets.has(pool.cidr) && this.old(pool.createdAt, view)) {
        await this.d.ipam.releasePool(pool.id);
        r.poolsReleased++;
        repair(`pool ${pool.cidr} belongs to no network: released`);
      }
    }
  }

  /** Veths tagged as ours that no endpoint owns (a crash between creating one and recording it). */
  private async links(r: ReconcileReport, repair: (s: string) => void): Promise<void> {
    const links = await this.d.links();
    // Endpoints after the links: one whose setup ended during the listing has a link here and is known.
    const known = new Set(this.d.endpoints.list().map((e) => e.ifName));
    const names = new Set(links.map((l) => l.name));
    const now = (this.d.now ?? Date.now)();
    const stillUntagged = new Set<string>();
    for (const l of links) {
      if (known.has(l.name) || this.d.endpoints.isTransient(l.name)) continue;
      if (l.alias === this.d.endpoints.tag) {
        if (await this.d.reaper.reap(l.name)) {
          r.linksRemoved++;
          repair(`veth ${l.name} belongs to no endpoint: deleted (with its routes)`);
        }
        continue;
      }
      // Created, but its agent died before tagging it: both ends still here, no alias.
      const m = HOST_SIDE.exec(l.name);
      if (l.alias || !m || !names.has(`tmp${m[1]}`)) continue;
      stillUntagged.add(l.name);
      const since = this.untagged.get(l.name) ?? now;
      this.untagged.set(l.name, since);
      if (now - since < UNTAGGED_ORPHAN_MS) continue;
      if (await this.d.reaper.reap(l.name)) {
        r.linksRemoved++;
        repair(`veth pair ${l.name}/tmp${m[1]} was never tagged (its agent died while creating it): deleted`);
      }
      stillUntagged.delete(l.name);
    }
    for (const n of this.untagged.keys()) if (!stillUntagged.has(n)) this.untagged.delete(n);
  }

  /**
   * Map entries of endpoints, addresses and containers this agent no longer
   * has. One map at a time, each against a fresh look at the endpoints, with
   * the event loop free in between: at 1,000 endpoints the whole walk held
   * the agent's thread for ~100 ms, and a policy import waited behind it.
   */
  private async maps(r: ReconcileReport, repair: (s: string) => void): Promise<void> {
    let n = 0;
    for (const sweep of staleEntrySweeps(this.d.maps, this.d.endpoints, this.d.remoteAddresses)) {
      n += sweep();
      await new Promise((resolve) => setImmediate(resolve));
    }
    if (n) {
      r.mapEntriesRemoved += n;
      repair(`${n} BPF map entr${n === 1 ? 'y' : 'ies'} of gone endpoints removed`);
    }
  }

  /** Every endpoint's veth has this agent's programs. */
  private async programs(r: ReconcileReport, repair: (s: string) => void): Promise<void> {
    for (const ep of await this.d.endpoints.reattachPrograms()) {
      r.programsReattached++;
      repair(`endpoint ${ep.id}: programs were missing on ${ep.ifName}: attached`);
    }
  }

  /** Files under the BPF root that are not this version's maps. */
  private async pins(r: ReconcileReport, repair: (s: string) => void): Promise<void> {
    for (const f of await fs.readdir(this.d.bpfRoot).catch(() => [] as string[])) {
      if (PINNED_MAPS.includes(f) || f === LINKS_DIR) continue;
      await fs.rm(join(this.d.bpfRoot, f), { force: true });
      r.pinsRemoved++;
      repair(`pinned object ${f} under ${this.d.bpfRoot} is not ours: unpinned`);
    }
  }
}

/** Labelled through the API and owned by no container: Docker cannot vouch for it, its namespace can. */
async function handWiredAlive(ep: Endpoint): Promise<boolean> {
  if (ep.containerId || ep.state !== 'ready' || !ep.sandboxKey) return false;
  return fs.access(ep.sandboxKey).then(
    () => true,
    () => false,
  );
}
