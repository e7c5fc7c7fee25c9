import { run } from './exec';

/**
 * Mocha root hooks: the suite leaves the host's cilium_host device as it found
 * it. Every test agent puts its range's router address there (and creates the
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

let before: string[] | undefined;

export const mochaHooks = {
  async beforeAll(): Promise<void> {
    before = await addresses();
  },
  async afterAll(): Promise<void> {
    const now = await addresses();
    if (now === undefined) return;
    if (before === undefined) {
      await run('ip', ['link', 'del', 'cilium_host']);
      return;
    }
    for (const a of now) if (!before.includes(a)) await run('ip', ['addr', 'del', a, 'dev', 'cilium_host']);
  },
};
