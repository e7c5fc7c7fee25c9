import { bpfCtFlush, bpfCtList, bpfEndpointList, bpfIpcacheList, bpfNatList, bpfPolicyGet, ipList } from './commands/bpf';
import { kvstoreGet, nodeList } from './commands/cluster';
import { endpointGet, endpointLabels, endpointList } from './commands/endpoint';
import { identityGet, identityList } from './commands/identity';
import { ipam } from './commands/ipam';
import { monitor } from './commands/monitor';
import { bpfLbList, serviceDelete, serviceList, serviceUpdate } from './commands/service';
import { policyDelete, policyGet, policyImport, policyTrace, policyValidate } from './commands/policy';
import { status, version } from './commands/status';
import { Command, Ctx, UsageError } from './context';

/** Every command, by its words; also the source of bash completion. */
const COMMANDS: Record<string, [Command, string]> = {
  status: [status, 'agent, store, Docker, IPAM, endpoints, identities, policy, BPF maps, last errors (--verbose)'],
  version: [version, 'client and agent version'],
  'endpoint list': [endpointList, 'endpoints on this host'],
  'endpoint get': [endpointGet, 'one endpoint: ID or container name'],
  'endpoint labels': [endpointLabels, 'ID KEY=VALUE...: labels of an endpoint no container owns'],
  'identity list': [identityList, 'security identities and their labels'],
  'identity get': [identityGet, 'one identity'],
  'policy import': [policyImport, 'import rules from FILE or - ; prints Revision: N'],
  'policy validate': [policyValidate, 'check FILE without importing (no agent needed)'],
  'policy get': [policyGet, 'rules, all or those carrying every LABEL'],
  'policy delete': [policyDelete, 'delete rules carrying every LABEL, or --all'],
  'policy trace': [policyTrace, '-s LABELS|CONTAINER -d LABELS|CONTAINER [--dport N[/PROTO]] [--http-method M --http-path P [--http-header "Name: value"]]'],
  'bpf policy get': [bpfPolicyGet, "an endpoint's policy map with packet and byte counters"],
  'bpf ipcache list': [bpfIpcacheList, 'prefix -> identity, as the datapath sees it'],
  'bpf ct list': [bpfCtList, 'tracked connections, their state and remaining lifetime'],
  'bpf ct flush': [bpfCtFlush, 'forget every tracked connection (each is decided by policy anew)'],
  'bpf endpoint list': [bpfEndpointList, 'the datapath endpoint map'],
  'bpf nat list': [bpfNatList, 'masquerade translations, both directions, with their remaining lifetime'],
  'bpf lb list': [bpfLbList, 'the service map: frontends and their backend slots'],
  'service list': [serviceList, 'services: published ports (-p) and user services, with their backends'],
  'service update': [serviceUpdate, '--id N --frontend ADDR:PORT (--backends ADDR:PORT,... | --selector K=V --backend-port N) [--protocol udp] [--name NAME]'],
  'service delete': [serviceDelete, 'ID: a user service'],
  'ip list': [ipList, 'addresses and prefixes with their identities and labels'],
  ipam: [ipam, 'address pools and allocations'],
  'node list': [nodeList, 'the hosts of the cluster (--kvstore etcd): name, address, ranges'],
  'kvstore get': [kvstoreGet, 'KEY, or PREFIX --recursive: the kvstore as it is (key => value)'],
  monitor: [monitor, 'live datapath events [-t drop|trace|policy-verdict] [--related-to EP]'],
  'completion bash': [() => Promise.resolve(completion()), 'a bash completion script: source <(cilium completion bash)'],
};

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((k) => k.length));
  return [
    'Usage: cilium [--api-socket PATH] COMMAND [ARGS] [-o json]',
    '',
    'Commands:',
    ...Object.entries(COMMANDS).map(([k, [, help]]) => `  ${k.padEnd(width)}  ${help}`),
    '',
    'The API socket is --api-socket, else $CILIUM_SOCK, else /var/run/cilium/cilium.sock.',
    'Exit codes: 0 done, 1 failed (the agent said no, or is unreachable), 2 usage error.',
    '',
  ].join('\n');
}

function completion(): number {
  const words: Record<string, Set<string>> = { '': new Set() };
  for (const k of Object.keys(COMMANDS)) {
    const parts = k.split(' ');
    for (let i = 0; i < parts.length; i++) (words[parts.slice(0, i).join(' ')] ??= new Set()).add(parts[i]!);
  }
  const cases = Object.entries(words)
    .map(([prefix, next]) => `    "${prefix}") opts="${[...next].join(' ')}" ;;`)
    .join('\n');
  process.stdout.write(`# bash completion for cilium; load with: source <(cilium completion bash)
_cilium() {
  local cur=\${COMP_WORDS[COMP_CWORD]} path="" opts=""
  local i
  for ((i = 1; i < COMP_CWORD; i++)); do
    case \${COMP_WORDS[i]} in -*) ;; *) path="\${path:+$path }\${COMP_WORDS[i]}" ;; esac
  done
  case "$path" in
${cases}
    *) opts="-o --api-socket" ;;
  esac
  COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}
complete -F _cilium cilium
`);
  return 0;
}

async function run(argv: string[]): Promise<number> {
  let socket = process.env.CILIUM_SOCK || '/var/run/cilium/cilium.sock';
  let json = false;
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--api-socket' || a === '-H') socket = argv[++i] ?? '';
    else if (a === '-o' || a === '--output') {
      const o = argv[++i];
      if (o !== 'json') throw new UsageError(`-o ${o ?? ''}: only json is supported`);
      json = true;
    } else rest.push(a);
  }
  if (rest.length === 0 || rest[0] === 'help' || rest.includes('-h') || rest.includes('--help')) {
    process.stdout.write(usage());
    return rest.length === 0 ? 2 : 0;
  }
  for (let n = Math.min(3, rest.length); n > 0; n--) {
    const key = rest.slice(0, n).join(' ');
    const cmd = COMMANDS[key];
    if (cmd) return cmd[0](new Ctx(socket, json, rest.slice(n)));
  }
  throw new UsageError(`unknown command "${rest.join(' ')}"`);
}

run(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof UsageError) {
      process.stderr.write(`cilium: ${err.message}\n\n${usage()}`);
      process.exit(2);
    }
    process.stderr.write(`Error: ${(err as Error).message}\n`);
    process.exit(1);
  },
);
