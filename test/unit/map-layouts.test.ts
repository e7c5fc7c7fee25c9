import assert from 'assert';
import { bpf, checkPtr } from '../../datapath/bpf/libbpf';
import { bytes, struct } from '../../datapath/bpf/layout';
import { OBJECTS, layoutProblems } from '../../datapath/bpf/loader';
import { CT_VALUE, MAP_LAYOUTS, PROGRAM_MAP_LAYOUTS } from '../../datapath/bpf/maps';

/** The C side (bpf/lib/maps.h, compiled with BTF) and the agent's map descriptions agree; opening an object needs no root. */
describe('BPF map layouts: the compiled objects and the agent codecs agree', () => {
  const all = { ...MAP_LAYOUTS, ...PROGRAM_MAP_LAYOUTS };
  for (const path of OBJECTS) {
    it(`${path.split('/').pop()}: every map the agent knows, member for member`, () => {
      const obj = checkPtr(bpf.openFile(path, null), `open ${path} (run npm run build)`);
      try {
        assert.deepStrictEqual(layoutProblems(obj), []);
      } finally {
        bpf.close(obj);
      }
    });
  }

  it('a codec that does not follow the C side is named with the map and the member: size, order, name, a member missing', () => {
    const obj = checkPtr(bpf.openFile(OBJECTS[0], null), `open ${OBJECTS[0]} (run npm run build)`);
    const ct = (fields: Parameters<typeof struct>[1]) => ({ ...all, cilium_ct: { key: MAP_LAYOUTS.cilium_ct.key, value: struct('struct ct_value', fields) } });
    try {
      const longer = ct([
        ['packets', 'u64'],
        ['bytes', 'u64'],
        ['peer_identity', 'u32'],
        ['expires', 'u32'],
        ['ep_ifindex', 'u32'],
        ['policy_gen', 'u32'],
        ['flags', 'u8'],
        ['pad', bytes(15)],
      ]);
      assert.deepStrictEqual(layoutProblems(obj, longer), ['map cilium_ct has a 48-byte key and 40-byte value, the codec 48 and 48']);
      // Same size, two members swapped: only BTF can tell.
      const swapped = ct([
        ['packets', 'u64'],
        ['bytes', 'u64'],
        ['expires', 'u32'],
        ['peer_identity', 'u32'],
        ['ep_ifindex', 'u32'],
        ['policy_gen', 'u32'],
        ['flags', 'u8'],
        ['pad', 'u8'],
        ['proxy_port', 'u16'],
        ['pad2', bytes(4)],
      ]);
      assert.deepStrictEqual(layoutProblems(obj, swapped), [
        "map cilium_ct value: struct ct_value.peer_identity is at byte 16 (4 bytes) in C, at byte 20 (4 bytes) in the agent's codec",
        "map cilium_ct value: struct ct_value.expires is at byte 20 (4 bytes) in C, at byte 16 (4 bytes) in the agent's codec",
      ]);
      const renamed = ct([
        ['packets', 'u64'],
        ['bytes', 'u64'],
        ['peer_identity', 'u32'],
        ['expiry', 'u32'],
        ['ep_ifindex', 'u32'],
        ['policy_gen', 'u32'],
        ['flags', 'u8'],
        ['pad', 'u8'],
        ['proxy_port', 'u16'],
        ['pad2', bytes(4)],
      ]);
      assert.deepStrictEqual(layoutProblems(obj, renamed), [
        "map cilium_ct value: struct ct_value has expires at byte 20 (4 bytes), the agent's codec does not",
        "map cilium_ct value: the agent's codec has struct ct_value.expiry, C does not",
      ]);
      // A nested struct is compared through: struct flow inside struct ct_key.
      const key = struct('struct ct_key', [
        [
          'flow',
          struct('struct flow', [
            ['saddr', bytes(16)],
            ['daddr', bytes(16)],
            ['dport', 'be16'],
            ['sport', 'be16'],
            ['proto', 'u8'],
            ['family', 'u8'],
            ['tcp_flags', 'u8'],
            ['pad', 'u8'],
          ]),
        ],
        ['owner', 'u32'],
        ['dir', 'u32'],
      ]);
      assert.deepStrictEqual(layoutProblems(obj, { ...all, cilium_ct: { key, value: CT_VALUE } }), [
        "map cilium_ct key: struct ct_key.flow.sport is at byte 32 (2 bytes) in C, at byte 34 (2 bytes) in the agent's codec",
        "map cilium_ct key: struct ct_key.flow.dport is at byte 34 (2 bytes) in C, at byte 32 (2 bytes) in the agent's codec",
      ]);
      const { cilium_frag: _frag, ...withoutFrag } = all;
      assert.deepStrictEqual(layoutProblems(obj, withoutFrag), ['map cilium_frag is not known to the agent']);
    } finally {
      bpf.close(obj);
    }
  });

  it('the codecs round-trip through the described layout: what is written is what is read back', () => {
    const v = {
      packets: 3n,
      bytes: 1500n,
      peer_identity: 256,
      expires: 42,
      ep_ifindex: 7,
      policy_gen: 9,
      flags: 1,
      pad: 0,
      proxy_port: 15001,
      pad2: Buffer.alloc(4),
    };
    const b = CT_VALUE.encode(v);
    assert.strictEqual(b.length, 40);
    assert.deepStrictEqual(CT_VALUE.decode(b), v);
    assert.strictEqual(b.readUInt32LE(CT_VALUE.offset('expires')), 42);
  });
});
