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

export type Failpoint = 'ipam-reserved' | 'ipam-persisted' | 'endpoint-link-created' | 'endpoint-joined' | 'policy-persisted' | 'policy-datapath';

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
