/**
 * Crash points for the crash test: CILIUM_FAILPOINTS="name=N,..." makes the
 * agent kill itself with SIGKILL the Nth time it passes the named point, so
 * a test can die exactly inside RequestAddress, CreateEndpoint, Join or a
 * policy import. Unset (always, outside tests), a failpoint is a map lookup.
 */
const armed = new Map<string, number>(
  (process.env.CILIUM_FAILPOINTS ?? '')
    .split(',')
    .filter(Boolean)
    .map((kv) => {
      const [name, n] = kv.split('=');
      return [name!, Number(n ?? 1)] as [string, number];
    }),
);

export type Failpoint = 'ipam-reserved' | 'ipam-persisted' | 'endpoint-link-created' | 'endpoint-joined' | 'policy-persisted';

export function failpoint(name: Failpoint): void {
  const left = armed.get(name);
  if (left === undefined) return;
  if (left > 1) {
    armed.set(name, left - 1);
    return;
  }
  process.stderr.write(`failpoint ${name}: killing the agent\n`);
  process.kill(process.pid, 'SIGKILL');
}
