import assert from 'assert';
import { readFileSync, readdirSync, statSync } from 'fs';
import { join } from 'path';

const ROOT = join(__dirname, '../../..');
/** Every product folder: what tsconfig compiles, less the tests, benchmarks and the multi-host lab (a test rig that starts dockerds and agents). */
const PRODUCT = (JSON.parse(readFileSync(join(ROOT, 'tsconfig.json'), 'utf8')) as { include: string[] }).include.filter(
  (d) => !['test', 'bench', 'lab'].includes(d),
);

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** The one process the agent starts: its L7 proxy, this package's own module, forked with fixed arguments (no shell). */
const PROXY_SUPERVISOR = join(ROOT, 'proxy', 'supervisor.ts');

describe('security: no command is ever run by the agent or the CLI', () => {
  it('no product module imports child_process but the L7 proxy supervisor (so no shell command can be built from request data)', () => {
    const offenders = PRODUCT.flatMap((d) => sources(join(ROOT, d))).filter((f) =>
      /from 'child_process'|require\('child_process'\)/.test(readFileSync(f, 'utf8')),
    );
    assert.deepStrictEqual(offenders, [PROXY_SUPERVISOR]);
  });

  it('the supervisor forks only its own proxy module: no spawn, exec or shell', () => {
    const src = readFileSync(PROXY_SUPERVISOR, 'utf8');
    assert.match(src, /^import \{ ChildProcess, fork \} from 'child_process';$/m);
    assert.deepStrictEqual(src.match(/\bfork\([^)]*\)/g), ["fork(join(__dirname, 'main.js')"]);
    assert.doesNotMatch(src, /\b(spawn|exec|execFile|execSync)\(/);
  });
});
