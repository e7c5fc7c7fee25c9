import assert from 'assert';
import { parseConfig } from '../../agent/config';
import { cgroup2Mounts } from '../../datapath/cgroup-root';

describe('socket load balancing: flags and the cgroup v2 root', () => {
  it('--bpf-lb-sock is on by default, takes =true/=false as Cilium spells it, and refuses anything else', () => {
    const on = parseConfig([]);
    assert.ok(on !== 'help' && on.socketLb && on.cgroupRoot === undefined);
    const bare = parseConfig(['--bpf-lb-sock']);
    assert.ok(bare !== 'help' && bare.socketLb);
    const off = parseConfig(['--bpf-lb-sock=false', '--cgroup-root=/run/cilium/cgroupv2']);
    assert.ok(off !== 'help' && !off.socketLb && off.cgroupRoot === '/run/cilium/cgroupv2');
    assert.throws(() => parseConfig(['--bpf-lb-sock=maybe']), /--bpf-lb-sock must be true or false, got "maybe"/);
    assert.throws(() => parseConfig(['--cgroup-root=cgroup']), /--cgroup-root must be an absolute path/);
  });

  it("finds the hierarchy's root mounts in mountinfo: unified, hybrid, none, and not a sub-cgroup bind mount", () => {
    const unified = '29 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot';
    const hybrid = [
      '30 25 0:27 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755',
      '31 30 0:28 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate',
      '32 30 0:29 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd',
    ].join('\n');
    const sub = '40 23 0:26 /system.slice /mnt/slice rw,relatime - cgroup2 cgroup2 rw';
    assert.deepStrictEqual(cgroup2Mounts(unified), ['/sys/fs/cgroup']);
    assert.deepStrictEqual(cgroup2Mounts(hybrid), ['/sys/fs/cgroup/unified']);
    assert.deepStrictEqual(cgroup2Mounts(sub), []);
    assert.deepStrictEqual(cgroup2Mounts('24 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw'), []);
  });
});
