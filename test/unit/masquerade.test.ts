import assert from 'assert';
import { mkdtempSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import winston from 'winston';
import { parseConfig } from '../../agent/config';
import { HostDevices, masqueradePorts, selectDevices } from '../../datapath/devices';
import { parseAddress, parseCidr } from '../../net/address';
import type { AddressEntry, HostLink } from '../../datapath/rtnl';
import { memoryMaps } from '../harness/memory-map';

const link = (index: number, name: string): HostLink => ({ index, name, alias: '' });
const addr = (index: number, text: string): AddressEntry => ({ index, ...parseAddress(text), prefixlen: 24 });

describe('masquerade: devices, ports and flags', () => {
  const links = [
    link(1, 'lo'),
    link(2, 'eth0'),
    link(3, 'docker0'),
    link(4, 'br-0123456789ab'),
    link(5, 'cilium_host'),
    link(6, 'lxc0123456789ab'),
    link(7, 'eth1'),
    link(8, 'wg0'),
  ];
  const addresses = [
    addr(1, '127.0.0.1'),
    addr(2, '192.0.2.2'),
    addr(2, 'fe80::1'),
    addr(2, 'fd00::2'),
    addr(3, '172.17.0.1'),
    addr(4, '172.18.0.1'),
    addr(5, '10.216.0.1'),
    addr(7, 'fe80::7'),
    addr(8, '169.254.3.3'),
  ];

  it('by default: every device with a global address, but loopback, Docker bridges and ours; the first global address per family', () => {
    assert.deepStrictEqual(selectDevices(links, addresses), [{ name: 'eth0', ifindex: 2, ipv4: '192.0.2.2', ipv6: 'fd00::2' }]);
  });

  it('--devices: only those named, still only with a global address', () => {
    assert.deepStrictEqual(selectDevices(links, addresses, ['docker0', 'eth1']), [{ name: 'docker0', ifindex: 3, ipv4: '172.17.0.1' }]);
  });

  it('ports beside the ephemeral range, or a clear error when none are left', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ports-'));
    const range = (text: string) => {
      writeFileSync(join(dir, 'r'), text);
      return masqueradePorts(join(dir, 'r'));
    };
    try {
      assert.deepStrictEqual(range('32768\t60999\n'), { min: 61000, max: 65535 });
      assert.deepStrictEqual(range('40000 65535\n'), { min: 1024, max: 39999 });
      assert.throws(() => range('1024 65535\n'), /ip_local_port_range is 1024-65535: no 1,024 ports are left beside it for masquerading/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('flags: on by default, not to this host ranges; exclusions add; a bad CIDR names its flag', () => {
    const cfg = parseConfig(['--ipv4-range=10.9.0.0/16', '--ipv6-range=f00d::9:0:0/96']);
    assert.ok(cfg !== 'help');
    assert.strictEqual(cfg.masquerade, true);
    assert.deepStrictEqual(cfg.noMasqueradeTo, [parseCidr('10.9.0.0/16'), parseCidr('f00d::9:0:0/96')]);
    assert.strictEqual(cfg.devices, undefined);
    const more = parseConfig([
      '--ipv4-range=10.9.0.0/16',
      '--native-routing-cidr=10.0.0.0/8',
      '--masquerade-exclude=192.0.2.0/24,198.51.100.0/24',
      '--devices=eth0,eth1',
    ]);
    assert.ok(more !== 'help');
    assert.deepStrictEqual(
      more.noMasqueradeTo.map((c) => c.bits),
      [8, 24, 24],
    );
    assert.deepStrictEqual(more.devices, ['eth0', 'eth1']);
    const off = parseConfig(['--enable-masquerade=false']);
    assert.ok(off !== 'help' && !off.masquerade);
    assert.throws(() => parseConfig(['--masquerade-exclude=192.0.2.1/24']), /--masquerade-exclude: "192.0.2.1\/24" has host bits set/);
    assert.throws(() => parseConfig(['--devices=eth0,bad name']), /--devices takes interface names/);
    const none = parseConfig(['--devices=']);
    assert.ok(none !== 'help');
    assert.deepStrictEqual(none.devices, []);
  });

  it('writes the devices and exclusions into the maps, and drops a device that went away', async () => {
    const { maps, raw } = memoryMaps();
    const attached: number[] = [];
    const m = new HostDevices(
      { maps, attachNetdev: (i) => void attached.push(i) },
      { masquerade: true, noMasqueradeTo: [parseCidr('10.9.0.0/16')] },
      winston.createLogger({ silent: true }),
    );
    maps.natDevices.set(99, { ipv4: 1n }); // left by an earlier run for a device that is gone
    await m.start(60_000); // this machine's own devices, read over rtnetlink (no privilege needed)
    m.stop();
    assert.strictEqual(raw.cilium_nat_exclude.keys().length, 1);
    assert.deepStrictEqual(
      maps.natDevices.ifindexes().sort(),
      m
        .devices()
        .map((d) => d.ifindex)
        .sort(),
    );
    assert.ok(!maps.natDevices.ifindexes().includes(99));
    assert.deepStrictEqual(
      attached,
      m.devices().map((d) => d.ifindex),
    );
  });
});

describe('host devices with masquerade off', () => {
  it('still carry the device program (published ports), with no address to masquerade to', async () => {
    const { maps } = memoryMaps();
    const attached: number[] = [];
    const d = new HostDevices(
      { maps, attachNetdev: (i) => void attached.push(i) },
      { masquerade: false, noMasqueradeTo: [] },
      winston.createLogger({ silent: true }),
    );
    await d.start(60_000);
    d.stop();
    assert.deepStrictEqual(d.devices(), []);
    assert.ok(attached.length > 0, 'this machine has a device with a global address');
    assert.deepStrictEqual(maps.natDevices.ifindexes().sort(), [...attached].sort());
    for (const i of attached) assert.ok(maps.natDevices.map.lookup(Buffer.from(Uint32Array.of(i).buffer))!.every((b) => b === 0));
  });
});
