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
  }
}
