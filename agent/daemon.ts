import { promises as fs } from 'fs';
import { Server } from 'http';
import { join } from 'path';
import { Logger } from 'winston';
import { apiApp } from '../api/server';
import { RouterAddress, ensureHostRouter } from '../datapath/host-router';
import { EndpointManager } from '../endpoint/manager';
import { EndpointRegistry } from '../endpoint/registry';
import { Ipam } from '../ipam/ipam';
import { lastAddress, parseAddress } from '../ipam/cidr';
import { IpamDriver } from '../plugin/ipam-driver';
import { NetworkDriver } from '../plugin/network-driver';
import { NetworkRegistry } from '../plugin/networks';
import { pluginApp } from '../plugin/server';
import { LevelStore } from '../store/level-store';
import { Config, hostAddresses } from './config';
import { closeServer, listenUnix } from './listen';

export const VERSION = '0.1.0';

export interface Daemon {
  stop(): Promise<void>;
}

/**
 * Start-up order matters: state is loaded and the datapath's host side is
 * ready before the plugin socket appears, because the engine may call the
 * plugin the instant the socket exists.
 */
export async function startDaemon(cfg: Config, log: Logger): Promise<Daemon> {
  await fs.mkdir(cfg.stateDir, { recursive: true, mode: 0o700 });
  const store = await LevelStore.open(join(cfg.stateDir, 'store'));
  const servers: Array<[Server, string]> = [];
  try {
    const routerV4 = cfg.ipv4Range.base + 1n;
    const routerV6 = cfg.ipv6Range && cfg.ipv6Range.base + 1n;
    if (lastAddress(cfg.ipv4Range) <= routerV4) throw new Error('--ipv4-range leaves no room for a router address');
    const ipam = await Ipam.load(store, {
      4: { range: cfg.ipv4Range, router: routerV4 },
      ...(cfg.ipv6Range && routerV6 ? { 6: { range: cfg.ipv6Range, router: routerV6 } } : {}),
      hostAddresses: hostAddresses(),
    });
    const networks = await NetworkRegistry.load(store);
    const registry = await EndpointRegistry.load(store);
    const endpoints = new EndpointManager(registry, log);

    const routers: RouterAddress[] = [{ family: 4, value: routerV4 }];
    if (routerV6) routers.push({ family: 6, value: routerV6 });
    for (const n of networks.list()) if (n.ipv4?.ownGateway) routers.push(parseAddress(n.ipv4.gateway));
    await ensureHostRouter(routers, cfg.ipv6Range !== undefined);

    const net = new NetworkDriver(networks, endpoints, ipam, log);
    const ipamDriver = new IpamDriver(ipam, log);
    servers.push([
      await listenUnix(cfg.apiSocket, apiApp({ version: VERSION, startedAt: new Date(), endpoints: registry, networks, ipam, stateDir: cfg.stateDir, pluginSocket: cfg.pluginSocket })),
      cfg.apiSocket,
    ]);
    servers.push([await listenUnix(cfg.pluginSocket, pluginApp(net, ipamDriver, log)), cfg.pluginSocket]);
    log.info('cilium-agent ready', {
      pluginSocket: cfg.pluginSocket,
      apiSocket: cfg.apiSocket,
      ipv4Range: ipam.hostRange(4),
      ipv6Range: ipam.hostRange(6),
      endpoints: registry.list().length,
      networks: networks.list().length,
    });
  } catch (err) {
    for (const [s, path] of servers) await closeServer(s, path);
    await store.close();
    throw err;
  }
  return {
    async stop() {
      // The plugin socket goes first so the engine sees a clean "no plugin" rather than half-closed state.
      for (const [s, path] of servers.reverse()) await closeServer(s, path);
      await store.close();
      log.info('cilium-agent stopped');
    },
  };
}
