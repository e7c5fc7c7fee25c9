import { TestDockerd } from '../test/harness/dockerd';
import { must, run } from '../test/harness/exec';
import { Pair } from './datapath';

const NS = 'bench-out';
export const OUTSIDE_DEVICE = 'bench-out0';
const HOST_SIDE = '198.18.9.1';
const SERVER = '198.18.9.2';

/**
 * A server beyond the host: a namespace behind a veth from the host, with no
 * route back to any container range, so only a masqueraded flow gets its
 * replies. Made before the agent starts (it is a --devices device).
 */
export async function outsideServer(): Promise<{ server: string; address: string; cleanup: () => Promise<void> }> {
  const cleanup = async () => {
    await run('ip', ['netns', 'del', NS]);
    await run('ip', ['link', 'del', OUTSIDE_DEVICE]);
  };
  await cleanup();
  await must('ip', ['netns', 'add', NS]);
  await must('ip', ['link', 'add', OUTSIDE_DEVICE, 'type', 'veth', 'peer', 'name', 'bench-out1', 'netns', NS]);
  await must('ip', ['addr', 'add', `${HOST_SIDE}/24`, 'dev', OUTSIDE_DEVICE]);
  await must('ip', ['link', 'set', OUTSIDE_DEVICE, 'up']);
  await must('ip', ['-n', NS, 'addr', 'add', `${SERVER}/24`, 'dev', 'bench-out1']);
  await must('ip', ['-n', NS, 'link', 'set', 'bench-out1', 'up']);
  await must('ip', ['-n', NS, 'link', 'set', 'lo', 'up']);
  return { server: `/run/netns/${NS}`, address: SERVER, cleanup };
}

/**
 * The bridge driver's way out, as dockerd with iptables on programs it: a
 * MASQUERADE rule for the bridge's subnet leaving through the device (this
 * bench's dockerd runs with iptables off, so the rule is added here and
 * removed after).
 */
export async function bridgeMasquerade(d: TestDockerd, network: string): Promise<() => Promise<void>> {
  const subnet = await d.ok(['network', 'inspect', '-f', '{{(index .IPAM.Config 0).Subnet}}', network]);
  const rule = ['POSTROUTING', '-s', subnet, '-o', OUTSIDE_DEVICE, '-j', 'MASQUERADE'];
  await must('iptables', ['-t', 'nat', '-A', ...rule]);
  return async () => {
    await run('iptables', ['-t', 'nat', '-D', ...rule]);
  };
}

/** A client container's namespace against the outside server. */
export async function outboundPair(d: TestDockerd, net: string, name: string, server: { server: string; address: string }): Promise<Pair> {
  await d.ok(['run', '-d', '--name', name, '--net', net, '-l', 'role=outbound', 'bbox:latest', 'sleep', '36000']);
  return { server: server.server, client: `/proc/${await d.ok(['inspect', '-f', '{{.State.Pid}}', name])}/ns/net`, address: server.address };
}
