import assert from 'assert';
import { readFileSync, readdirSync, statSync } from 'fs';
import { join } from 'path';

const ROOT = join(__dirname, '../../..');
/** Every product folder: what tsconfig compiles, less the tests and benchmarks. */
const PRODUCT = (JSON.parse(readFileSync(join(ROOT, 'tsconfig.json'), 'utf8')) as { include: string[] }).include.filter((d) => d !== 'test' && d !== 'bench');

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

describe('security: no process is ever spawned by the agent or the CLI', () => {
  it('no product module imports child_process (so no shell command can be built from request data)', () => {
    const offenders = PRODUCT.flatMap((d) => sources(join(ROOT, d))).filter((f) =>
      /from 'child_process'|require\('child_process'\)/.test(readFileSync(f, 'utf8')),
    );
    assert.deepStrictEqual(offenders, []);
  });
});
