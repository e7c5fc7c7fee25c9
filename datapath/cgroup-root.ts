import { mkdir, readFile } from 'fs/promises';
import { mountCgroup2 } from './libc';

/** Where Cilium mounts the cgroup v2 hierarchy when the host has not. */
export const CILIUM_CGROUP_ROOT = '/run/cilium/cgroupv2';

/** Mount points of the cgroup v2 hierarchy's root in this mount namespace (/proc/self/mountinfo). */
export function cgroup2Mounts(mountinfo: string): string[] {
  const found: string[] = [];
  for (const line of mountinfo.split('\n')) {
    const [mine, theirs] = line.split(' - ');
    const f = mine?.split(' ') ?? [];
    // fields: id parent major:minor root mount-point ...; after " - ": fstype source options
    if (theirs?.split(' ')[0] === 'cgroup2' && f[3] === '/' && f[4]) found.push(f[4].replace(/\\040/g, ' '));
  }
  return found;
}

/**
 * The cgroup v2 root the socket programs attach to (they then see every
 * process's sockets): the one configured, which must be such a mount; else
 * the host's (/sys/fs/cgroup, or /sys/fs/cgroup/unified on a hybrid host);
 * else one mounted at /run/cilium/cgroupv2.
 */
export async function cgroupRoot(configured?: string): Promise<string> {
  const mounts = cgroup2Mounts(await readFile('/proc/self/mountinfo', 'utf8'));
  if (configured) {
    if (!mounts.includes(configured)) throw new Error(`--cgroup-root ${configured} is not a mount of the cgroup v2 hierarchy's root`);
    return configured;
  }
  if (mounts[0]) return mounts[0];
  await mkdir(CILIUM_CGROUP_ROOT, { recursive: true });
  mountCgroup2(CILIUM_CGROUP_ROOT);
  return CILIUM_CGROUP_ROOT;
}
