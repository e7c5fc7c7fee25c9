import { ChildProcess, spawn, spawnSync } from 'child_process';
import { existsSync, mkdirSync, openSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'fs';
import { join, resolve } from 'path';

const ROOT = resolve(__dirname, '../..');
const AGENT = join(ROOT, 'dist/agent/main.js');

export interface LabHost {
  name: string;
  /** Its address on the underlay. */
  ip: string;
  dir: string;
  /** The process holding the host's network and mount namespaces; the others are entered through it. */
  holderPid: number;
  dockerdPid: number;
  agentPid: number;
}

export interface LabState {
  name: string;
  /** The underlay: a bridge in the machine's namespace, etcd on its first address. */
  bridge: string;
  prefix: string;
  etcdPid: number;
  hosts: LabHost[];
  agentArgs: string[];
  /** Directories of the machine's that up created (removed again by down). */
  madeDirs: string[];
}

export interface LabOptions {
  /** Names the lab's bridge, namespaces and state dir: two labs can live side by side. */
  name: string;
  /** The underlay's first two octets: a /16 of which .0.1 is the bridge (and etcd) and .0.(10+i) host i. */
  prefix: string;
  /** More agent flags on every host (tests shorten the lease TTL). */
  agentArgs?: string[];
  stateRoot?: string;
}

/**
 * Several container hosts on this one machine, without VMs: each a network
 * namespace (its underlay address on a shared bridge, its own loopback) and a
 * private mount namespace (its own /run/docker/plugins and bpffs),
 * running its own dockerd and cilium-agent; the agents share one etcd on the
 * bridge. Everything is started detached and recorded with its pid, so the
 * lab outlives the command that made it and `down` stops exactly what `up` started.
 */
export class Lab {
  readonly dir: string;

  constructor(private readonly opts: LabOptions) {
    if (!/^[a-z][a-z0-9]{0,5}$/.test(opts.name)) throw new Error(`lab name must be 1-6 lowercase letters or digits, got "${opts.name}"`);
    this.dir = join(opts.stateRoot ?? '/run/cilium-lab', opts.name);
  }

  get etcdUrl(): string {
    return `http://${this.opts.prefix}.0.1:2379`;
  }

  state(): LabState | undefined {
    const f = join(this.dir, 'state.json');
    return existsSync(f) ? (JSON.parse(readFileSync(f, 'utf8')) as LabState) : undefined;
  }

  /** Brings the underlay and etcd up (if not yet), then hosts until there are n. */
  async up(n: number): Promise<LabState> {
    if (!existsSync(AGENT)) throw new Error(`${AGENT} is missing: run npm run build first`);
    let st = this.state() ?? (await this.underlay());
    while (st.hosts.length < n) st = await this.addHost();
    return st;
  }

  /** One more host; ip: its underlay address if not the next one (a test wants two hosts whose last octets agree). */
  async addHost(ip?: string): Promise<LabState> {
    const st = this.state();
    if (!st) throw new Error(`lab ${this.opts.name} is not up`);
    const i = st.hosts.length + 1;
    const name = `host${i}`;
    const hostIp = ip ?? `${this.opts.prefix}.0.${10 + i}`;
    const ns = this.netns(name);
    const dir = join(this.dir, name);
    mkdirSync(dir, { recursive: true });
    const veth = `${this.opts.name}h${i}`;
    sh(`ip netns add ${ns}`);
    sh(`ip link add ${veth} type veth peer name eth0 netns ${ns}`);
    sh(`ip link set ${veth} master ${st.bridge} up`);
    const inNs = `ip netns exec ${ns}`;
    sh(`${inNs} ip link set lo up`);
    sh(`${inNs} ip addr add ${hostIp}/16 dev eth0`);
    sh(`${inNs} ip link set eth0 up`);
    sh(`${inNs} sysctl -qw net.ipv4.ip_forward=1`);
    // nsenter --net keeps the machine's /sys (its cgroup mounts, which dockerd needs); the new mount namespace
    // gets the host's own plugin directory, agent socket directory and BPF filesystem.
    const holder = detach(
      'nsenter',
      [
        `--net=/run/netns/${ns}`,
        'unshare',
        '--mount',
        '--propagation',
        'private',
        'sh',
        '-c',
        `mount -t tmpfs tmpfs /run/docker/plugins && mount -t bpf bpf /sys/fs/bpf && touch ${dir}/holder.ready && exec sleep infinity`,
      ],
      join(dir, 'holder.log'),
    );
    // Nothing may enter before the mounts are made: a dockerd or agent in the machine's own namespaces would serve its plugin directory.
    await until(`${name}'s namespaces`, () => {
      if (!alive(holder.pid!)) throw new Error(`${name}'s namespaces could not be made: ${tail(join(dir, 'holder.log'))}`);
      return existsSync(`${dir}/holder.ready`) && ownMountNs(holder.pid!);
    });
    const enter = ['nsenter', '-t', String(holder.pid), '-m', '-n', '--'];
    const docker = `unix://${dir}/docker.sock`;
    const dockerd = detach(
      enter[0]!,
      [
        ...enter.slice(1),
        'dockerd',
        '--iptables=false',
        '--ip6tables=false',
        '--bridge=none',
        `--data-root=${dir}/docker`,
        `--exec-root=${dir}/exec`,
        `--pidfile=${dir}/dockerd.pid`,
        '-H',
        docker,
        '--log-level=warn',
      ],
      join(dir, 'dockerd.log'),
    );
    await until(`${name}'s dockerd`, () => spawnSync('docker', ['-H', docker, 'version'], { stdio: 'ignore' }).status === 0, 60_000);
    sh(`DOCKER_HOST=${docker} bash ${join(ROOT, 'scripts/build-image.sh')} bbox:latest`);
    const agent = detach(
      enter[0]!,
      [
        ...enter.slice(1),
        process.execPath,
        AGENT,
        `--state-dir=${dir}/state`,
        `--api-socket=${dir}/cilium.sock`,
        `--docker-host=${docker}`,
        '--kvstore=etcd',
        `--kvstore-opt=etcd.address=${this.etcdUrl}`,
        `--node-name=${name}`,
        // The cgroup programs would see every socket of the machine: on a lab host, its relay serves the host's own clients.
        '--bpf-lb-sock=false',
        ...st.agentArgs,
      ],
      join(dir, 'agent.log'),
    );
    const next: LabState = { ...st, hosts: [...st.hosts, { name, ip: hostIp, dir, holderPid: holder.pid!, dockerdPid: dockerd.pid!, agentPid: agent.pid! }] };
    this.save(next);
    await until(
      `${name}'s agent`,
      () => {
        if (!alive(agent.pid!)) throw new Error(`${name}'s agent exited: ${tail(join(dir, 'agent.log'))}`);
        return this.exec(name, ['test', '-S', '/run/docker/plugins/cilium.sock'], 'ignore').status === 0; // the agent's last step at start
      },
      60_000,
    );
    return next;
  }

  /** Runs cmd as on that host: its namespaces, DOCKER_HOST its dockerd, `cilium` its agent. */
  exec(host: string, cmd: string[], stdio: 'inherit' | 'pipe' | 'ignore' = 'pipe'): { status: number | null; stdout: string; stderr: string } {
    const h = this.state()?.hosts.find((x) => x.name === host);
    if (!h) throw new Error(`no host ${host} in lab ${this.opts.name} (lab.sh list names them)`);
    const env = [`DOCKER_HOST=unix://${h.dir}/docker.sock`, `CILIUM_SOCK=${h.dir}/cilium.sock`];
    const r = spawnSync(
      'nsenter',
      ['-t', String(h.holderPid), '-m', '-n', '--', 'env', ...env, `PATH=${join(ROOT, 'bin')}:${process.env.PATH ?? ''}`, ...cmd],
      {
        stdio,
        encoding: 'utf8',
        timeout: 120_000,
      },
    );
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  /** Stops a host's agent by SIGKILL, as in a crash (its keys then vanish after the lease TTL). */
  killAgent(host: string): void {
    const h = this.must(host);
    process.kill(h.agentPid, 'SIGKILL');
  }

  stopEtcd(): void {
    const st = this.mustState();
    process.kill(st.etcdPid, 'SIGSTOP');
  }

  startEtcd(): void {
    process.kill(this.mustState().etcdPid, 'SIGCONT');
  }

  /** Everything up started, by pid; then the namespaces, links and state. Safe to run twice. */
  async down(): Promise<void> {
    const st = this.state();
    if (st) {
      for (const h of [...st.hosts].reverse()) {
        if (alive(h.holderPid)) {
          const ids = this.exec(h.name, ['docker', 'ps', '-aq']).stdout.split('\n').filter(Boolean);
          if (ids.length) this.exec(h.name, ['docker', 'rm', '-f', ...ids]);
        }
        await stop(h.agentPid);
        await stop(h.dockerdPid);
        // The L7 proxy and anything else the host left: every process in its network namespace.
        const left = spawnSync('ip', ['netns', 'pids', this.netns(h.name)], { encoding: 'utf8' })
          .stdout.split('\n')
          .filter(Boolean);
        for (const p of left) await stop(Number(p));
        await stop(h.holderPid);
        spawnSync('ip', ['netns', 'del', this.netns(h.name)]);
      }
      if (alive(st.etcdPid)) process.kill(st.etcdPid, 'SIGCONT');
      await stop(st.etcdPid);
      spawnSync('ip', ['link', 'del', st.bridge]);
      for (const d of [...st.madeDirs].reverse()) spawnSync('rmdir', [d]);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async underlay(): Promise<LabState> {
    const bridge = `${this.opts.name}br`;
    const clash = spawnSync('ip', ['route', 'show', 'match', `${this.opts.prefix}.0.0/16`], { encoding: 'utf8' })
      .stdout.split('\n')
      .find((l) => !l.startsWith('default') && l.trim());
    if (clash) throw new Error(`${this.opts.prefix}.0.0/16 is already routed here (${clash.trim()}): pick another prefix`);
    mkdirSync(this.dir, { recursive: true });
    // The hosts mount their own plugin directory over this one: made here if the machine has none, and removed by down.
    const madeDirs = ['/run/docker', '/run/docker/plugins'].filter((d) => !existsSync(d));
    mkdirSync('/run/docker/plugins', { recursive: true });
    sh(`ip link add ${bridge} type bridge`);
    sh(`ip addr add ${this.opts.prefix}.0.1/16 dev ${bridge}`);
    sh(`ip link set ${bridge} up`);
    const etcd = detach(
      'etcd',
      [
        `--name=${this.opts.name}`,
        `--data-dir=${join(this.dir, 'etcd')}`,
        `--listen-client-urls=${this.etcdUrl}`,
        `--advertise-client-urls=${this.etcdUrl}`,
        `--listen-peer-urls=http://${this.opts.prefix}.0.1:2380`,
        `--initial-advertise-peer-urls=http://${this.opts.prefix}.0.1:2380`,
        `--initial-cluster=${this.opts.name}=http://${this.opts.prefix}.0.1:2380`,
      ],
      join(this.dir, 'etcd.log'),
    );
    const st: LabState = {
      name: this.opts.name,
      bridge,
      prefix: this.opts.prefix,
      etcdPid: etcd.pid!,
      hosts: [],
      agentArgs: this.opts.agentArgs ?? [],
      madeDirs,
    };
    this.save(st);
    await until(
      'etcd',
      () =>
        spawnSync('etcdctl', [`--endpoints=${this.etcdUrl}`, 'endpoint', 'health'], { stdio: 'ignore', env: { ...process.env, ETCDCTL_API: '3' } }).status ===
        0,
      30_000,
    );
    return st;
  }

  private netns(host: string): string {
    return `${this.opts.name}-${host}`;
  }

  private must(host: string): LabHost {
    const h = this.mustState().hosts.find((x) => x.name === host);
    if (!h) throw new Error(`no host ${host} in lab ${this.opts.name}`);
    return h;
  }

  private mustState(): LabState {
    const st = this.state();
    if (!st) throw new Error(`lab ${this.opts.name} is not up`);
    return st;
  }

  private save(st: LabState): void {
    writeFileSync(join(this.dir, 'state.json'), JSON.stringify(st, null, 2));
  }
}

function sh(cmd: string): void {
  const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`${cmd}: ${(r.stderr || r.stdout || `exit ${r.status}`).trim()}`);
}

function detach(cmd: string, args: string[], log: string): ChildProcess {
  const fd = openSync(log, 'a');
  const p = spawn(cmd, args, { detached: true, stdio: ['ignore', fd, fd] });
  p.unref();
  return p;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function stop(pid: number): Promise<void> {
  if (!alive(pid)) return;
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 200 && alive(pid); i++) await new Promise((r) => setTimeout(r, 50));
  if (alive(pid)) process.kill(pid, 'SIGKILL');
}

/** The process runs in a mount namespace of its own (not this one's). */
function ownMountNs(pid: number): boolean {
  try {
    return readlinkSync(`/proc/${pid}/ns/mnt`) !== readlinkSync('/proc/self/ns/mnt');
  } catch {
    return false;
  }
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-15).join('\n');
  } catch {
    return '';
  }
}

async function until(what: string, ok: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
