import { TestDockerd } from '../test/harness/dockerd';
import { must, run } from '../test/harness/exec';
import { Pair } from './datapath';
import { OUTSIDE_DEVICE } from './masquerade';

/** One host address per column on the outside device, so that each publishes the measurement ports (5201, 7000) itself. */
const FRONTEND = { dnat: '198.18.9.11', proxy: '198.18.9.12', cilium: '198.18.9.13', proxyPinned: '198.18.9.14' } as const;
const PORTS = ['5201', '7000'];

/**
 * A published port reached from the namespace beyond the host, three ways:
 * the bridge driver as dockerd with iptables on programs it (DNAT in
 * PREROUTING, FORWARD accepts: added here, as this bench's dockerd runs with
 * iptables off), the bridge driver through docker-proxy alone (what dockerd
 * does without iptables), and cilium (BPF at the device). From the host
 * itself: docker-proxy, free to use the other CPU and pinned to the
 * measurement's CPU (the same core budget as BPF, which runs in the
 * sender's and receiver's own context), against connect-time translation.
 */
export async function publishedPairs(
  d: TestDockerd,
  bridgeNet: string,
  ciliumNet: string,
  outside: { server: string },
  cpu: number,
): Promise<{ pairs: Record<'dnat' | 'proxy' | 'cilium' | 'proxyFromHost' | 'proxyPinnedFromHost' | 'ciliumFromHost', Pair>; cleanup: () => Promise<void> }> {
  const undo: Array<() => Promise<unknown>> = [];
  const cleanup = async () => {
    for (const u of undo.reverse()) await u();
  };
  try {
    for (const a of Object.values(FRONTEND)) {
      await must('ip', ['addr', 'add', `${a}/32`, 'dev', OUTSIDE_DEVICE]);
      undo.push(() => run('ip', ['addr', 'del', `${a}/32`, 'dev', OUTSIDE_DEVICE]));
    }
    const server = async (name: string, net: string, at: string) => {
      const publish = PORTS.flatMap((p) => ['-p', `${at}:${p}:${p}`]);
      await d.ok(['run', '-d', '--name', name, '--net', net, '-l', 'role=published', ...publish, 'bbox:latest', 'sleep', '36000']);
      undo.push(() => d.docker(['rm', '-f', name]));
      return {
        netns: `/proc/${await d.ok(['inspect', '-f', '{{.State.Pid}}', name])}/ns/net`,
        ip: await d.ok(['inspect', '-f', `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`, name]),
      };
    };
    const dnat = await server('pub-dnat', bridgeNet, FRONTEND.dnat);
    const proxy = await server('pub-proxy', bridgeNet, FRONTEND.proxy);
    const cilium = await server('pub-cilium', ciliumNet, FRONTEND.cilium);
    const proxyPinned = await server('pub-proxy-pinned', bridgeNet, FRONTEND.proxyPinned);
    const pids = (await must('pgrep', ['-f', `docker-proxy .*-host-ip ${FRONTEND.proxyPinned} `])).split('\n').filter(Boolean);
    if (pids.length !== PORTS.length) throw new Error(`expected ${PORTS.length} docker-proxy processes for ${FRONTEND.proxyPinned}, found ${pids.length}`);
    for (const pid of pids) await must('taskset', ['-a', '-c', '-p', String(cpu), pid]);
    const rules = [
      ['nat', 'PREROUTING', '-d', FRONTEND.dnat, '-p', 'tcp', '-m', 'multiport', '--dports', PORTS.join(','), '-j', 'DNAT', '--to-destination', dnat.ip],
      ['filter', 'FORWARD', '-d', dnat.ip, '-p', 'tcp', '-j', 'ACCEPT'],
      ['filter', 'FORWARD', '-s', dnat.ip, '-p', 'tcp', '-j', 'ACCEPT'],
    ];
    for (const [table, chain, ...rule] of rules) {
      await must('iptables', ['-t', table!, '-I', chain!, ...rule]);
      undo.push(() => run('iptables', ['-t', table!, '-D', chain!, ...rule]));
    }
    const host = `/proc/${process.pid}/ns/net`; // the bench's own: the host's
    return {
      pairs: {
        dnat: { server: dnat.netns, client: outside.server, address: FRONTEND.dnat },
        proxy: { server: proxy.netns, client: outside.server, address: FRONTEND.proxy },
        cilium: { server: cilium.netns, client: outside.server, address: FRONTEND.cilium },
        proxyFromHost: { server: proxy.netns, client: host, address: FRONTEND.proxy },
        proxyPinnedFromHost: { server: proxyPinned.netns, client: host, address: FRONTEND.proxyPinned },
        ciliumFromHost: { server: cilium.netns, client: host, address: FRONTEND.cilium },
      },
      cleanup,
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}
