import assert from 'assert';
import { mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { parseAddress, parseCidr } from '../../net/address';
import { DEFAULT_POOL_ID, HostRanges, Ipam } from '../../ipam/ipam';
import { LevelStore } from '../../store/level-store';

const GW = { RequestAddressType: 'com.docker.network.gateway' };

function hostRanges(): HostRanges {
  return {
    4: { range: parseCidr('10.77.0.0/16'), router: parseAddress('10.77.0.1').value },
    6: { range: parseCidr('f00d::a4d:0:0/96'), router: parseAddress('f00d::a4d:0:1').value },
    hostAddresses: [parseAddress('10.77.0.9')],
  };
}

describe('ipam (LevelDB on disk)', () => {
  let dir: string;
  let store: LevelStore;
  let ipam: Ipam;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ipam-'));
    store = await LevelStore.open(dir);
    ipam = await Ipam.load(store, hostRanges());
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function reopen(): Promise<void> {
    await store.close();
    store = await LevelStore.open(dir);
    ipam = await Ipam.load(store, hostRanges());
  }

  it('answers default requests with the whole space and the router as gateway, so the engine cannot loop', async () => {
    const v4 = await ipam.requestPool({ pool: '', subPool: '', v6: false });
    assert.deepStrictEqual(v4, { poolId: DEFAULT_POOL_ID[4], pool: '0.0.0.0/0', data: { 'com.docker.network.gateway': '10.77.0.1/32' } });
    const v6 = await ipam.requestPool({ pool: '', subPool: '', v6: true });
    assert.strictEqual(v6.pool, '::/0');
    assert.strictEqual(v6.data['com.docker.network.gateway'], 'f00d::a4d:0:1/128');
  });

  it('hands out /32 and /128 addresses, never the base, router or a host address', async () => {
    const got = new Set<string>();
    for (let i = 0; i < 12; i++) got.add(await ipam.requestAddress(DEFAULT_POOL_ID[4], '', null));
    assert.strictEqual(got.size, 12);
    for (const a of got) assert.match(a, /^10\.77\.0\.\d+\/32$/);
    for (const bad of ['10.77.0.0/32', '10.77.0.1/32', '10.77.0.9/32']) assert.ok(!got.has(bad), bad);
    assert.match(await ipam.requestAddress(DEFAULT_POOL_ID[6], '', null), /^f00d::a4d:0:\w+\/128$/);
  });

  it('gives 200 concurrent requests 200 distinct addresses', async () => {
    const all = await Promise.all(Array.from({ length: 200 }, () => ipam.requestAddress(DEFAULT_POOL_ID[4], '', null)));
    assert.strictEqual(new Set(all).size, 200);
  });

  it('remembers every allocation after a restart and never hands one out twice', async () => {
    const before = await Promise.all(Array.from({ length: 20 }, () => ipam.requestAddress(DEFAULT_POOL_ID[4], '', null)));
    await reopen();
    const after = await Promise.all(Array.from({ length: 20 }, () => ipam.requestAddress(DEFAULT_POOL_ID[4], '', null)));
    for (const a of after) assert.ok(!before.includes(a), `${a} handed out twice`);
    for (const a of before) assert.ok(ipam.isAllocated(DEFAULT_POOL_ID[4], a.split('/')[0]!));
  });

  it('--subnet with --gateway and --ip-range: gateway honoured, containers only from the range', async () => {
    const p = await ipam.requestPool({ pool: '192.168.77.0/24', subPool: '192.168.77.128/28', v6: false });
    assert.strictEqual(p.pool, '192.168.77.0/24');
    assert.strictEqual(await ipam.requestAddress(p.poolId, '192.168.77.254', GW), '192.168.77.254/24');
    for (let i = 0; i < 16; i++) {
      const a = await ipam.requestAddress(p.poolId, '', null);
      const last = Number(a.split('/')[0]!.split('.')[3]);
      assert.ok(last >= 128 && last <= 143, a);
    }
    await assert.rejects(ipam.requestAddress(p.poolId, '', null), /no free address in pool 192\.168\.77\.128\/28 \(16 of 16 in use\)/);
  });

  it('a gateway without --gateway is the first address of the subnet', async () => {
    const p = await ipam.requestPool({ pool: '192.168.78.0/24', subPool: '', v6: false });
    assert.strictEqual(await ipam.requestAddress(p.poolId, '', GW), '192.168.78.1/24');
  });

  it('specific addresses: taken, outside or reserved ones are refused with the reason', async () => {
    const p = await ipam.requestPool({ pool: '192.168.79.0/24', subPool: '', v6: false });
    assert.strictEqual(await ipam.requestAddress(p.poolId, '192.168.79.50', null), '192.168.79.50/24', 'a subnet pool answers its own length');
    await assert.rejects(ipam.requestAddress(p.poolId, '192.168.79.50', null), /already in use/);
    await assert.rejects(ipam.requestAddress(p.poolId, '192.168.80.1', null), /outside pool/);
    await assert.rejects(ipam.requestAddress(p.poolId, '192.168.79.0', null), /reserved/);
    await assert.rejects(ipam.requestAddress(p.poolId, 'f00d::1', null), /not IPv4/);
  });

  it('refuses overlapping subnets, naming what they overlap, and leaves state as it was', async () => {
    await ipam.requestPool({ pool: '192.168.81.0/24', subPool: '', v6: false });
    const before = JSON.stringify(ipam.snapshot());
    await assert.rejects(ipam.requestPool({ pool: '192.168.81.128/25', subPool: '', v6: false }), /overlaps --subnet 192\.168\.81\.0\/24 of another network/);
    await assert.rejects(ipam.requestPool({ pool: '10.77.5.0/24', subPool: '', v6: false }), /overlaps this agent's host range/);
    await assert.rejects(ipam.requestPool({ pool: '10.1.2.3/24', subPool: '', v6: false }), /host bits set/);
    await assert.rejects(ipam.requestPool({ pool: '192.168.82.0/24', subPool: '192.168.83.0/25', v6: false }), /not inside/);
    assert.strictEqual(JSON.stringify(ipam.snapshot()), before);
    await reopen();
    assert.strictEqual(JSON.stringify(ipam.snapshot()), before);
  });

  it('release is idempotent and frees the address for later', async () => {
    const p = await ipam.requestPool({ pool: '192.168.84.0/30', subPool: '', v6: false });
    const a = (await ipam.requestAddress(p.poolId, '', null)).split('/')[0]!;
    assert.strictEqual(await ipam.releaseAddress(p.poolId, a), true);
    assert.strictEqual(await ipam.releaseAddress(p.poolId, a), false);
    await reopen();
    assert.ok(!ipam.isAllocated(p.poolId, a));
    await assert.rejects(ipam.releaseAddress('no-such-pool', a), /pool "no-such-pool" does not exist/);
  });

  it('a host-range network releasing its gateway (the shared router) is a quiet no-op', async () => {
    assert.strictEqual(await ipam.releaseAddress(DEFAULT_POOL_ID[4], '10.77.0.1'), true);
    assert.strictEqual(await ipam.requestAddress(DEFAULT_POOL_ID[4], '', { RequestAddressType: 'com.docker.network.gateway' }), '10.77.0.1/32');
  });

  it('releasing a subnet pool forgets it and its addresses; the host pools stay', async () => {
    const p = await ipam.requestPool({ pool: '192.168.85.0/24', subPool: '', v6: false });
    await ipam.requestAddress(p.poolId, '', GW);
    await ipam.releasePool(p.poolId);
    await ipam.releasePool(DEFAULT_POOL_ID[4]);
    await reopen();
    assert.deepStrictEqual(
      ipam
        .snapshot()
        .map((s) => s.id)
        .sort(),
      [DEFAULT_POOL_ID[4], DEFAULT_POOL_ID[6]].sort(),
    );
    await ipam.requestPool({ pool: '192.168.85.0/24', subPool: '', v6: false });
  });

  it('IPv6-only: an IPv6 subnet pool works on its own', async () => {
    const p = await ipam.requestPool({ pool: 'fd00:77::/64', subPool: '', v6: true });
    assert.strictEqual(await ipam.requestAddress(p.poolId, '', GW), 'fd00:77::1/64');
    assert.strictEqual(await ipam.requestAddress(p.poolId, '', null), 'fd00:77::2/64');
  });

  it('without an IPv6 range, a default IPv6 request says how to enable it', async () => {
    await store.close();
    store = await LevelStore.open(dir);
    const { 6: _v6, ...v4only } = hostRanges();
    ipam = await Ipam.load(store, v4only);
    await assert.rejects(ipam.requestPool({ pool: '', subPool: '', v6: true }), /--enable-ipv6/);
  });
});
