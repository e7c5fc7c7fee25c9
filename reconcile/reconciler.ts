import Docker from 'dockerode';
import { promises as fs } from 'fs';
import { join } from 'path';
import { Logger } from 'winston';
import { BpfDatapath, PINNED_MAPS } from '../datapath/bpf/loader';
import { failpoint } from '../failpoint/failpoint';
import { deleteLink, linkIndex, listLinks } from '../datapath/rtnl';
import { Endpoint } from '../endpoint/endpoint';
import { EndpointManager } from '../endpoint/manager';
import { RESERVED, MIN_CIDR_IDENTITY, MIN_USER_IDENTITY } from '../identity/reserved';
import { familyBits, formatAddress, parseAddress } from '../net/address';
import { Ipam } from '../ipam/ipam';
import { NetworkManager } from '../network/manager';
import { DockerView, dockerView } from './docker-view';

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
  manager: EndpointManager;
  networks: NetworkManager;
  ipam: Ipam;
  dp: BpfDatapath;
  docker: Docker;
  driver: string;
  bpfRoot: string;
  log: Logger;
  /** Anything younger than this, relative to Docker's answer, may still be on its way: left alone. */
  graceMs: number;
}

/**
 * Brings the agent's persisted state, Docker's view and the kernel back in
 * line after crashes and missed calls: releases what no container owns,
 * re-adopts what still runs, and logs every repair. Nothing is removed on
 * Docker's say-so when Docker cannot be asked.
 */
/**
 * A veth pair exists untagged only between its creation and the alias being
 * set, milliseconds apart within one setup call (the kernel takes no alias at
 * creation). One seen untagged, with its peer still in the host namespace,
 * this long apart was left by an agent that died in between.
 */
export const UNTAGGED_ORPHAN_MS = 5_000;
const HOST_SIDE = /^lxc([0-9a-f]{12})$/;

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
      view = await dockerView(this.d.docker, this.d.driver);
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
    const reg = this.d.manager.registry;
    for (const ep of reg.list()) {
      const docker = view.networks.get(ep.dockerNetworkId)?.get(ep.dockerEndpointId);
      if (docker) {
        if (ep.state === 'waiting-for-identity') this.d.manager.resolveSoon(ep);
        continue;
      }
      if (!this.old(Date.parse(ep.createdAt), view) || (await handWiredAlive(ep))) continue;
      await this.d.manager.delete(ep.dockerEndpointId);
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
    for (const ep of this.d.manager.registry.list()) for (const a of [ep.ipv4, ep.ipv6]) if (a) held.add(a);
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
    const known = new Set(this.d.manager.registry.list().map((e) => e.ifName));
    const links = await listLinks();
    const names = new Set(links.map((l) => l.name));
    const now = Date.now();
    const stillUntagged = new Set<string>();
    for (const l of links) {
      if (known.has(l.name) || this.d.manager.isTransient(l.name)) continue;
      if (l.alias === this.d.manager.tag) {
        if (await deleteLink(l.name)) {
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
      if (await deleteLink(l.name)) {
        r.linksRemoved++;
        repair(`veth pair ${l.name}/tmp${m[1]} was never tagged (its agent died while creating it): deleted`);
      }
      stillUntagged.delete(l.name);
    }
    for (const n of this.untagged.keys()) if (!stillUntagged.has(n)) this.untagged.delete(n);
  }

  /**
   * Map entries of endpoints, addresses and containers this agent no longer
   * has. One map at a time, each against a fresh look at the registry, with
   * the event loop free in between: at 1,000 endpoints the whole walk held
   * the agent's thread for ~100 ms, and a policy import waited behind it.
   */
  private async maps(r: ReconcileReport, repair: (s: string) => void): Promise<void> {
    const m = this.d.dp.maps;
    const reg = this.d.manager.registry;
    const creating = () => this.d.manager.creating();
    const phases: Array<() => number> = [
      () => {
        const ifindexes = new Set(reg.list().map((e) => e.ifIndex));
        return m.endpoints.entries().filter((e) => !ifindexes.has(e.ifindex) && !this.inFlightId(e.epId) && m.endpoints.delete(e.ifindex)).length;
      },
      () => {
        const ids = new Set(reg.list().map((e) => e.id));
        const stale = m.policy.entries().filter((p) => !ids.has(p.epId) && !this.inFlightId(p.epId));
        for (const p of stale) m.policy.revoke(p);
        return stale.length;
      },
      () => {
        const addresses = new Set(reg.list().flatMap((e) => [e.ipv4, e.ipv6].filter(Boolean)));
        return m.ipcache.entries().filter((e) => {
          const endpointIdentity = e.identity === RESERVED.init || (e.identity >= MIN_USER_IDENTITY && e.identity < MIN_CIDR_IDENTITY);
          const host = e.bits === familyBits(e.family);
          return endpointIdentity && host && !addresses.has(formatAddress(e.family, e.value)) && !creating() && m.ipcache.delete(e.family, e.value, e.bits);
        }).length;
      },
      () => {
        const addresses = new Set(reg.list().flatMap((e) => [e.ipv4, e.ipv6].filter(Boolean)));
        return m.addresses.entries().filter((a) => {
          if (addresses.has(a.address) || creating()) return false;
          const p = parseAddress(a.address);
          return m.addresses.delete(p.family, p.value);
        }).length;
      },
    ];
    let n = 0;
    for (const phase of phases) {
      n += phase();
      await new Promise((resolve) => setImmediate(resolve));
    }
    if (n) {
      r.mapEntriesRemoved += n;
      repair(`${n} BPF map entr${n === 1 ? 'y' : 'ies'} of gone endpoints removed`);
    }
  }

  private inFlightId(epId: number): boolean {
    return this.d.manager.registry.isReserved(epId);
  }

  /** Every endpoint's veth has this agent's programs. */
  private async programs(r: ReconcileReport, repair: (s: string) => void): Promise<void> {
    for (const ep of this.d.manager.registry.list()) {
      if ((await linkIndex(ep.ifName)) !== ep.ifIndex) continue;
      if (this.d.dp.attached(ep.ifIndex)) continue;
      this.d.dp.attach(ep.ifIndex, false);
      r.programsReattached++;
      repair(`endpoint ${ep.id}: programs were missing on ${ep.ifName}: attached`);
    }
  }

  /** Files under the BPF root that are not this version's maps. */
  private async pins(r: ReconcileReport, repair: (s: string) => void): Promise<void> {
    for (const f of await fs.readdir(this.d.bpfRoot).catch(() => [] as string[])) {
      if (PINNED_MAPS.includes(f)) continue;
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
