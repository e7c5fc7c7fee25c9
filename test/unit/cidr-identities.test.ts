import assert from 'assert';
import { CidrIdentities } from '../../identity/cidr';
import { MIN_CIDR_IDENTITY } from '../../identity/reserved';

describe('identity/cidr: the identities of the prefixes rules name', () => {
  it('numbers new prefixes from MIN_CIDR_IDENTITY, keeps the numbers of those still named, returns those no rule names', () => {
    const c = new CidrIdentities([]);
    assert.deepStrictEqual(c.assign(['10.0.0.0/8', '192.0.2.0/24']), []);
    assert.deepStrictEqual(
      c.list().map((i) => [i.id, i.labels]),
      [
        [MIN_CIDR_IDENTITY, ['cidr:10.0.0.0/8', 'reserved:world']],
        [MIN_CIDR_IDENTITY + 1, ['cidr:192.0.2.0/24', 'reserved:world']],
      ],
    );
    assert.deepStrictEqual(c.assign(['192.0.2.0/24', 'f00d::/16']), ['10.0.0.0/8']);
    assert.deepStrictEqual(
      c.list().map((i) => i.id),
      [MIN_CIDR_IDENTITY + 1, MIN_CIDR_IDENTITY + 2],
    );
  });
  it('after a restart, takes its numbers back from the ipcache and leaves endpoint identities out', () => {
    const c = new CidrIdentities([
      { family: 4, value: 0xc0000200n, bits: 24, identity: MIN_CIDR_IDENTITY + 7 },
      { family: 4, value: 0x0a000005n, bits: 32, identity: 300 },
    ]);
    assert.deepStrictEqual(
      c.list().map((i) => [i.id, i.labels[0]]),
      [[MIN_CIDR_IDENTITY + 7, 'cidr:192.0.2.0/24']],
    );
    c.assign(['192.0.2.0/24', '198.51.100.0/24']);
    assert.deepStrictEqual(
      c.entries().map(([p, id]) => [p.bits, id]),
      [
        [24, MIN_CIDR_IDENTITY + 7],
        [24, MIN_CIDR_IDENTITY + 8],
      ],
    );
  });
});
