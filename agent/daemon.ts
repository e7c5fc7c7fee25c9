import { promises as fs } from 'fs';
import { Server } from 'http';
import { basename, join } from 'path';
import { Logger } from 'winston';
import { apiApp } from '../api/server';
import { ConntrackGc } from '../conntrack/gc';
import { EventReader } from '../datapath/bpf/events';
import { ownerOf } from '../datapath/bpf/endpoint-program';
import { HostAddressSync, localAddresses } from '../datapath/host-addresses';
import { BpfDatapath } from '../datapath/bpf/loader';
import { agentTag } from '../datapath/endpoint-link';
import { RouterAddress, ensureHostRouter } from '../datapath/host-router';
import { LinkReaper } from '../datapath/link-reaper';
import { HostDevices, masqueradePorts } from '../datapath/devices';
import { HostPortProxy } from '../service/host-proxy';
import { ProxySupervisor } from '../proxy/supervisor';
import { LoadBalancer } from '../service/load-balancer';
import { PublishedPorts } from '../service/published-ports';
import { UserServices } from '../service/user-services';
import { listLinks } from '../datapath/rtnl';
import { cgroupRoot } from '../datapath/cgroup-root';
import { ownNetnsCookie } from '../datapath/libc';
import { EndpointManager } from '../endpoint/manager';
import { PolicySync } from '../endpoint/policy-sync';
import { EndpointRegistry } from '../endpoint/registry';
import { IdentityAllocator } from '../identity/allocator';
import { ClusterIdentities } from '../identity/cluster-backend';
import { LocalIdentities } from '../identity/local-backend';
import { EtcdStore } from '../kvstore/etcd';
import { IpcacheSync } from '../node/ipcache-sync';
import { claimRanges } from '../node/ranges';
import { NodeRegistry } from '../node/registry';
import { NativeRoutes } from '../node/routes';
import { CidrIdentities } from '../identity/cidr';
import { Ipam } from '../ipam/ipam';
import { Cidr, formatCidr, lastAddress, parseCidr } from '../net/address';
import { ContainerResolver } from '../labels/container-resolver';
import { dockerClient } from '../labels/docker-client';
import { Metrics } from '../metrics/metrics';
import { EventLog } from '../monitor/event-log';
import { IpamDriver } from '../plugin/ipam-driver';
import { NetworkDriver } from '../plugin/network-driver';
import { NetworkManager } from '../network/manager';
import { pluginApp } from '../plugin/server';
import { PolicyRepository } from '../policy/repository';
import { dockerView } from '../reconcile/docker-view';
import { Reconciler, UNTAGGED_ORPHAN_MS } from '../reconcile/reconciler';
import { VERSION } from '../api/version';
import { LevelStore } from '../store/level-store';
import { Config } from './config';
import { closeServer, listenUnix } from './listen';
import { RecentErrors } from './logger';

/**
 * The state dir and everything in it are root-only (0700 dirs, 0600 files),
 * whoever created them first and under whatever umask: the store holds every
 * address, identity and rule, and the log every plugin call.
 */
async function secureStateDir(dir: string): Promise<void> {
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const walk = async (d: string): Promise<void> => {
    await fs.chmod(d, 0o700);
    for (const e of await fs.readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) await fs.chmod(p, 0o600);
    }
  };
  await walk(dir);
}

/** The destinations never masqueraded, with this host's claimed ranges where the flags left the defaults. */
function withRanges(cfg: Config, ranges: { ipv4Range: Cidr; ipv6Range?: Cidr }): Cidr[] {
  const same = (a: Cidr, b?: Cidr) => b !== undefined && formatCidr(a) === formatCidr(b);
  return cfg.noMasqueradeTo.map((c) => (same(c, cfg.ipv4Range) ? ranges.ipv4Range : same(c, cfg.ipv6Range) && ranges.ipv6Range ? ranges.ipv6Range : c));
}

export interface Daemon {
  stop(): Promise<void>;
}

/**
 * Start-up order matters: state is loaded, the datapath is loaded and every
 * known endpoint re-attached before the plugin socket appears, because the
 * engine may call the plugin the instant the socket exists.
 */
export async function startDaemon(cfg: Config, log: Logger, recent: RecentErrors): Promise<Daemon> {
  await secureStateDir(cfg.stateDir);
  const store = await LevelStore.open(join(cfg.stateDir, 'store'));
  const closers: Array<() => Promise<void> | void> = [() => store.close()];
  const stop = async () => {
    for (const c of closers.reverse()) await c();
  };
  try {
    let kv: EtcdStore | undefined;
    let ranges: { ipv4Range: Cidr; ipv6Range?: Cidr } = { ipv4Range: cfg.ipv4Range, ...(cfg.ipv6Range ? { ipv6Range: cfg.ipv6Range } : {}) };
    if (cfg.cluster) {
      if (!cfg.cluster.nodeIP) throw new Error('--kvstore etcd: this host has no global IPv4 address to announce itself by');
      const etcd = await EtcdStore.connect(cfg.cluster.etcd, log);
      kv = etcd;
      closers.push(() => etcd.close());
      ranges = await claimRanges(etcd, store, cfg.cluster, { ...ranges, rangesGiven: cfg.rangesGiven }, log);
    }
    const { ipv4Range, ipv6Range } = ranges;
    const routerV4 = ipv4Range.base + 1n;
    const routerV6 = ipv6Range && ipv6Range.base + 1n;
    if (lastAddress(ipv4Range) <= routerV4) throw new Error('--ipv4-range leaves no room for a router address');
    const host = await localAddresses();
    const ipam = await Ipam.load(store, {
      4: { range: ipv4Range, router: routerV4 },
      ...(ipv6Range && routerV6 ? { 6: { range: ipv6Range, router: routerV6 } } : {}),
      hostAddresses: host,
    });
    const baseRouters: RouterAddress[] = [{ family: 4, value: routerV4 }, ...(routerV6 ? [{ family: 6 as const, value: routerV6 }] : [])];
    const networks = await NetworkManager.load(store, baseRouters);
    const registry = await EndpointRegistry.load(store);
    await ensureHostRouter(networks.routerAddresses(), ipv6Range !== undefined);

    const natPorts = cfg.masquerade ? masqueradePorts() : { min: 1024, max: 65535 };
    const dp = BpfDatapath.load({
      bpfRoot: cfg.bpfRoot,
      hostToEndpointAllowed: cfg.allowLocalhost,
      natPorts,
      hostNetnsCookie: ownNetnsCookie(),
      maglevTableSize: cfg.maglevTableSize,
    });
    closers.push(() => {
      dp.close();
    });
    for (const m of dp.replacedMaps) log.warn(`pinned map ${m} was left by an incompatible version: replaced, its entries are rebuilt`);
    if (dp.natRecoveryUnavailable) {
      log.warn(`netfilter conntrack kfuncs unavailable (${dp.natRecoveryUnavailable}): traffic the host NATs towards endpoints is treated as the world`);
    }
    const hostIps = new HostAddressSync(dp.maps.ipcache, () => networks.routerAddresses(), log);
    await hostIps.sync();
    hostIps.start(10_000);
    closers.push(() => {
      hostIps.stop();
    });
    const devices = new HostDevices(
      dp,
      { masquerade: cfg.masquerade, ...(cfg.devices ? { devices: cfg.devices } : {}), noMasqueradeTo: withRanges(cfg, ranges) },
      log,
    );
    await devices.start(10_000);
    closers.push(() => {
      devices.stop();
    });
    const events = new EventLog();
    const reader = new EventReader(dp.maps.eventsFd, (e) => {
      events.push(e);
    });
    closers.push(() => {
      reader.close();
    });

    const identities = await IdentityAllocator.load(
      kv && cfg.cluster ? new ClusterIdentities(kv, cfg.cluster.nodeName, log) : new LocalIdentities(store),
      log,
      cfg.identityGraceMs,
    );
    const repo = await PolicyRepository.load(store);
    const conntrack = new ConntrackGc(dp.maps.ct, [dp.maps.snat, dp.maps.lbCt], () => new Set(registry.list().map((e) => ownerOf(e.sandboxKey))), log);
    const metrics = new Metrics({
      endpoints: registry,
      identities,
      repo,
      ipam,
      bpfMetrics: dp.maps.metrics,
      conntrack: conntrack.stats,
      faults: recent.faults,
    });
    store.observeWith((op, s, ok) => {
      metrics.storeOp(op, s, ok);
    });
    const cidrIdentities = new CidrIdentities(dp.maps.ipcache.entries());
    const sync = new PolicySync(dp, registry, identities, cidrIdentities, repo, { mode: cfg.enforcement, l7ProxyPort: cfg.proxyPort }, log, metrics);
    sync.follow(repo, identities, registry);
    let cluster: { nodes: NodeRegistry; routes: NativeRoutes; ipcache: IpcacheSync; kv: EtcdStore } | undefined;
    if (kv && cfg.cluster) {
      const nodes = await NodeRegistry.join(
        kv,
        {
          Name: cfg.cluster.nodeName,
          Cluster: cfg.cluster.name,
          IPAddresses: [{ Type: 'InternalIP', IP: cfg.cluster.nodeIP! }],
          IPv4AllocCIDR: formatCidr(ipv4Range),
          ...(ipv6Range ? { IPv6AllocCIDR: formatCidr(ipv6Range) } : {}),
          EncryptionKey: 0,
        },
        log,
      );
      const routes = new NativeRoutes(nodes, log);
      await routes.start();
      // The cluster's ranges are reached as they are, never masqueraded.
      const clusterRanges = () => nodes.list().flatMap((n) => [n.IPv4AllocCIDR, n.IPv6AllocCIDR].filter((c): c is string => Boolean(c)).map(parseCidr));
      devices.excludeAlso(clusterRanges());
      nodes.onChanged(() => {
        devices.excludeAlso(clusterRanges());
      });
      const ipcacheSync = new IpcacheSync(kv, cfg.cluster.name, nodes, dp.maps.ipcache, [ipv4Range, ...(ipv6Range ? [ipv6Range] : [])], log);
      await ipcacheSync.start(registry);
      closers.push(() => {
        ipcacheSync.stop();
      });
      cluster = { nodes, routes, ipcache: ipcacheSync, kv };
    }
    const docker = dockerClient(cfg.dockerHost);
    const resolver = new ContainerResolver(docker, log);
    closers.push(() => {
      resolver.stop();
    });
    const reaper = new LinkReaper(log);
    const manager = new EndpointManager(registry, dp, identities, resolver, log, agentTag(cfg.stateDir), reaper, metrics);
    resolver.deliverTo((id, info) => manager.assignContainer(id, info));
    closers.push(() => manager.drain());
    await manager.restore();
    sync.regenerate(); // the first pass, over every endpoint restored
    const l7 = new ProxySupervisor(cfg.proxyPort, cfg.stateDir, log, (records) => {
      metrics.l7Requests(records);
      events.pushAccess(records);
    });
    sync.onChanged(() => {
      l7.update(sync.proxySnapshot());
    });
    l7.update(sync.proxySnapshot());
    closers.push(() => l7.stop());
    // Not started: L7-policed connections are dropped (no listener), everything else works.
    await l7.start().catch((err: unknown) => {
      log.error((err as Error).message);
    });
    void resolver.start();
    const driver = basename(cfg.pluginSocket, '.sock');
    const reconciler = new Reconciler({
      endpoints: manager,
      networks,
      ipam,
      maps: dp.maps,
      links: listLinks,
      reaper,
      dockerView: () => dockerView(docker, driver),
      log,
      bpfRoot: cfg.bpfRoot,
      ...(cluster ? { remoteAddresses: () => cluster.ipcache.remoteAddresses() } : {}),
      graceMs: cfg.reconcileGraceMs,
    });

    const lb = new LoadBalancer(dp.maps, cfg.maglevTableSize);
    const proxy = new HostPortProxy();
    closers.push(() => {
      proxy.closeAll();
    });
    const published = await PublishedPorts.load(store, lb, proxy, registry, log);
    const userServices = await UserServices.load(store, lb, registry);
    sync.followServices(userServices);
    lb.removeStale();
    let socketLbCgroup: string | undefined;
    if (cfg.socketLb) {
      socketLbCgroup = await cgroupRoot(cfg.cgroupRoot);
      dp.attachSockets(socketLbCgroup);
      log.info(`services are translated at connect for the host's sockets (cgroup ${socketLbCgroup})`);
    } else dp.detachSockets();
    const net = new NetworkDriver(networks, manager, ipam, published, log);
    const ipamDriver = new IpamDriver(ipam, log);
    if (cfg.prometheusAddr) {
      const m = await metrics.serve(cfg.prometheusAddr);
      closers.push(
        () =>
          new Promise<void>((r) =>
            m.close(() => {
              r();
            }),
          ),
      );
    }
    const serve = async (path: string, app: Parameters<typeof listenUnix>[1], errorField: 'Err' | 'error') => {
      const server: Server = await listenUnix(path, app, errorField, cfg.socketGroup);
      closers.push(() => closeServer(server, path));
    };
    await serve(
      cfg.apiSocket,
      apiApp({
        version: VERSION,
        startedAt: new Date(),
        endpoints: registry,
        manager,
        networks,
        ipam,
        identities,
        cidrIdentities,
        repo,
        sync,
        events,
        dp,
        log,
        reconciler,
        conntrack,
        published,
        userServices,
        lb,
        stateDir: cfg.stateDir,
        pluginSocket: cfg.pluginSocket,
        hooks: metrics,
        ...(cluster && cfg.cluster ? { cluster: { name: cfg.cluster.name, kv: cluster.kv, nodes: cluster.nodes, routes: cluster.routes } } : {}),
        health: {
          docker: () =>
            docker.ping().then(
              () => 'ok',
              (e: unknown) => (e as Error).message,
            ),
          store: () =>
            store.get('health').then(
              () => 'ok',
              (e: unknown) => (e as Error).message,
            ),
          recentErrors: recent.entries,
          faults: recent.faults,
          linksPendingRemoval: () => reaper.pending,
          bpfRoot: cfg.bpfRoot,
          dockerHost: cfg.dockerHost,
          masquerading: () => ({
            enabled: cfg.masquerade,
            devices: devices.devices(),
            ports: natPorts,
            excluded: devices.excluded().map(formatCidr),
          }),
          loadBalancing: {
            algorithm: cfg.maglevTableSize ? 'maglev' : 'random',
            ...(cfg.maglevTableSize ? { maglevTableSize: cfg.maglevTableSize } : {}),
            ...(socketLbCgroup ? { socketLbCgroup } : {}),
          },
        },
      }),
      'error',
    );
    // Last: from here on the engine can reach us.
    await serve(
      cfg.pluginSocket,
      pluginApp(net, ipamDriver, log, (m, secs, ok) => {
        metrics.pluginCall(m, secs, ok);
      }),
      'Err',
    );
    // Asking Docker may wait on an engine that waits on us: reconcile once the socket is up, then periodically.
    const reconcile = (reason: string) => reconciler.run(reason).catch((err: unknown) => log.error(`reconcile (${reason}) failed: ${(err as Error).message}`));
    // An untagged veth pair is an orphan only once it stayed untagged a while: look again soon after start.
    void reconcile('start').then(() => {
      if (reconciler.pending) setTimeout(() => void reconcile('untagged veths'), UNTAGGED_ORPHAN_MS + 1000).unref();
    });
    conntrack.start(cfg.conntrackGcIntervalMs);
    closers.push(() => conntrack.stop());
    void conntrack.run();
    if (cfg.reconcileIntervalMs > 0) {
      const timer = setInterval(() => void reconcile('periodic'), cfg.reconcileIntervalMs);
      timer.unref();
      closers.push(() => {
        clearInterval(timer);
      });
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
