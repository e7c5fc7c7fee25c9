import { readFileSync } from 'fs';
import { hostname, networkInterfaces } from 'os';
import { parseArgs } from 'util';
import { isOwnDevice } from '../datapath/host-addresses';
import { EtcdOptions } from '../kvstore/etcd';
import { Cidr, familyBits, formatCidr, parseCidr } from '../net/address';
import { EnforcementMode } from '../policy/resolve';
import { MAGLEV_TABLE_SIZES } from '../service/maglev';

export interface Config {
  pluginSocket: string;
  apiSocket: string;
  stateDir: string;
  dockerHost: string;
  ipv4Range: Cidr;
  ipv6Range?: Cidr;
  /** Which ranges the flags named: in a cluster the others are claimed (the defaults first, if no other host has them). */
  rangesGiven: { 4: boolean; 6: boolean };
  /** --kvstore etcd: identities, nodes and endpoint addresses shared with the other hosts; undefined: this host alone. */
  cluster?: { etcd: EtcdOptions; name: string; nodeName: string; nodeIP?: string };
  bpfRoot: string;
  enforcement: EnforcementMode;
  /** Host-to-endpoint traffic passes whatever the policy says (Cilium's --allow-localhost=always). */
  allowLocalhost: boolean;
  identityGraceMs: number;
  /** host:port for /metrics, or '' for none. */
  prometheusAddr: string;
  reconcileIntervalMs: number;
  /** Nothing younger than this is reaped: a plugin call may still be on its way. */
  reconcileGraceMs: number;
  /** How often the conntrack table is swept of expired entries; 0: never (the datapath still ignores them). */
  conntrackGcIntervalMs: number;
  /** Group given read/write on the sockets (mode 0660); none: root only (0600). */
  socketGroup?: { name: string; gid: number };
  /** Endpoint traffic leaving the host takes the device's address (BPF SNAT). */
  masquerade: boolean;
  /** Destinations reached without masquerade: the cluster's own ranges and --masquerade-exclude. */
  noMasqueradeTo: Cidr[];
  /** Devices to masquerade through and serve published ports on; undefined: every device with a global address (re-detected as they come and go). */
  devices?: string[];
  /** Services are translated when the host's sockets connect (cgroup programs); false: the host reaches published ports through the agent's relay only. */
  socketLb: boolean;
  /** The cgroup v2 root the socket programs attach to; undefined: found (or mounted) at start. */
  cgroupRoot?: string;
  /** Entries of each service's Maglev table (--bpf-lb-algorithm=maglev); 0: backends picked at random. */
  maglevTableSize: number;
  /** The L7 proxy's listener (host netns, every address, transparent): where L7-policed connections go. */
  proxyPort: number;
  debug: boolean;
}

export const USAGE = `Usage: cilium-agent [flags]

  --plugin-socket PATH   Docker plugin socket; its file name is the driver name
                         (default /run/docker/plugins/cilium.sock)
  --api-socket PATH      agent API socket for the cilium CLI (default /var/run/cilium/cilium.sock)
  --state-dir DIR        persistent state: store, logs (default /var/lib/cilium)
  --docker-host URL      Docker API (default $DOCKER_HOST, else unix:///var/run/docker.sock)
  --ipv4-range CIDR      this host's container range (default 10.N.0.0/16, N = last octet
                         of the host's first global IPv4; in a cluster the next free N
                         if another host has it)
  --ipv6-range CIDR      this host's IPv6 range (default f00d::<host IPv4 in hex>:0:0/96)
  --enable-ipv6[=BOOL]   allocate IPv6 addresses (default true)
  --bpf-root DIR         where BPF maps are pinned, on bpffs (default /sys/fs/bpf/cilium)
  --enable-policy MODE   default (enforce where a rule selects), always, never (default default)
  --allow-localhost MODE always (the host reaches every endpoint) or policy (default always)
  --identity-grace SECS  keep an unused identity this long before releasing it (default 300)
  --reconcile-interval SECS
                         how often state is checked against Docker and the kernel; 0: only at start (default 60)
  --reconcile-grace SECS state younger than this is never reaped (default 30)
  --conntrack-gc-interval SECS
                         how often expired connections are removed from the table (default 30)
  --socket-group NAME    give this group access to both sockets (default: root only)
  --enable-masquerade[=BOOL]
                         endpoint traffic leaving the host takes the address of the device
                         it leaves through, in BPF (default true)
  --native-routing-cidr CIDR[,CIDR]
                         destinations reached without masquerade, routed as they are
                         (default: this host's --ipv4-range and --ipv6-range)
  --masquerade-exclude CIDR[,CIDR]
                         more destinations never masqueraded (repeatable)
  --devices NAME[,NAME]  devices to masquerade through and serve published ports on (default:
                         every device with a global address but Docker's bridges and ours,
                         as they come and go; empty: none)
  --bpf-lb-sock[=BOOL]   translate services when the host's own sockets connect, in BPF
                         (cgroup programs); false: the host reaches published ports
                         through the agent's relay, and service addresses not at all
                         (default true)
  --bpf-lb-algorithm ALG random (each new connection, any backend) or maglev (consistent
                         hashing of the connection's addresses and ports: the same
                         connection the same backend, few moved when one comes or goes)
                         (default random)
  --bpf-lb-maglev-table-size N
                         entries of each service's Maglev table, a prime Cilium allows
                         (251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071;
                         default 16381: 64 KiB per service)
  --cgroup-root DIR      the cgroup v2 mount the socket programs attach to (default: the
                         host's, else one mounted at /run/cilium/cgroupv2)
  --proxy-port PORT      the L7 proxy's port on this host: connections to ports with HTTP
                         rules are redirected to it (default 10080)
  --kvstore etcd         share identities, nodes and endpoint addresses with other hosts
                         through etcd (default: none, this host alone)
  --kvstore-opt KEY=VAL  etcd.address=URL[,URL] (required with --kvstore etcd),
                         etcd.trusted-ca-file=PEM, etcd.cert-file=PEM, etcd.key-file=PEM
                         (TLS for https:// addresses); repeatable
  --kvstore-lease-ttl SECS
                         this host's keys vanish from the kvstore this long after it stops
                         renewing them (default 60)
  --cluster-name NAME    the cluster's name in kvstore keys (default default)
  --node-name NAME       this host's name in the cluster (default: the host name)
  --prometheus-serve-addr HOST:PORT
                         Prometheus metrics at /metrics; empty to disable (default 127.0.0.1:9962)
  --debug                log every plugin call
  -h, --help             this text
`;

/** Parses argv; throws an Error whose message is fit to print on bad flags. */
export function parseConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): Config | 'help' {
  // --enable-X=BOOL as Cilium spells it; parseArgs knows only --enable-X and --disable-X.
  const args = argv.map((a) => {
    const m = /^--enable-(ipv6|masquerade)=(true|false)$/.exec(a);
    if (a === '--bpf-lb-sock') return '--bpf-lb-sock=true';
    return m ? `--${m[2] === 'true' ? 'enable' : 'disable'}-${m[1]!}` : a;
  });
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      'plugin-socket': { type: 'string', default: '/run/docker/plugins/cilium.sock' },
      'api-socket': { type: 'string', default: '/var/run/cilium/cilium.sock' },
      'state-dir': { type: 'string', default: '/var/lib/cilium' },
      'docker-host': { type: 'string', default: env.DOCKER_HOST || 'unix:///var/run/docker.sock' },
      'ipv4-range': { type: 'string' },
      'ipv6-range': { type: 'string' },
      'enable-ipv6': { type: 'boolean', default: true },
      'disable-ipv6': { type: 'boolean', default: false },
      'bpf-root': { type: 'string', default: '/sys/fs/bpf/cilium' },
      'enable-policy': { type: 'string', default: 'default' },
      'allow-localhost': { type: 'string', default: 'always' },
      'identity-grace': { type: 'string', default: '300' },
      'prometheus-serve-addr': { type: 'string', default: '127.0.0.1:9962' },
      'reconcile-interval': { type: 'string', default: '60' },
      'reconcile-grace': { type: 'string', default: '30' },
      'conntrack-gc-interval': { type: 'string', default: '30' },
      'socket-group': { type: 'string' },
      'enable-masquerade': { type: 'boolean', default: true },
      'disable-masquerade': { type: 'boolean', default: false },
      'native-routing-cidr': { type: 'string' },
      'masquerade-exclude': { type: 'string', multiple: true, default: [] },
      devices: { type: 'string' },
      'bpf-lb-sock': { type: 'string', default: 'true' },
      'cgroup-root': { type: 'string' },
      'bpf-lb-algorithm': { type: 'string', default: 'random' },
      'bpf-lb-maglev-table-size': { type: 'string', default: '16381' },
      'proxy-port': { type: 'string', default: '10080' },
      kvstore: { type: 'string', default: '' },
      'kvstore-opt': { type: 'string', multiple: true, default: [] },
      'kvstore-lease-ttl': { type: 'string', default: '60' },
      'cluster-name': { type: 'string', default: 'default' },
      'node-name': { type: 'string', default: hostname() },
      debug: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) return 'help';
  const hostIPv4 = firstGlobalIPv4();
  const ipv4Range = rangeFlag('--ipv4-range', values['ipv4-range'] ?? `10.${hostIPv4 ? hostIPv4.split('.')[3] : '0'}.0.0/16`, 4);
  const ipv6 = values['enable-ipv6'] && !values['disable-ipv6'];
  const ipv6Range = ipv6 ? rangeFlag('--ipv6-range', values['ipv6-range'] ?? defaultIPv6Range(hostIPv4 ?? '0.0.0.0'), 6) : undefined;
  const enforcement = values['enable-policy'];
  if (enforcement !== 'default' && enforcement !== 'always' && enforcement !== 'never') {
    throw new Error(`--enable-policy must be default, always or never, got "${enforcement}"`);
  }
  if (values['allow-localhost'] !== 'always' && values['allow-localhost'] !== 'policy') {
    throw new Error(`--allow-localhost must be always or policy, got "${values['allow-localhost']}"`);
  }
  for (const flag of ['reconcile-interval', 'reconcile-grace', 'identity-grace', 'conntrack-gc-interval'] as const) {
    if (!/^\d+(\.\d+)?$/.test(values[flag])) throw new Error(`--${flag} must be a number of seconds, got "${values[flag]}"`);
  }
  const socketGroup = values['socket-group'] === undefined ? undefined : groupByName(values['socket-group']);
  if (values['bpf-lb-sock'] !== 'true' && values['bpf-lb-sock'] !== 'false')
    throw new Error(`--bpf-lb-sock must be true or false, got "${values['bpf-lb-sock']}"`);
  const algorithm = values['bpf-lb-algorithm'];
  if (algorithm !== 'random' && algorithm !== 'maglev') throw new Error(`--bpf-lb-algorithm must be random or maglev, got "${algorithm}"`);
  const tableSize = Number(values['bpf-lb-maglev-table-size']);
  if (!(MAGLEV_TABLE_SIZES as readonly number[]).includes(tableSize))
    throw new Error(`--bpf-lb-maglev-table-size must be one of ${MAGLEV_TABLE_SIZES.join(', ')}, got "${values['bpf-lb-maglev-table-size']}"`);
  const proxyPort = Number(values['proxy-port']);
  if (!/^\d{1,5}$/.test(values['proxy-port']) || proxyPort < 1 || proxyPort > 65535)
    throw new Error(`--proxy-port must be a port number (1-65535), got "${values['proxy-port']}"`);
  if (values['cgroup-root'] !== undefined && !values['cgroup-root'].startsWith('/'))
    throw new Error(`--cgroup-root must be an absolute path, got "${values['cgroup-root']}"`);
  for (const flag of ['plugin-socket', 'api-socket', 'state-dir', 'bpf-root'] as const) {
    if (!values[flag].startsWith('/')) throw new Error(`--${flag} must be an absolute path, got "${values[flag]}"`);
  }
  if (!/^(unix|tcp|http|https):\/\//.test(values['docker-host'])) {
    throw new Error(`--docker-host must be a unix:// or tcp:// URL, got "${values['docker-host']}"`);
  }
  const nativeRouting =
    values['native-routing-cidr'] === undefined
      ? [ipv4Range, ...(ipv6Range ? [ipv6Range] : [])]
      : cidrList('--native-routing-cidr', values['native-routing-cidr']);
  const excluded = values['masquerade-exclude'].flatMap((v) => cidrList('--masquerade-exclude', v));
  const devices = values.devices === '' ? [] : values.devices?.split(',').map((d) => d.trim());
  if (devices?.some((d) => !/^[A-Za-z0-9_.:@-]{1,15}$/.test(d)))
    throw new Error(`--devices takes interface names separated by commas, got "${values.devices}"`);
  const cluster = clusterFlags(values, hostIPv4);
  return {
    pluginSocket: values['plugin-socket'],
    apiSocket: values['api-socket'],
    stateDir: values['state-dir'],
    dockerHost: values['docker-host'],
    ipv4Range,
    ...(ipv6Range ? { ipv6Range } : {}),
    rangesGiven: { 4: values['ipv4-range'] !== undefined, 6: values['ipv6-range'] !== undefined },
    ...(cluster ? { cluster } : {}),
    bpfRoot: values['bpf-root'],
    enforcement,
    allowLocalhost: values['allow-localhost'] === 'always',
    identityGraceMs: Number(values['identity-grace']) * 1000,
    prometheusAddr: values['prometheus-serve-addr'],
    reconcileIntervalMs: Number(values['reconcile-interval']) * 1000,
    reconcileGraceMs: Number(values['reconcile-grace']) * 1000,
    conntrackGcIntervalMs: Number(values['conntrack-gc-interval']) * 1000,
    ...(socketGroup ? { socketGroup } : {}),
    masquerade: values['enable-masquerade'] && !values['disable-masquerade'],
    noMasqueradeTo: [...nativeRouting, ...excluded],
    ...(devices ? { devices } : {}),
    socketLb: values['bpf-lb-sock'] === 'true',
    ...(values['cgroup-root'] ? { cgroupRoot: values['cgroup-root'] } : {}),
    maglevTableSize: algorithm === 'maglev' ? tableSize : 0,
    proxyPort,
    debug: values.debug,
  };
}

function clusterFlags(
  values: { kvstore: string; 'kvstore-opt': string[]; 'kvstore-lease-ttl': string; 'cluster-name': string; 'node-name': string },
  hostIPv4: string | undefined,
): Config['cluster'] {
  if (values.kvstore === '') {
    if (values['kvstore-opt'].length) throw new Error('--kvstore-opt needs --kvstore etcd');
    return undefined;
  }
  if (values.kvstore !== 'etcd') throw new Error(`--kvstore must be etcd, got "${values.kvstore}"`);
  const opts: Record<string, string> = {};
  const known = ['etcd.address', 'etcd.trusted-ca-file', 'etcd.cert-file', 'etcd.key-file'];
  for (const o of values['kvstore-opt']) {
    const eq = o.indexOf('=');
    const k = o.slice(0, eq);
    if (eq < 1 || !known.includes(k)) throw new Error(`--kvstore-opt takes ${known.join(', ')} as KEY=VALUE, got "${o}"`);
    opts[k] = o.slice(eq + 1);
  }
  const endpoints = (opts['etcd.address'] ?? '').split(',').filter((a) => a.trim());
  if (!endpoints.length) throw new Error('--kvstore etcd needs --kvstore-opt etcd.address=URL[,URL]');
  for (const e of endpoints) if (!/^https?:\/\/[^/]+\/?$/.test(e.trim())) throw new Error(`etcd.address takes http:// or https:// URLs, got "${e}"`);
  if (Boolean(opts['etcd.cert-file']) !== Boolean(opts['etcd.key-file'])) throw new Error('etcd.cert-file and etcd.key-file go together');
  const ttl = Number(values['kvstore-lease-ttl']);
  if (!/^\d+$/.test(values['kvstore-lease-ttl']) || ttl < 2)
    throw new Error(`--kvstore-lease-ttl must be a whole number of seconds >= 2, got "${values['kvstore-lease-ttl']}"`);
  for (const flag of ['cluster-name', 'node-name'] as const) {
    if (!/^[A-Za-z0-9]([A-Za-z0-9_.-]{0,62})$/.test(values[flag])) throw new Error(`--${flag} takes letters, digits, '.', '_' and '-', got "${values[flag]}"`);
  }
  return {
    etcd: {
      endpoints: endpoints.map((e) => e.trim().replace(/\/$/, '')),
      leaseTtlSeconds: ttl,
      ...(opts['etcd.trusted-ca-file'] ? { trustedCaFile: opts['etcd.trusted-ca-file'] } : {}),
      ...(opts['etcd.cert-file'] ? { certFile: opts['etcd.cert-file'] } : {}),
      ...(opts['etcd.key-file'] ? { keyFile: opts['etcd.key-file'] } : {}),
    },
    name: values['cluster-name'],
    nodeName: values['node-name'],
    ...(hostIPv4 ? { nodeIP: hostIPv4 } : {}),
  };
}

function rangeFlag(flag: string, text: string, family: 4 | 6): Cidr {
  let c: Cidr;
  try {
    c = parseCidr(text);
  } catch (err) {
    throw new Error(`${flag}: ${(err as Error).message}`);
  }
  if (c.family !== family) throw new Error(`${flag} must be an IPv${family} prefix, got ${text}`);
  const minHostBits = family === 4 ? 2 : 8;
  if (familyBits(family) - c.bits < minHostBits) throw new Error(`${flag} ${formatCidr(c)} is too small for containers`);
  return c;
}

function cidrList(flag: string, text: string): Cidr[] {
  return text
    .split(',')
    .filter((t) => t.trim())
    .map((t) => {
      try {
        return parseCidr(t.trim());
      } catch (err) {
        throw new Error(`${flag}: ${(err as Error).message}`);
      }
    });
}

/** A group from /etc/group (no process spawned); an unknown name is a flag error. */
function groupByName(name: string): { name: string; gid: number } {
  const line = readFileSync('/etc/group', 'utf8')
    .split('\n')
    .find((l) => l.split(':')[0] === name);
  if (!line) throw new Error(`--socket-group: no group "${name}" in /etc/group`);
  return { name, gid: Number(line.split(':')[2]) };
}

/** Cilium's per-host default: f00d::<host IPv4 as two hex words>:0:0/96 (10.0.2.15 -> f00d::a00:20f:0:0/96). */
export function defaultIPv6Range(hostIPv4: string): string {
  const o = hostIPv4.split('.').map(Number);
  const hi = ((o[0]! << 8) | o[1]!).toString(16);
  const lo = ((o[2]! << 8) | o[3]!).toString(16);
  return `f00d::${hi}:${lo}:0:0/96`;
}

/** The host's first global IPv4 that is not one of ours. */
function firstGlobalIPv4(): string | undefined {
  for (const [name, addrs] of Object.entries(networkInterfaces())) {
    if (isOwnDevice(name)) continue;
    for (const a of addrs ?? []) {
      if (a.family === 'IPv4' && !a.internal && !a.address.startsWith('169.254.')) return a.address;
    }
  }
  return undefined;
}
