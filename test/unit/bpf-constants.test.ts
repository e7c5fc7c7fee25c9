import assert from 'assert';
import { readFileSync } from 'fs';
import { resolve } from 'path';
import { CT_FLAGS, DIR, EP_FLAGS, EVENT, LB_CT, NAT_FLAGS, REASON, REASON_NAMES } from '../../datapath/bpf/constants';
import { RESERVED } from '../../identity/reserved';

const HEADER = resolve(__dirname, '../../../bpf/lib/common.h');

/** `#define PREFIX_NAME <number>` of the header, by prefix, NAME in camelCase (EP_F_NOT_READY -> notReady). */
function defines(prefix: string): Record<string, number> {
  const out: Record<string, number> = {};
  const re = new RegExp(`^#define ${prefix}([A-Z0-9_]+)\\s+(0x[0-9a-fA-F]+|\\d+)\\b`, 'gm');
  for (const m of readFileSync(HEADER, 'utf8').matchAll(re)) {
    const camel = m[1]!.toLowerCase().replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
    out[camel] = Number(m[2]);
  }
  return out;
}

/** The one C header of shared constants and its TypeScript mirror say the same, both ways. */
describe('BPF constants: bpf/lib/common.h and datapath/bpf/constants.ts agree', () => {
  for (const [prefix, ts] of [
    ['DIR_', DIR],
    ['EP_F_', EP_FLAGS],
    ['CT_F_', CT_FLAGS],
    ['EVENT_', EVENT],
    ['NAT_F_', NAT_FLAGS],
    ['LB_CT_', LB_CT],
    ['REASON_', REASON],
  ] as const) {
    it(`${prefix}*`, () => {
      assert.deepStrictEqual(defines(prefix), { ...ts });
    });
  }

  it('every reason has a name users read', () => {
    for (const n of Object.values(REASON)) assert.ok(REASON_NAMES[n], `REASON ${n} has no name`);
  });

  it("ID_*: the datapath's reserved identities are Cilium's (identity/reserved.ts)", () => {
    const c = defines('ID_');
    assert.ok(Object.keys(c).length >= 3, `found ${JSON.stringify(c)} in ${HEADER}`);
    for (const [name, n] of Object.entries(c)) assert.strictEqual(RESERVED[name as keyof typeof RESERVED], n, `ID_${name.toUpperCase()}`);
  });
});
