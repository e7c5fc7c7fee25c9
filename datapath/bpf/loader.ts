import { closeSync, existsSync, mkdirSync, openSync, rmSync } from 'fs';
import { join, resolve } from 'path';
import { Pointer, bpf, check, checkPtr } from './libbpf';
import { BpfMap, possibleCpus } from './map';
import { btfProblems } from './btf';
import {
  CtMap,
  DATAPATH_CONFIG,
  EndpointAddressMap,
  EndpointMap,
  IpcacheMap,
  MAP_LAYOUTS,
  MapLayout,
  MapName,
  MetricsMap,
  NatDeviceMap,
  NatExcludeMap,
  PROGRAM_MAP_LAYOUTS,
  PolicyMap,
  RINGBUF,
  LbBackendMap,
  LbMaglevMap,
  LbServiceMap,
  NatMap,
  sizesOf,
} from './maps';

/** With netfilter's conntrack kfuncs (the original source of NATed traffic), and without them. */
export const OBJECTS = [resolve(__dirname, '../../../bpf/bpf_lxc.o'), resolve(__dirname, '../../../bpf/bpf_lxc_nonat.o')] as const;
const TC_INGRESS = 1;
const TC_EGRESS = 2;
const TC_F_REPLACE = 1;
/** One fixed filter slot per hook, so a restarted agent replaces its predecessor's program. */
const HANDLE = 1;
const PRIORITY = 1;

const MAP_NAMES = Object.keys(MAP_LAYOUTS) as MapName[];
export const PINNED_MAPS: readonly string[] = MAP_NAMES;
/** The directory under the BPF root where the socket programs' cgroup links are pinned. */
export const LINKS_DIR = 'links';
/** The socket programs, each attached to the cgroup root by the hook its section names. */
export const SOCKET_PROGRAMS = [
  'cil_sock4_connect',
  'cil_sock6_connect',
  'cil_sock4_sendmsg',
  'cil_sock6_sendmsg',
  'cil_sock4_recvmsg',
  'cil_sock6_recvmsg',
  'cil_sock4_getpeername',
  'cil_sock6_getpeername',
] as const;

export interface DatapathConfig {
  /** Directory on bpffs where the maps are pinned; they outlive the agent. */
  bpfRoot: string;
  hostToEndpointAllowed: boolean;
  /** Masquerade source ports, beside the host's ephemeral range. */
  natPorts: { min: number; max: number };
  /** The agent's network namespace (datapath/libc.ts): the host, whose sockets are translated at connect. */
  hostNetnsCookie: bigint;
  /** Entries of each service's Maglev table; 0: backends are picked at random. */
  maglevTableSize: number;
}

/** What enforcement state is written through: the typed maps (a test can give in-memory ones). */
export interface DatapathMaps {
  readonly maps: Maps;
}

export interface Maps {
  endpoints: EndpointMap;
  ipcache: IpcacheMap;
  policy: PolicyMap;
  ct: CtMap;
  addresses: EndpointAddressMap;
  metrics: MetricsMap;
  snat: NatMap;
  natDevices: NatDeviceMap;
  natExclude: NatExcludeMap;
  lbServices: LbServiceMap;
  lbBackends: LbBackendMap;
  lbMaglev: LbMaglevMap;
  lbCt: NatMap;
  eventsFd: number;
}

/**
 * The endpoint programs, loaded once per agent start. Pinned maps are reused
 * when present, so enforcement state survives restarts and programs already
 * attached keep enforcing while the agent is down.
 */
export class BpfDatapath implements DatapathMaps {
  private constructor(
    private readonly obj: Pointer,
    private readonly bpfRoot: string,
    readonly maps: Maps,
    private readonly fromContainerFd: number,
    private readonly toContainerFd: number,
    private readonly fromNetdevFd: number,
    /** Pinned maps of an older layout this start replaced (their entries are rebuilt from the agent's state). */
    readonly replacedMaps: string[],
    /**
     * Why traffic the host NATs towards endpoints is the world rather than its
     * original source (no conntrack kfuncs in this kernel), or undefined.
     */
    readonly natRecoveryUnavailable?: string,
  ) {}

  /** The full object, else the one without conntrack kfuncs (the reason is kept for status). */
  static load(cfg: DatapathConfig): BpfDatapath {
    try {
      return BpfDatapath.loadObject(cfg, OBJECTS[0]);
    } catch (err) {
      const dp = BpfDatapath.loadObject(cfg, OBJECTS[1]);
      return new BpfDatapath(dp.obj, dp.bpfRoot, dp.maps, dp.fromContainerFd, dp.toContainerFd, dp.fromNetdevFd, dp.replacedMaps, (err as Error).message);
    }
  }

  private static loadObject(cfg: DatapathConfig, path: string): BpfDatapath {
    mkdirSync(cfg.bpfRoot, { recursive: true, mode: 0o700 });
    const obj = checkPtr(bpf.openFile(path, null), `open ${path} (run npm run build)`);
    const replaced: string[] = [];
    try {
      const problems = layoutProblems(obj);
      if (problems.length)
        throw new Error(`${path} does not match the agent's map codecs (bpf/ and datapath/ from different builds? run npm run build): ${problems.join('; ')}`);
      for (const name of MAP_NAMES) {
        const m = checkPtr(bpf.findMap(obj, name), `find map ${name}`);
        const pin = join(cfg.bpfRoot, name);
        const why = incompatiblePin(pin, m);
        if (why) {
          rmSync(pin);
          replaced.push(`${name} (${why})`);
        }
        check(bpf.mapSetPinPath(m, pin), `pin path for ${name}`);
      }
      const rodataMap = checkPtr(bpf.findMap(obj, '.rodata'), 'find .rodata');
      if (bpf.mapValueSize(rodataMap) !== DATAPATH_CONFIG.size)
        throw new Error(`${path}: .rodata holds ${bpf.mapValueSize(rodataMap)} bytes, the agent's ${DATAPATH_CONFIG.cName} ${DATAPATH_CONFIG.size}`);
      const rodata = DATAPATH_CONFIG.encode({
        host_to_endpoint_allowed: cfg.hostToEndpointAllowed ? 1 : 0,
        nat_port_min: cfg.natPorts.min,
        nat_port_max: cfg.natPorts.max,
        host_netns_cookie: cfg.hostNetnsCookie,
        maglev_table_size: cfg.maglevTableSize,
      });
      check(bpf.mapSetInitialValue(rodataMap, rodata, rodata.length), 'set .rodata');
      check(bpf.load(obj), `load BPF programs (maps pinned in ${cfg.bpfRoot} by an incompatible version must be removed first)`);
      const fd = (name: MapName) => check(bpf.mapFd(checkPtr(bpf.findMap(obj, name), name)), `fd of ${name}`);
      const map = (name: MapName, perCpu = 1) => new BpfMap(name, fd(name), sizesOf(MAP_LAYOUTS[name]).key, sizesOf(MAP_LAYOUTS[name]).value * perCpu);
      const maps: Maps = {
        endpoints: new EndpointMap(map('cilium_lxc')),
        ipcache: new IpcacheMap(map('cilium_ipcache')),
        policy: new PolicyMap(map('cilium_policy')),
        ct: new CtMap(map('cilium_ct')),
        addresses: new EndpointAddressMap(map('cilium_ep_addr')),
        metrics: new MetricsMap(map('cilium_metrics', possibleCpus())),
        snat: new NatMap(map('cilium_snat')),
        natDevices: new NatDeviceMap(map('cilium_nat_dev')),
        natExclude: new NatExcludeMap(map('cilium_nat_exclude')),
        lbServices: new LbServiceMap(map('cilium_lb_svc')),
        lbBackends: new LbBackendMap(map('cilium_lb_backend')),
        lbMaglev: new LbMaglevMap(map('cilium_lb_maglev')),
        lbCt: new NatMap(map('cilium_lb_ct')),
        eventsFd: fd('cilium_events'),
      };
      const prog = (name: string) => check(bpf.programFd(checkPtr(bpf.findProgram(obj, name), name)), `fd of ${name}`);
      return new BpfDatapath(obj, cfg.bpfRoot, maps, prog('cil_from_container'), prog('cil_to_container'), prog('cil_from_netdev'), replaced);
    } catch (err) {
      bpf.close(obj);
      throw err;
    }
  }

  /**
   * Attaches both programs to an endpoint's host-side veth (clsact ingress
   * and egress), replacing what a previous agent attached. A fresh veth gets
   * its clsact qdisc first; on a known one the qdisc is assumed, because
   * creating an existing qdisc (or attaching without one) makes the kernel
   * log a spurious error.
   */
  attach(ifindex: number, fresh: boolean): void {
    const createHook = () => check(bpf.tcHookCreate(tcHook(ifindex, TC_INGRESS | TC_EGRESS)), `create clsact on ifindex ${ifindex}`);
    const attachBoth = () =>
      bpf.tcAttach(tcHook(ifindex, TC_INGRESS), tcOpts(this.fromContainerFd)) || bpf.tcAttach(tcHook(ifindex, TC_EGRESS), tcOpts(this.toContainerFd));
    if (fresh) createHook();
    let r = attachBoth();
    if (r < 0 && !fresh) {
      createHook();
      r = attachBoth();
    }
    check(r, `attach endpoint programs on ifindex ${ifindex}`);
  }

  /**
   * Attaches the device program (masquerade replies, published ports) to a host device's ingress (its
   * clsact qdisc created if it has none), replacing what was in our slot.
   */
  attachNetdev(ifindex: number): void {
    let r = bpf.tcAttach(tcHook(ifindex, TC_INGRESS), tcOpts(this.fromNetdevFd));
    if (r < 0) {
      bpf.tcHookCreate(tcHook(ifindex, TC_INGRESS)); // EEXIST when another tool made it: the attach says what is wrong
      r = bpf.tcAttach(tcHook(ifindex, TC_INGRESS), tcOpts(this.fromNetdevFd));
    }
    check(r, `attach the device program on ifindex ${ifindex}`);
  }

  /**
   * Attaches the socket programs to the cgroup v2 root (every process's
   * sockets), each through a link pinned under the BPF root: a restarted
   * agent swaps its programs into the links it finds, so there is no moment
   * without them, and they keep translating while it is down.
   */
  attachSockets(cgroupRoot: string): void {
    const dir = join(this.bpfRoot, LINKS_DIR);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const cgroup = openSync(cgroupRoot, 'r');
    try {
      for (const name of SOCKET_PROGRAMS) {
        const prog = checkPtr(bpf.findProgram(this.obj, name), `find ${name}`);
        const pin = join(dir, name);
        const pinned = existsSync(pin) ? bpf.objGet(pin) : -1;
        if (pinned >= 0) {
          try {
            check(bpf.linkUpdate(pinned, bpf.programFd(prog), null), `update the cgroup link of ${name}`);
          } finally {
            closeSync(pinned);
          }
          continue;
        }
        const link = checkPtr(bpf.attachCgroup(prog, cgroup), `attach ${name} to the cgroup ${cgroupRoot}`);
        try {
          check(bpf.linkPin(link, pin), `pin the cgroup link of ${name}`);
        } finally {
          bpf.linkDestroy(link);
        }
      }
    } finally {
      closeSync(cgroup);
    }
  }

  /** Detaches the socket programs (--bpf-lb-sock=false): unpinning a link that no process holds ends it. */
  detachSockets(): void {
    rmSync(join(this.bpfRoot, LINKS_DIR), { recursive: true, force: true });
  }

  /** Whether both hooks of the veth hold a filter in our slot (what a restarted agent replaces). */
  attached(ifindex: number): boolean {
    const query = (point: number) => {
      const opts = tcOpts(0);
      opts.writeUInt32LE(0, 12); // no flags: a query, not a replace
      return bpf.tcQuery(tcHook(ifindex, point), opts) === 0;
    };
    return query(TC_INGRESS) && query(TC_EGRESS);
  }

  close(): void {
    bpf.close(this.obj);
  }
}

/** struct bpf_tc_hook { size_t sz; int ifindex; enum attach_point; __u32 parent; } (24 bytes) */
function tcHook(ifindex: number, point: number): Buffer {
  const b = Buffer.alloc(24);
  b.writeBigUInt64LE(24n, 0);
  b.writeInt32LE(ifindex, 8);
  b.writeUInt32LE(point, 12);
  return b;
}

/** struct bpf_tc_opts { size_t sz; int prog_fd; __u32 flags, prog_id, handle, priority; } (32 bytes) */
function tcOpts(progFd: number): Buffer {
  const b = Buffer.alloc(32);
  b.writeBigUInt64LE(32n, 0);
  b.writeInt32LE(progFd, 8);
  b.writeUInt32LE(TC_F_REPLACE, 12);
  b.writeUInt32LE(HANDLE, 20);
  b.writeUInt32LE(PRIORITY, 24);
  return b;
}

/** Sections libbpf turns into maps of its own (globals, read-only config). */
const INTERNAL_MAP = /^\.|\.(rodata|data|bss|kconfig)$/;

/**
 * Where an opened object's maps differ from MAP_LAYOUTS (or the layouts
 * given): a map missing, one the agent does not know, a key or value size
 * the codecs do not write, or, through the object's BTF, a member of a key or
 * value struct that the codec places elsewhere or does not know. Empty when
 * they agree.
 */
export function layoutProblems(obj: Pointer, layouts: Record<string, MapLayout | typeof RINGBUF> = { ...MAP_LAYOUTS, ...PROGRAM_MAP_LAYOUTS }): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  const btf = bpf.objectBtf(obj);
  if (!btf) return ['the object carries no BTF: build it with clang -g'];
  for (let m = bpf.nextMap(obj, null); m; m = bpf.nextMap(obj, m)) {
    const name = bpf.mapName(m);
    if (INTERNAL_MAP.test(name)) continue;
    seen.add(name);
    const want = layouts[name];
    if (!want) {
      problems.push(`map ${name} is not known to the agent`);
      continue;
    }
    const sizes = sizesOf(want);
    if (bpf.mapKeySize(m) !== sizes.key || bpf.mapValueSize(m) !== sizes.value) {
      problems.push(`map ${name} has a ${bpf.mapKeySize(m)}-byte key and ${bpf.mapValueSize(m)}-byte value, the codec ${sizes.key} and ${sizes.value}`);
    } else if (want !== RINGBUF) {
      problems.push(
        ...btfProblems(btf, bpf.mapBtfKeyTypeId(m), want.key, `map ${name} key`),
        ...btfProblems(btf, bpf.mapBtfValueTypeId(m), want.value, `map ${name} value`),
      );
    }
  }
  for (const name of Object.keys(layouts)) if (!seen.has(name)) problems.push(`map ${name} is missing`);
  return problems;
}

/**
 * Why a map pinned by an earlier version cannot be reused (libbpf would refuse
 * to load), or undefined. Every entry of these maps is rebuilt from the
 * agent's own state at start; the programs still attached keep the old maps
 * until they are replaced.
 */
function incompatiblePin(pin: string, m: Pointer): string | undefined {
  if (!existsSync(pin)) return undefined;
  const fd = bpf.objGet(pin);
  if (fd < 0) return undefined; // not readable as a map: let the load say why
  try {
    const info = Buffer.alloc(80); // struct bpf_map_info: type, id, key_size, value_size, max_entries, ...
    if (bpf.objInfo(fd, info, [info.length]) < 0) return undefined;
    const [type, keySize, valueSize, maxEntries] = [info.readUInt32LE(0), info.readUInt32LE(8), info.readUInt32LE(12), info.readUInt32LE(16)];
    if (type !== bpf.mapType(m)) return `type ${type}, now ${bpf.mapType(m)}`;
    if (keySize !== bpf.mapKeySize(m)) return `key size ${keySize}, now ${bpf.mapKeySize(m)}`;
    if (valueSize !== bpf.mapValueSize(m)) return `value size ${valueSize}, now ${bpf.mapValueSize(m)}`;
    if (maxEntries !== bpf.mapMaxEntries(m)) return `${maxEntries} entries, now ${bpf.mapMaxEntries(m)}`;
    return undefined;
  } finally {
    closeSync(fd);
  }
}
