import { Result, run } from './exec';

/**
 * Runs a script as if on a machine of its own: new mount, network and PID
 * namespaces, with fresh tmpfs over the places a bring-up writes (/run, the
 * state of Docker, containerd and cilium, /var/log, systemd units), a bpffs of
 * its own and only a loopback. Whatever it starts (an agent, a dockerd with
 * iptables on) dies with it; the machine's own agent, dockerd, units, rules
 * and pinned maps are never touched. No systemd runs inside, so the bring-up
 * takes its no-systemd path.
 */
export function inSandbox(script: string, timeoutMs: number): Promise<Result> {
  const setup = [
    'set -e',
    'mount --make-rprivate /',
    'for d in /run /var/lib/docker /var/lib/containerd /var/lib/cilium /var/log /etc/systemd/system; do mkdir -p "$d"; mount -t tmpfs tmpfs "$d"; done',
    'mkdir -p /run/lock',
    'mount -t bpf bpf /sys/fs/bpf',
    'ip link set lo up',
    'set +e',
  ].join('\n');
  return run('unshare', ['--mount', '--net', '--pid', '--fork', '--mount-proc', 'bash', '-c', `${setup}\n${script}`], { timeoutMs });
}
