import { promises as fs } from 'fs';
import { Server } from 'http';
import { basename, join } from 'path';
import { Logger } from 'winston';
import { apiApp } from '../api/server';
import { EventReader } from '../datapath/bpf/events';
import { programHostAddresses } from '../datapath/bpf/endpoint-program';
import { BpfDatapath } from '../datapath/bpf/loader';
import { agentTag } from '../datapath/endpoint-link';
import { RouterAddress, ensureHostRouter } from '../datapath/host-router';
import { LinkReaper } from '../datapath/link-reaper';
import { EndpointManager } from '../endpoint/manager';
import { PolicySync } from '../endpoint/policy-sync';
import { EndpointRegistry } from '../endpoint/registry';
import { IdentityAllocator } from '../identity/allocator';
import { Ipam } from '../ipam/ipam';
import { lastAddress, parseAddress } from '../ipam/cidr';
import { ContainerResolver } from '../labels/container-resolver';
import { dockerClient } from '../labels/docker-client';
import { Metrics } from '../metrics/metrics';
import { EventLog } from '../monitor/event-log';
import { IpamDriver } from '../plugin/ipam-driver';
import { NetworkDriver } from '../plugin/network-driver';
import { NetworkRegistry } from '../plugin/networks';
import { pluginApp } from '../plugin/server';
import { PolicyRepository } from '../policy/repository';
import { Reconciler } from '../reconcile/reconciler';
import { LevelStore } from '../store/level-store';
import { Config, hostAddresses } from './config';
import { closeServer, listenUnix } from './listen';
import { RecentErrors } from './logger';

export const VERSION = '0.2.0';

export interface Daemon {
  stop(): Promise<void>;
}

/**
 * Start-up order matters: state is loaded, the datapath is loaded and every
 * known endpoint re-attached before the plugin socket appears, because the
 * engine may call the plugin the instant the socket exists.
 */
export async function startDaemon(cfg: Config, log: Logger, recent: RecentErrors): Promise<Daemon> {
  await fs.mkdir(cfg.stateDir, { recursive: true, mode: 0o700 });
  let metrics: Metrics | undefined;
  const store = await LevelStore.open(join(cfg.stateDir, 'store'), (op, s, ok) => metrics?.storeOp(op, s, ok));
  const closers: Array<() => Promise<void> | void> = [() => store.close()];
  const stop = async () => {
    for (const c of closers.reverse()) await c();
  };
  try {
    const routerV4 = cfg.ipv4Range.base + 1n;
    const routerV6 = cfg.ipv6Range && cfg.ipv6Range.base + 1n;
    if (lastAddress(cfg.ipv4Range) <= routerV4) throw new Error('--ipv4-range leaves no room for a router address');
    const host = hostAddresses();
    const ipam = await Ipam.load(store, {
      4: { range: cfg.ipv4Range, router: routerV4 },
      ...(cfg.ipv6Range && routerV6 ? { 6: { range: cfg.ipv6Range, router: routerV6 } } : {}),
      hostAddresses: host,
    });
    const networks = await NetworkRegistry.load(store);
    const registry = await EndpointRegistry.load(store);

    const routers: RouterAddress[] = [{ family: 4, value: routerV4 }];
    if (routerV6) routers.push({ family: 6, value: routerV6 });
    for (const n of networks.list()) if (n.ipv4?.ownGateway) routers.push(parseAddress(n.ipv4.gateway));
    await ensureHostRouter(routers, cfg.ipv6Range !== undefined);

    const dp = BpfDatapath.load({ bpfRoot: cfg.bpfRoot, hostToEndpointAllowed: cfg.allowLocalhost });
    closers.push(() => dp.close());
    for (const m of dp.replacedMaps) log.warn(`pinned map ${m} was left by an incompatible version: replaced, its entries are rebuilt`);
    programHostAddresses(dp, [...host, ...routers]);
    const events = new EventLog();
    const reader = new EventReader(dp.maps.eventsFd, (e) => events.push(e));
    closers.push(() => reader.close());

    let sync: PolicySync | undefined;
    const identities = await IdentityAllocator.load(store, log, cfg.identityGraceMs, () => sync?.regenerate());
    const repo = await PolicyRepository.load(store);
    metrics = new Metrics({ endpoints: registry, identities, repo, ipam, bpfMetrics: dp.maps.metrics });
    sync = new PolicySync(dp, registry, identities, repo, cfg.enforcement, log, metrics);
    let manager: EndpointManager | undefined;
    const docker = dockerClient(cfg.dockerHost);
    const resolver = new ContainerResolver(docker, log, (id, info) => manager!.assignContainer(id, info));
    closers.push(() => resolver.stop());
    const reaper = new LinkReaper(log);
    manager = new EndpointManager(registry, dp, identities, sync, resolver, log, agentTag(cfg.stateDir), reaper, metrics);
    closers.push(() => manager!.drain());
    await manager.restore();
    void resolver.start();
    const reconciler = new Reconciler({
      manager, networks, ipam, dp, docker, log, bpfRoot: cfg.bpfRoot,
      driver: basename(cfg.pluginSocket, '.sock'),
      graceMs: cfg.reconcileGraceMs,
    });

    const net = new NetworkDriver(networks, manager, ipam, log);
    const ipamDriver = new IpamDriver(ipam, log);
    if (cfg.prometheusAddr) {
      const m = await metrics.serve(cfg.prometheusAddr);
      closers.push(() => new Promise<void>((r) => m.close(() => r())));
    }
    const serve = async (path: string, app: Parameters<typeof listenUnix>[1], errorField: 'Err' | 'error') => {
      const server: Server = await listenUnix(path, app, errorField, cfg.socketGroup);
      closers.push(() => closeServer(server, path));
    };
    await serve(
      cfg.apiSocket,
      apiApp({ version: VERSION, startedAt: new Date(), endpoints: registry, manager, networks, ipam, identities, repo, sync, events, dp, log, reconciler, stateDir: cfg.stateDir, pluginSocket: cfg.pluginSocket, hooks: metrics,
        health: { docker: () => docker.ping().then(() => 'ok', (e: Error) => e.message), store: () => store.get('health').then(() => 'ok', (e: Error) => e.message), recentErrors: recent.entries, linksPendingRemoval: () => reaper.pending, bpfRoot: cfg.bpfRoot, dockerHost: cfg.dockerHost } }),
      'error',
    );
    // Last: from here on the engine can reach us.
    await serve(cfg.pluginSocket, pluginApp(net, ipamDriver, log, (m, secs, ok) => metrics!.pluginCall(m, secs, ok)), 'Err');
    // Asking Docker may wait on an engine that waits on us: reconcile once the socket is up, then periodically.
    const reconcile = (reason: string) => reconciler.run(reason).catch((err: Error) => log.error(`reconcile (${reason}) failed: ${err.message}`));
    void reconcile('start');
    if (cfg.reconcileIntervalMs > 0) {
      const timer = setInterval(() => void reconcile('periodic'), cfg.reconcileIntervalMs);
      timer.unref();
      closers.push(() => clearInterval(timer));
    }
    log.info('cilium-agent ready', {
      pluginSocket: cfg.pluginSocket,
      apiSocket: cfg.apiSocket,
      ipv4Range: ipam.hostRange(4),
      ipv6Range: ipam.hostRange(6),
      bpfRoot: cfg.bpfRoot,
      endpoints: registry.list().length,
      networks: networks.list().length,
      policyRevision: repo.revision,
    });
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    async stop() {
      // Programs stay attached and maps pinned: enforcement goes on while the agent is down.
      await stop();
      log.info('cilium-agent stopped');
    },
  };
}
