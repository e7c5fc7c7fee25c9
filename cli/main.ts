import { readFileSync } from 'fs';
import { Endpoint } from '../endpoint/endpoint';
import { apiCall } from './client';
import { table } from './table';

const USAGE = `Usage: cilium [--api-socket PATH] COMMAND [-o json]

Commands:
  status                 agent health, IPAM ranges, endpoints by state
  endpoint list          endpoints on this host
  endpoint get ID        one endpoint (numeric ID or Docker endpoint ID prefix)
  ipam                   address pools and allocations
  identity list          security identities and their labels
  policy import FILE|-   import rules (Cilium's JSON); prints Revision: N
  policy get [LABEL...]  rules, all or those carrying every label
  policy delete LABEL... | --all
                         delete rules; prints Revision: N
  version                client and agent version

The API socket is --api-socket, else $CILIUM_SOCK, else /var/run/cilium/cilium.sock.
`;

interface Pool {
  id: string;
  family: number;
  cidr: string;
  range: string;
  capacity: string;
  free: string;
  allocations?: Array<{ address: string; owner: string }>;
}
interface Health {
  version: string;
  uptimeSeconds: number;
  stateDir: string;
  pluginSocket: string;
  endpoints: Record<string, number>;
  networks: number;
  ipam: Pool[];
}

async function run(argv: string[]): Promise<number> {
  let socket = process.env.CILIUM_SOCK || '/var/run/cilium/cilium.sock';
  const args: string[] = [];
  let json = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--api-socket') socket = argv[++i] ?? '';
    else if (a === '-o' || a === '--output') json = argv[++i] === 'json';
    else if (a === '-h' || a === '--help') args.push('help');
    else args.push(a);
  }
  const out = (v: unknown, human: () => string) => process.stdout.write(json ? `${JSON.stringify(v, null, 2)}\n` : human());
  const [cmd, sub, arg] = args;
  switch (`${cmd ?? 'help'} ${sub ?? ''}`.trim()) {
    case 'help':
      process.stdout.write(USAGE);
      return 0;
    case 'version': {
      const h = await apiCall<Health>(socket, 'GET', '/v1/healthz');
      out({ client: '0.1.0', agent: h.version }, () => `Client: 0.1.0\nDaemon: ${h.version}\n`);
      return 0;
    }
    case 'status': {
      const h = await apiCall<Health>(socket, 'GET', '/v1/healthz');
      out(h, () => {
        const eps = Object.entries(h.endpoints).map(([s, n]) => `${n} ${s}`).join(', ') || 'none';
        const pools = h.ipam.map((p) => `  ${p.id.padEnd(28)} ${p.cidr.padEnd(24)} ${BigInt(p.capacity) - BigInt(p.free)}/${p.capacity} used\n`).join('');
        return `Agent:        Ok   ${h.version} (up ${h.uptimeSeconds}s)\nPlugin:       ${h.pluginSocket}\nState:        ${h.stateDir}\nNetworks:     ${h.networks}\nEndpoints:    ${eps}\nIPAM:\n${pools}`;
      });
      return 0;
    }
    case 'endpoint list': {
      const eps = await apiCall<Array<Endpoint & { policy: { ingressEnforced: boolean; egressEnforced: boolean } }>>(socket, 'GET', '/v1/endpoint');
      const onOff = (b: boolean) => (b ? 'Enabled' : 'Disabled');
      out(eps, () =>
        table(
          ['ENDPOINT', 'POLICY (ingress)', 'POLICY (egress)', 'IDENTITY', 'LABELS (source:key[=value])', 'IPv6', 'IPv4', 'STATUS'],
          eps.map((e) => [String(e.id), onOff(e.policy.ingressEnforced), onOff(e.policy.egressEnforced), String(e.identity), e.labels.join(' ') || 'reserved:init', e.ipv6 ?? '', e.ipv4 ?? '', e.state]),
        ),
      );
      return 0;
    }
    case 'endpoint get': {
      if (!arg) throw new Error('endpoint get needs an endpoint ID');
      const ep = await apiCall<Endpoint>(socket, 'GET', `/v1/endpoint/${encodeURIComponent(arg)}`);
      process.stdout.write(`${JSON.stringify(ep, null, 2)}\n`);
      return 0;
    }
    case 'ipam': {
      const pools = await apiCall<Pool[]>(socket, 'GET', '/v1/ipam');
      out(pools, () =>
        pools
          .map((p) => table(['POOL', 'CIDR', 'RANGE', 'FREE'], [[p.id, p.cidr, p.range, `${p.free}/${p.capacity}`]]) +
            (p.allocations ?? []).map((a) => `  ${a.address}  ${a.owner}\n`).join(''))
          .join('\n'),
      );
      return 0;
    }
    case 'identity list': {
      const ids = await apiCall<Array<{ id: number; labels: string[] }>>(socket, 'GET', '/v1/identity');
      out(ids, () => table(['ID', 'LABELS'], ids.map((i) => [String(i.id), i.labels.join(' ')])));
      return 0;
    }
    case 'policy import': {
      if (!arg) throw new Error('policy import needs a file (or - for standard input)');
      const text = readFileSync(arg === '-' ? 0 : arg, 'utf8');
      let rules: unknown;
      try {
        rules = JSON.parse(text);
      } catch (err) {
        throw new Error(`${arg === '-' ? 'standard input' : arg} is not JSON: ${(err as Error).message}`);
      }
      const r = await apiCall<{ revision: number }>(socket, 'PUT', '/v1/policy', rules);
      out(r, () => `Revision: ${r.revision}\n`);
      return 0;
    }
    case 'policy get': {
      const labels = args.slice(2);
      const r = await apiCall<{ revision: number; rules: unknown[] }>(socket, 'GET', `/v1/policy?labels=${encodeURIComponent(labels.join(','))}`);
      process.stdout.write(`${JSON.stringify(r.rules, null, 2)}\nRevision: ${r.revision}\n`);
      return 0;
    }
    case 'policy delete': {
      const labels = args.slice(2).filter((a) => a !== '--all');
      const all = args.includes('--all');
      if (!all && labels.length === 0) throw new Error('policy delete needs labels of the rules to delete, or --all');
      const r = await apiCall<{ revision: number; deleted: number }>(socket, 'DELETE', '/v1/policy', all ? { all: true } : { labels });
      out(r, () => `Deleted ${r.deleted} rule(s)\nRevision: ${r.revision}\n`);
      return 0;
    }
    default:
      process.stderr.write(`cilium: unknown command "${args.join(' ')}"\n\n${USAGE}`);
      return 2;
  }
}

run(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`Error: ${err.message}\n`);
    process.exit(1);
  },
);
