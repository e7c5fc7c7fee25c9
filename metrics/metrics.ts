import { createServer, Server } from 'http';
import client from 'prom-client';
import { REASON_NAMES } from '../datapath/bpf/constants';
import { GcStats } from '../conntrack/gc';
import { MetricsMap } from '../datapath/bpf/maps';
import { EndpointRegistry } from '../endpoint/registry';
import { IdentityAllocator } from '../identity/allocator';
import { Ipam } from '../ipam/ipam';
import { PolicyRepository } from '../policy/repository';

/** Where the agent's components report what they did, for the Prometheus endpoint. */
export interface Hooks {
  pluginCall(method: string, seconds: number, ok: boolean): void;
  apiCall(route: string, method: string, code: number, seconds: number): void;
  storeOp(op: string, seconds: number, ok: boolean): void;
  endpointCreated(seconds: number): void;
  endpointReady(seconds: number): void;
  policyRegenerated(seconds: number): void;
  l7Requests(records: ReadonlyArray<{ verdict: 'forwarded' | 'denied' | 'error'; proxySeconds: number }>): void;
}

export interface StateSources {
  endpoints: EndpointRegistry;
  identities: IdentityAllocator;
  repo: PolicyRepository;
  ipam: Ipam;
  bpfMetrics: MetricsMap;
  conntrack: GcStats;
  /** Errors the agent survived, by kind (unhandled rejections, exceptions, failed background tasks). */
  faults: Record<string, number>;
}

const FAST = [0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/**
 * Prometheus metrics in Cilium's naming (cilium_*, _total for counters,
 * _seconds for durations). State is read at scrape time, so a value is never
 * stale and nothing is counted twice.
 */
export class Metrics implements Hooks {
  readonly registry = new client.Registry();
  private readonly plugin = new client.Histogram({
    name: 'cilium_docker_plugin_call_duration_seconds',
    help: 'libnetwork plugin call latency by method and outcome',
    labelNames: ['method', 'outcome'],
    buckets: FAST,
    registers: [this.registry],
  });
  private readonly api = new client.Histogram({
    name: 'cilium_agent_api_process_time_seconds',
    help: 'agent API latency by route, method and status code',
    labelNames: ['path', 'method', 'return_code'],
    buckets: FAST,
    registers: [this.registry],
  });
  private readonly store = new client.Histogram({
    name: 'cilium_kvstore_operations_duration_seconds',
    help: 'key-value store operations by kind and outcome',
    labelNames: ['action', 'outcome'],
    buckets: FAST,
    registers: [this.registry],
  });
  private readonly created = new client.Histogram({
    name: 'cilium_endpoint_create_duration_seconds',
    help: 'CreateEndpoint: veth pair, routes, maps and program attach',
    buckets: FAST,
    registers: [this.registry],
  });
  private readonly ready = new client.Histogram({
    name: 'cilium_endpoint_ready_duration_seconds',
    help: 'from CreateEndpoint to the identity and policy in the kernel',
    buckets: FAST,
    registers: [this.registry],
  });
  private readonly regen = new client.Histogram({
    name: 'cilium_policy_regeneration_duration_seconds',
    help: 'computing and writing policy for every endpoint after a change',
    buckets: FAST,
    registers: [this.registry],
  });

  constructor(src: StateSources) {
    const r = [this.registry];
    new client.Gauge({
      name: 'cilium_endpoint_state',
      help: 'endpoints by state',
      labelNames: ['endpoint_state'],
      registers: r,
      collect() {
        this.reset();
        for (const s of ['waiting-for-identity', 'ready', 'disconnected']) this.set({ endpoint_state: s }, 0);
        for (const e of src.endpoints.list()) this.inc({ endpoint_state: e.state });
      },
    });
    new client.Gauge({
      name: 'cilium_identity_count',
      help: 'identities known, reserved included',
      registers: r,
      collect() {
        this.set(src.identities.list().length);
      },
    });
    new client.Gauge({
      name: 'cilium_policy_max_revision',
      help: 'revision of the policy repository',
      registers: r,
      collect() {
        this.set(src.repo.revision);
      },
    });
    new client.Gauge({
      name: 'cilium_policy_rules',
      help: 'rules in the policy repository',
      registers: r,
      collect() {
        this.set(src.repo.rules.length);
      },
    });
    new client.Gauge({
      name: 'cilium_ipam_addresses',
      help: 'addresses per pool, used and available',
      labelNames: ['pool', 'state'],
      registers: r,
      collect() {
        this.reset();
        for (const p of src.ipam.snapshot()) {
          this.set({ pool: p.id, state: 'available' }, Number(p.free));
          this.set({ pool: p.id, state: 'used' }, Number(BigInt(p.capacity) - BigInt(p.free)));
        }
      },
    });
    const datapath = (
      name: string,
      help: string,
      labelNames: string[],
      pick: (m: ReturnType<MetricsMap['read']>[number]) => Record<string, string> | undefined,
      field: 'packets' | 'bytes',
    ) =>
      new client.Counter({
        name,
        help,
        labelNames,
        registers: r,
        collect() {
          this.reset();
          for (const m of src.bpfMetrics.read()) {
            const labels = pick(m);
            if (labels) this.inc(labels, Number(m[field]));
          }
        },
      });
    const drop = (m: { reason: number; dir: string }) =>
      m.reason === 0 ? undefined : { reason: REASON_NAMES[m.reason] ?? String(m.reason), direction: m.dir.toUpperCase() };
    const fwd = (m: { reason: number; dir: string }) => (m.reason === 0 ? { direction: m.dir.toUpperCase() } : undefined);
    datapath('cilium_drop_count_total', 'packets dropped by the datapath, by reason and direction', ['reason', 'direction'], drop, 'packets');
    datapath('cilium_drop_bytes_total', 'bytes dropped by the datapath, by reason and direction', ['reason', 'direction'], drop, 'bytes');
    datapath('cilium_forward_count_total', 'packets forwarded by the datapath, by direction', ['direction'], fwd, 'packets');
    datapath('cilium_forward_bytes_total', 'bytes forwarded by the datapath, by direction', ['direction'], fwd, 'bytes');
    new client.Gauge({
      name: 'cilium_datapath_conntrack_entries',
      help: 'live conntrack entries after the last garbage collection',
      registers: r,
      collect() {
        this.set(src.conntrack.entries);
      },
    });
    new client.Gauge({
      name: 'cilium_datapath_conntrack_gc_entries',
      help: 'entries the last conntrack garbage collection kept (alive) and removed (deleted)',
      labelNames: ['status'],
      registers: r,
      collect() {
        this.set({ status: 'alive' }, src.conntrack.entries);
        this.set({ status: 'deleted' }, src.conntrack.lastExpired + src.conntrack.lastOrphaned);
      },
    });
    new client.Gauge({
      name: 'cilium_datapath_conntrack_gc_runs',
      help: 'conntrack garbage collection passes by outcome',
      labelNames: ['status'],
      registers: r,
      collect() {
        this.set({ status: 'completed' }, src.conntrack.runs);
        this.set({ status: 'failed' }, src.conntrack.failures);
      },
    });
    new client.Gauge({
      name: 'cilium_agent_faults',
      help: 'errors the agent survived, by kind',
      labelNames: ['kind'],
      registers: r,
      collect() {
        this.reset();
        for (const [kind, n] of Object.entries(src.faults)) this.set({ kind }, n);
      },
    });
    client.collectDefaultMetrics({ register: this.registry, prefix: 'cilium_agent_' });
  }

  pluginCall(method: string, seconds: number, ok: boolean): void {
    this.plugin.observe({ method, outcome: ok ? 'success' : 'fail' }, seconds);
  }
  apiCall(path: string, method: string, code: number, seconds: number): void {
    this.api.observe({ path, method, return_code: String(code) }, seconds);
  }
  private readonly l7 = new client.Counter({
    name: 'cilium_policy_l7_total',
    help: 'L7 requests the proxy judged: received, forwarded, denied, or failed upstream (error)',
    labelNames: ['rule'],
    registers: [this.registry],
  });
  private readonly l7Time = new client.Histogram({
    name: 'cilium_proxy_processing_seconds',
    help: 'time the L7 proxy adds to a request before it goes upstream or is answered',
    buckets: FAST,
    registers: [this.registry],
  });

  /** One batch of the proxy's records: counted per verdict once per batch (a labelled increment costs more than the request's record). */
  l7Requests(records: ReadonlyArray<{ verdict: 'forwarded' | 'denied' | 'error'; proxySeconds: number }>): void {
    const n = { forwarded: 0, denied: 0, error: 0 };
    for (const r of records) {
      n[r.verdict]++;
      this.l7Time.observe(r.proxySeconds);
    }
    this.l7.inc({ rule: 'received' }, records.length);
    for (const v of ['forwarded', 'denied', 'error'] as const) if (n[v]) this.l7.inc({ rule: v }, n[v]);
  }
  storeOp(action: string, seconds: number, ok: boolean): void {
    this.store.observe({ action, outcome: ok ? 'success' : 'fail' }, seconds);
  }
  endpointCreated(seconds: number): void {
    this.created.observe(seconds);
  }
  endpointReady(seconds: number): void {
    this.ready.observe(seconds);
  }
  policyRegenerated(seconds: number): void {
    this.regen.observe(seconds);
  }

  /** Serves /metrics on host:port (default 127.0.0.1:9962). */
  async serve(address: string): Promise<Server> {
    const m = /^(.*):(\d+)$/.exec(address);
    if (!m) throw new Error(`--prometheus-serve-addr must be host:port, got "${address}"`);
    const server = createServer((req, res) => {
      if (req.url !== '/metrics') {
        res.writeHead(404).end('metrics are at /metrics\n');
        return;
      }
      this.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(text),
        (err: unknown) => res.writeHead(500).end(`${(err as Error).message}\n`),
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => {
        reject(new Error(`cannot serve metrics on ${address}: ${err.message}`));
      });
      server.listen(Number(m[2]), m[1]!.replace(/^\[|\]$/g, '') || '127.0.0.1', () => {
        resolve();
      });
    });
    return server;
  }
}
