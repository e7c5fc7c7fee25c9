import assert from 'assert';
import { bpf, checkPtr } from '../../datapath/bpf/libbpf';
import { OBJECTS, layoutProblems } from '../../datapath/bpf/loader';
import { MAP_LAYOUTS, PROGRAM_MAP_LAYOUTS } from '../../datapath/bpf/maps';

/** The C side (bpf/lib/maps.h, compiled) and the TS codecs describe every map alike; opening an object needs no root. */
describe('BPF map layouts: the compiled objects and the agent codecs agree', () => {
  for (const path of OBJECTS) {
    it(`${path.split('/').pop()}: every map the agent knows, with the key and value sizes its codecs write`, () => {
      const obj = checkPtr(bpf.openFile(path, null), `open ${path} (run npm run build)`);
      try {
        assert.deepStrictEqual(layoutProblems(obj), []);
        // The check sees a codec that does not follow the C side.
        const all = { ...MAP_LAYOUTS, ...PROGRAM_MAP_LAYOUTS };
        const drifted = { ...all, cilium_ct: { key: 48, value: 48 } };
        assert.deepStrictEqual(layoutProblems(obj, drifted), ['map cilium_ct has a 48-byte key and 40-byte value, the codec 48 and 48']);
        const { cilium_frag: _frag, ...withoutFrag } = all;
        assert.deepStrictEqual(layoutProblems(obj, withoutFrag), ['map cilium_frag is not known to the agent']);
      } finally {
        bpf.close(obj);
      }
    });
  }
});
