import { must, run } from './exec';

/**
 * A network namespace standing for an outside host: a veth to the host with
 * 192.168.250.1/24 on the host side and two addresses inside (one in the
 * upper half of the /24, for "except" rules), a default route back through
 * the host, and a busybox httpd on port 80.
 */
export class OutsideHost {
  readonly exceptAddress = '192.168.250.200';

  constructor(
    readonly name = 'cilium-outside',
    readonly address = '192.168.250.2',
  ) {}

  async up(): Promise<void> {
    await this.down();
    const ns = ['ip', 'netns', 'exec', this.name];
    const steps: string[][] = [
      ['ip', 'netns', 'add', this.name],
      ['ip', 'link', 'add', 'cil-out0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', this.name],
      ['ip', 'addr', 'add', '192.168.250.1/24', 'dev', 'cil-out0'],
      ['ip', 'link', 'set', 'cil-out0', 'up'],
      [...ns, 'ip', 'link', 'set', 'lo', 'up'],
      [...ns, 'ip', 'link', 'set', 'eth0', 'up'],
      [...ns, 'ip', 'addr', 'add', `${this.address}/24`, 'dev', 'eth0'],
      [...ns, 'ip', 'addr', 'add', `${this.exceptAddress}/24`, 'dev', 'eth0'],
      [...ns, 'ip', 'route', 'add', 'default', 'via', '192.168.250.1'],
      ['mkdir', '-p', `/tmp/${this.name}-www`],
      ['sh', '-c', `echo hello from outside > /tmp/${this.name}-www/index.html`],
      [...ns, 'busybox', 'httpd', '-p', '80', '-h', `/tmp/${this.name}-www`],
    ];
    for (const s of steps) await must(s[0]!, s.slice(1));
  }

  /** wget from inside the namespace; exit code 0 when it got an answer. */
  async fetch(url: string): Promise<number> {
    return (await run('ip', ['netns', 'exec', this.name, 'busybox', 'timeout', '3', 'busybox', 'wget', '-q', '-O-', url])).code;
  }

  async down(): Promise<void> {
    await run('ip', ['netns', 'pids', this.name]).then(async (r) => {
      for (const pid of r.stdout.split('\n').filter(Boolean)) await run('kill', [pid]);
    });
    await run('ip', ['netns', 'del', this.name]);
    await run('ip', ['link', 'del', 'cil-out0']);
    await run('rm', ['-rf', `/tmp/${this.name}-www`]);
  }
}

/**
 * Two namespaces of a test's own: a "host" (where a test runs dockerd and the
 * agent) and an "outside" one beyond it, joined by a veth whose host end is
 * a device with a global address of each family. Nothing routes between
 * the outside and any container range.
 */
export class HostAndOutside {
  constructor(
    readonly host: string,
    readonly outside: string,
    readonly device: { name: string; peer: string; v4: string; v6: string },
    readonly remote: { v4: string; v6: string },
  ) {}

  async up(): Promise<void> {
    for (const ns of [this.host, this.outside]) {
      await run('ip', ['netns', 'del', ns]);
      await must('ip', ['netns', 'add', ns]);
      await must('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    const { name, peer, v4, v6 } = this.device;
    await must('ip', ['-n', this.host, 'link', 'add', name, 'type', 'veth', 'peer', 'name', peer, 'netns', this.outside]);
    await must('ip', ['-n', this.host, 'addr', 'add', `${v4}/24`, 'dev', name]);
    await must('ip', ['-n', this.host, 'addr', 'add', `${v6}/64`, 'dev', name, 'nodad']);
    await must('ip', ['-n', this.host, 'link', 'set', name, 'up']);
    await must('ip', ['-n', this.outside, 'addr', 'add', `${this.remote.v4}/24`, 'dev', peer]);
    await must('ip', ['-n', this.outside, 'addr', 'add', `${this.remote.v6}/64`, 'dev', peer, 'nodad']);
    await must('ip', ['-n', this.outside, 'link', 'set', peer, 'up']);
  }

  /** Kills what still runs in either namespace (by pid) and deletes both. */
  async down(): Promise<void> {
    for (const ns of [this.host, this.outside]) {
      for (const pid of (await run('ip', ['netns', 'pids', ns])).stdout.split('\n').filter(Boolean)) await run('kill', ['-9', pid]);
      await run('ip', ['netns', 'del', ns]);
    }
  }

  inHost(cmd: string[], timeoutMs = 30_000) {
    return run('ip', ['netns', 'exec', this.host, ...cmd], { timeoutMs });
  }

  inOutside(cmd: string[], timeoutMs = 30_000) {
    return run('ip', ['netns', 'exec', this.outside, ...cmd], { timeoutMs });
  }
}
