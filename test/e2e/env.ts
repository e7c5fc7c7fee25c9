import { TestAgent } from '../harness/agent';
import { TestDockerd, buildBusyboxImage } from '../harness/dockerd';
import { lxcLinks, routesInto } from '../harness/host';

export const DRIVER = 'cilium-test';
export const V4_RANGE = '10.211.0.0/16';
export const V6_RANGE = 'f00d::d3:0:0/96';
export const IMAGE = 'bbox:latest';
/** Inside "sh -c", busybox sh runs its own wget applet (which crashes on -T) unless given a path. */
export const WGET = '/bin/wget -q -T 3 -O-';

interface Pool {
  id: string;
  cidr: string;
  allocations: Array<{ address: string; owner: string }>;
}

/** One private dockerd, the offline image and an agent: what every e2e suite stands on. */
export class Env {
  readonly dockerd: TestDockerd;
  readonly agent: TestAgent;
  baselineLinks = 0;

  constructor(agentArgs: string[] = [], dockerdArgs: string[] = ['--bridge=none']) {
    this.dockerd = new TestDockerd(dockerdArgs);
    this.agent = new TestAgent(DRIVER, [`--ipv4-range=${V4_RANGE}`, `--ipv6-range=${V6_RANGE}`, `--docker-host=${this.dockerd.host}`, ...agentArgs]);
  }

  async up(): Promise<void> {
    this.baselineLinks = (await lxcLinks()).length;
    await this.dockerd.start();
    await buildBusyboxImage(this.dockerd, IMAGE);
    await this.agent.start();
  }

  async down(): Promise<void> {
    const ids = (await this.dockerd.docker(['ps', '-aq'])).stdout.split('\n').filter(Boolean);
    if (ids.length) await this.dockerd.docker(['rm', '-f', ...ids]);
    const nets = (await this.dockerd.docker(['network', 'ls', '-q', '--filter', `driver=${DRIVER}`])).stdout.split('\n').filter(Boolean);
    for (const n of nets) await this.dockerd.docker(['network', 'rm', n]);
    await this.agent.destroy();
    await this.dockerd.destroy();
  }

  docker(args: string[], timeoutMs?: number) {
    return this.dockerd.docker(args, timeoutMs);
  }

  ok(args: string[], timeoutMs?: number) {
    return this.dockerd.ok(args, timeoutMs);
  }

  createNetwork(name: string, extra: string[] = []): Promise<string> {
    return this.ok(['network', 'create', '-d', DRIVER, '--ipam-driver', DRIVER, ...extra, name], 30_000);
  }

  /** docker run -d NAME on NET, running CMD (default: sleep). */
  runDetached(name: string, net: string, cmd: string[] = ['sleep', '3600'], extra: string[] = []): Promise<string> {
    return this.ok(['run', '-d', '--name', name, '--net', net, ...extra, IMAGE, ...cmd]);
  }

  exec(name: string, script: string) {
    return this.docker(['exec', name, 'sh', '-c', script], 30_000);
  }

  async address(container: string, net: string, family: 4 | 6 = 4): Promise<string> {
    const field = family === 4 ? 'IPAddress' : 'GlobalIPv6Address';
    return this.ok(['inspect', '-f', `{{(index .NetworkSettings.Networks "${net}").${field}}}`, container]);
  }

  pools(): Promise<Pool[]> {
    return this.agent.api<Pool[]>('/v1/ipam');
  }

  async allocations(): Promise<string[]> {
    return (await this.pools()).flatMap((p) => p.allocations.map((a) => `${p.id} ${a.address} ${a.owner}`));
  }

  /** Subnet networks in the tests live in 192.168.0.0/16 (only inside containers the tests create). */
  async leftovers(): Promise<{ links: number; routes4: number; routes6: number; subnetRoutes: number; endpoints: number }> {
    await this.agent.settled();
    return {
      links: (await lxcLinks()).length - this.baselineLinks,
      routes4: await routesInto(V4_RANGE),
      routes6: await routesInto(V6_RANGE),
      subnetRoutes: await routesInto('192.168.0.0/16'),
      endpoints: (await this.agent.api<unknown[]>('/v1/endpoint')).length,
    };
  }
}
