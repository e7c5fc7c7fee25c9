import { Result, run } from './exec';

/**
 * Runs a script as if on a machine of its own: new mount, network and PID
 * namespaces, with fresh tmpfs over the places a bring-up writes (/run, the
 * state of Docker, containerd and cilium, /var/log, systemd units), a bpffs of
 * its own and only a loopback. Whatever it starts (an agent, a dockerd with
 * iptables on) dies with it; the machine's own agent, dockerd, units, rules
 * and pinned maps are never touched. No systemd runs inside, so the bring-up
 * takes its no-systemd path. The directories in `overlaid` (the checkout the
 * script runs from) are seen whole but written to a tmpfs: a build or an
 * `npm ci` inside can never rewrite the tree the rest of the suite runs on.
 */
export function inSandbox(script: string, timeoutMs: number, overlaid: string[] = []): Promise<Result> {
  const setup = [
    'set -e',
    'mount --make-rprivate /',
    'for d in /run /var/lib/docker /var/lib/containerd /var/lib/cilium /var/log /etc/systemd/system; do mkdir -p "$d"; mount -t tmpfs tmpfs "$d"; done',
    // After /run is the sandbox's own: the overlays' upper layers live there.
    ...overlaid.map(
      (d, i) =>
        `mkdir -p /run/sandbox-overlay-${i}/upper /run/sandbox-overlay-${i}/work && ` +
        `mount -t overlay overlay -o lowerdir=${d},upperdir=/run/sandbox-overlay-${i}/upper,workdir=/run/sandbox-overlay-${i}/work ${d}`,
    ),
    'mkdir -p /run/lock',
    'mount -t bpf bpf /sys/fs/bpf',
    'ip link set lo up',
    'set +e',
  ].join('\n');
  return run('unshare', ['--mount', '--net', '--pid', '--fork', '--mount-proc', 'bash', '-c', `${setup}\n${script}`], { timeoutMs });
}
