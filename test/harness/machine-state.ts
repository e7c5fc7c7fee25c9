import { readFileSync } from 'fs';
import { cgroup2Mounts } from '../../datapath/cgroup-root';
import { run } from './exec';

/**
 * The suite and the benchmarks leave the host's cilium_host device as they
 * found it. Every test agent puts its range's router address there (and creates the
 * device pair when no agent ran before); the machine's own agent, if any,
 * keeps its addresses.
 */
const addresses = async (): Promise<string[] | undefined> => {
  const r = await run('ip', ['-o', 'addr', 'show', 'dev', 'cilium_host']);
  if (r.code !== 0) return undefined;
  return r.stdout
    .split('\n')
    .map((l) => /inet6? (\S+)/.exec(l)?.[1])
    .filter((a): a is string => !!a && !a.startsWith('fe80:'));
};

/** Notes cilium_host as it is; the function returned puts it back so (the device gone if it was not there). */
export async function keepCiliumHost(): Promise<() => Promise<void>> {
  const before = await addresses();
  return async () => {
    const now = await addresses();
    if (now === undefined) return;
    if (before === undefined) {
      await run('ip', ['link', 'del', 'cilium_host']);
      return;
    }
    for (const a of now) if (!before.includes(a)) await run('ip', ['addr', 'del', a, 'dev', 'cilium_host']);
  };
}

/** The programs attached to the cgroup v2 root (bpftool's lines): a test agent's socket programs must leave with it. */
const cgroupPrograms = async (): Promise<string[]> => {
  const root = cgroup2Mounts(readFileSync('/proc/self/mountinfo', 'utf8'))[0];
  if (!root) return [];
  const r = await run('bpftool', ['cgroup', 'show', root]);
  return r.stdout.split('\n').filter((l) => /^\d+\s/.test(l));
};

let restore: (() => Promise<void>) | undefined;
let programsBefore: string[] = [];

export const mochaHooks = {
  async beforeAll(): Promise<void> {
    restore = await keepCiliumHost();
    programsBefore = await cgroupPrograms();
  },
  async afterAll(): Promise<void> {
    await restore?.();
    const left = (await cgroupPrograms()).filter((l) => !programsBefore.includes(l));
    if (left.length) throw new Error(`socket programs left attached to the cgroup root: ${left.join('; ')}`);
  },
};
