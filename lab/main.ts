import { Lab } from './lab';

const USAGE = `Usage: scripts/lab.sh COMMAND
  up N            N hosts (network + mount namespaces, each its own dockerd and agent) sharing one etcd
  down            stop everything up started and remove it
  list            the hosts, one name a line
  exec HOST CMD   run CMD as on HOST: docker and cilium talk to its dockerd and agent
Environment: LAB_NAME (default lab), LAB_PREFIX (underlay /16, default 172.31), LAB_AGENT_ARGS (more agent flags)
`;

async function main(argv: string[]): Promise<number> {
  const lab = new Lab({
    name: process.env.LAB_NAME ?? 'lab',
    prefix: process.env.LAB_PREFIX ?? '172.31',
    agentArgs: (process.env.LAB_AGENT_ARGS ?? '').split(' ').filter(Boolean),
  });
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'up': {
      const n = Number(rest[0]);
      if (!Number.isInteger(n) || n < 1 || n > 20) throw new Error('up takes a number of hosts, 1 to 20');
      const st = await lab.up(n);
      for (const h of st.hosts) process.stdout.write(`${h.name} ${h.ip}\n`);
      process.stdout.write(`etcd ${lab.etcdUrl}\n`);
      return 0;
    }
    case 'down':
      await lab.down();
      return 0;
    case 'list':
      for (const h of lab.state()?.hosts ?? []) process.stdout.write(`${h.name}\n`);
      return 0;
    case 'exec': {
      const [host, ...command] = rest;
      if (!host || !command.length) throw new Error('exec takes HOST CMD...');
      return lab.exec(host, command, 'inherit').status ?? 1;
    }
    default:
      process.stderr.write(USAGE);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`lab: ${(err as Error).message}\n`);
    process.exit(1);
  },
);
