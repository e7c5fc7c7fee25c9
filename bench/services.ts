import { httpUnix } from '../test/harness/agent';
import { must, run } from '../test/harness/exec';
import { Pair } from './datapath';

/** The measured service's address, on cilium and (DNAT) in front of the bridge. */
export const VIP = '10.96.9.10';
const BRIDGE_VIP = '10.98.9.10';
/** The measurement ports: iperf3, request/response, connections (bench/datapath.ts). */
const PORTS = [5201, 7000, 7200];
const FIRST_ID = 20_000;
/** Filler services' addresses: never connected to, they only fill the maps or the chain. */
const filler = (i: number) => `10.97.${i >> 8}.${i & 255}`;
const CHAIN = 'BENCH-SVC';

const put = async (socket: string, id: number, body: object) => {
  const r = await httpUnix(socket, 'PUT', `/v1/service/${id}`, JSON.stringify(body));
  if (r.status !== 200) throw new Error(`service ${id}: ${JSON.stringify(r.body)}`);
};

/**
 * A service in front of the cilium server pair's server (each measurement
 * port), and the pairs that reach it: a container and the host, each by the
 * virtual address and by the backend's own.
 */
export async function servicePairs(
  apiSocket: string,
  server: Pair,
): Promise<{ pairs: Record<'direct' | 'vip' | 'hostDirect' | 'hostVip', Pair>; cleanup: () => Promise<void> }> {
  for (const [i, port] of PORTS.entries()) await put(apiSocket, FIRST_ID + i, { frontend: `${VIP}:${port}`, backends: [`${server.address}:${port}`] });
  const host = `/proc/${process.pid}/ns/net`;
  return {
    pairs: {
      direct: server,
      vip: { ...server, address: VIP },
      hostDirect: { ...server, client: host },
      hostVip: { ...server, client: host, address: VIP },
    },
    cleanup: async () => {
      for (const i of PORTS.keys()) await httpUnix(apiSocket, 'DELETE', `/v1/service/${FIRST_ID + i}`);
    },
  };
}

/**
 * n services in all (n - 1 fillers beside the measured one), as cilium
 * services and as kube-proxy's iptables mode programs them: a DNAT rule per
 * service in one chain walked by every new connection, the measured
 * service's last (the bridge pair's server behind BRIDGE_VIP). Returns the
 * bridge pair by its virtual address, and what removes the rules. from:
 * the N of the row before (its fillers are in the maps already).
 */
export async function scaleServices(
  apiSocket: string,
  bridgeServer: Pair,
  from: number,
  n: number,
): Promise<{ bridgeVip: Pair; removeRules: () => Promise<void> }> {
  for (let i = from; i < n - 1; i++)
    await put(apiSocket, FIRST_ID + PORTS.length + i, { frontend: `${filler(i)}:7200`, backends: [`${bridgeServer.address}:7200`] });
  const removeRules = async () => {
    await run('iptables', ['-t', 'nat', '-D', 'PREROUTING', '-j', CHAIN]);
    await run('iptables', ['-t', 'nat', '-F', CHAIN]);
    await run('iptables', ['-t', 'nat', '-X', CHAIN]);
    for (const dir of ['-d', '-s']) await run('iptables', ['-D', 'FORWARD', dir, bridgeServer.address, '-j', 'ACCEPT']);
  };
  await removeRules();
  const rules = Array.from({ length: n - 1 }, (_, i) => `-A ${CHAIN} -d ${filler(i)}/32 -p tcp --dport 7200 -j DNAT --to-destination ${bridgeServer.address}`);
  rules.push(`-A ${CHAIN} -d ${BRIDGE_VIP}/32 -p tcp --dport 7200 -j DNAT --to-destination ${bridgeServer.address}`);
  await must('iptables-restore', ['--noflush'], { input: Buffer.from(`*nat\n:${CHAIN} - [0:0]\n${rules.join('\n')}\nCOMMIT\n`) });
  await must('iptables', ['-t', 'nat', '-I', 'PREROUTING', '1', '-j', CHAIN]);
  for (const dir of ['-d', '-s']) await must('iptables', ['-I', 'FORWARD', '1', dir, bridgeServer.address, '-j', 'ACCEPT']);
  return { bridgeVip: { ...bridgeServer, address: BRIDGE_VIP }, removeRules };
}

/** Removes the filler services scaleServices wrote (up to n in all). */
export async function removeFillers(apiSocket: string, n: number): Promise<void> {
  for (let i = 0; i < n - 1; i++) await httpUnix(apiSocket, 'DELETE', `/v1/service/${FIRST_ID + PORTS.length + i}`);
}
