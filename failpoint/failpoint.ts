/**
 * Crash points for the crash test: CILIUM_FAILPOINTS="name=N,..." makes the
 * agent kill itself with SIGKILL the Nth time it passes the named point, so
 * a test can die exactly inside RequestAddress, CreateEndpoint, Join or a
 * policy import; "name=N:throw" makes that pass throw an error instead (a
 * step that fails, for rollback tests). Unset (always, outside tests), a
 * failpoint is a map lookup.
 */
const armed = new Map<string, { left: number; action: 'kill' | 'throw' }>(
  (process.env.CILIUM_FAILPOINTS ?? '')
    .split(',')
    .filter(Boolean)
    .map((kv) => {
      const [name, spec = '1'] = kv.split('=');
      const [n, action] = spec.split(':');
      return [name!, { left: Number(n || 1), action: action === 'throw' ? 'throw' : 'kill' }];
    }),
);

/** Every step of the plugin calls and of reconciliation that leaves state half-made when the agent dies there. */
export const FAILPOINTS = [
  'ipam-reserved', // RequestAddress: reserved in memory, not persisted
  'ipam-persisted', // RequestAddress: persisted, not answered
  'endpoint-veth-created', // CreateEndpoint: the veth pair exists, untagged
  'endpoint-link-created', // CreateEndpoint: tagged, routed, no programs or record
  'endpoint-recorded', // CreateEndpoint: recorded, Join not yet called
  'endpoint-joined', // Join: recorded with its sandbox, not answered
  'endpoint-left', // Leave: marked disconnected, not answered
  'endpoint-unprogrammed', // DeleteEndpoint: map entries gone, record and veth still there
  'endpoint-deleted', // DeleteEndpoint: record gone, veth not yet
  'ipam-releasing', // ReleaseAddress: released in memory, not persisted
  'ipam-released', // ReleaseAddress: persisted, not answered
  'reconcile-endpoints', // reconciliation: endpoints and addresses repaired, kernel state not yet
  'reconcile-links', // reconciliation: veths repaired, maps and programs not yet
  'policy-persisted',
  'policy-datapath',
] as const;

export type Failpoint = (typeof FAILPOINTS)[number];

export function failpoint(name: Failpoint): void {
  const fp = armed.get(name);
  if (fp === undefined) return;
  if (fp.left > 1) {
    fp.left--;
    return;
  }
  if (fp.action === 'throw') {
    armed.delete(name);
    throw new Error(`failpoint ${name}`);
  }
  process.stderr.write(`failpoint ${name}: killing the agent\n`);
  process.kill(process.pid, 'SIGKILL');
}
