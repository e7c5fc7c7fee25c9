import type { Endpoint } from '../endpoint/endpoint';
import type { EndpointRegistry } from '../endpoint/registry';
import { Family, formatAddress, formatHostPort, parseAddress } from '../net/address';
import { matches } from '../policy/selector';
import { KVStore, listJSON, putJSON } from '../store/kvstore';
import type { Frontend } from '../datapath/bpf/maps';
import { LoadBalancer, Service } from './load-balancer';
import { Proto, protoNumber } from './port-mapping';

const key = (id: number) => `service/${id}`;
const MAX_ID = 65535;

/** host:port, IPv6 as [addr]:port. */
export interface HostPort {
  address: string;
  port: number;
}

/** What toServices needs of a named service: its selector, or its given backends' addresses. */
export interface ServiceTarget {
  name: string;
  selector?: Record<string, string>;
  backendAddresses: string[];
}

/** A DNS label, as Kubernetes names services. */
const NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/**
 * A service a user defines (`cilium service update`): a virtual address and
 * port, and its backends: given, or every ready endpoint whose labels match
 * a selector, on a port of theirs (what no peer gives Docker users).
 */
export interface ServiceSpec {
  id: number;
  /** What policy's toServices calls it (k8sService.serviceName), unique among services. */
  name?: string;
  frontend: HostPort;
  protocol: Proto;
  backends?: HostPort[];
  selector?: Record<string, string>;
  targetPort?: number;
}

export function parseHostPort(text: string, what: string): HostPort & { family: Family } {
  const m = /^\[([0-9a-fA-F:.]+)\]:(\d+)$/.exec(text) ?? /^([0-9.]+):(\d+)$/.exec(text);
  const port = Number(m?.[2]);
  if (!m || !Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`${what} "${text}" must be ADDRESS:PORT ([ADDRESS]:PORT for IPv6)`);
  let a;
  try {
    a = parseAddress(m[1]!);
  } catch {
    throw new Error(`${what} "${text}": ${m[1]} is not an IP address`);
  }
  return { family: a.family, address: formatAddress(a.family, a.value), port };
}

/** A service definition as the API takes it, checked; throws a message fit for a 400. */
export function validateSpec(id: number, body: Record<string, unknown>): ServiceSpec {
  if (!Number.isInteger(id) || id < 1 || id > MAX_ID) throw new Error(`service ID must be 1-${MAX_ID}`);
  const protocol = typeof body.protocol === 'string' ? body.protocol.toLowerCase() : body.protocol === undefined ? 'tcp' : '';
  if (protocol !== 'tcp' && protocol !== 'udp') throw new Error(`protocol ${JSON.stringify(body.protocol)}: tcp or udp`);
  if (typeof body.frontend !== 'string') throw new Error('frontend (ADDRESS:PORT) is required');
  const frontend = parseHostPort(body.frontend, 'frontend');
  const hasBackends = body.backends !== undefined;
  const hasSelector = body.selector !== undefined;
  if (hasBackends === hasSelector) throw new Error('a service takes backends or a selector (with targetPort), not both or neither');
  if (body.name !== undefined && (typeof body.name !== 'string' || !NAME.test(body.name)))
    throw new Error(`name ${JSON.stringify(body.name)}: lower-case letters, digits and '-', at most 63, as a DNS label`);
  const spec: ServiceSpec = { id, ...(body.name ? { name: body.name } : {}), frontend: { address: frontend.address, port: frontend.port }, protocol };
  if (hasBackends) {
    if (!Array.isArray(body.backends) || body.backends.some((b) => typeof b !== 'string')) throw new Error('backends must be a list of ADDRESS:PORT');
    spec.backends = (body.backends as string[]).map((b) => {
      const hp = parseHostPort(b, 'backend');
      if (hp.family !== frontend.family) throw new Error(`backend ${b} is IPv${hp.family}, the frontend IPv${frontend.family}`);
      return { address: hp.address, port: hp.port };
    });
  } else {
    const sel = body.selector;
    if (typeof sel !== 'object' || sel === null || Array.isArray(sel) || Object.keys(sel).length === 0)
      throw new Error('selector must be an object of label keys and values, e.g. {"app": "web"}');
    for (const [k, v] of Object.entries(sel)) if (typeof v !== 'string') throw new Error(`selector ${k}: the value must be a string`);
    const port = body.targetPort;
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) throw new Error("a selector needs targetPort, the backends' port");
    spec.selector = sel as Record<string, string>;
    spec.targetPort = port;
  }
  return spec;
}

const familyOf = (address: string): Family => (address.includes(':') ? 6 : 4);

/**
 * The one owner of user-defined services: stored (`service/<id>`), written
 * through the load balancer, and for selector services followed as
 * endpoints come, become ready, change labels and go.
 */
export class UserServices {
  private readonly specs = new Map<number, ServiceSpec>();
  private readonly changed: Array<() => void> = [];

  private constructor(
    private readonly store: KVStore,
    private readonly lb: LoadBalancer,
    private readonly endpoints: Pick<EndpointRegistry, 'list' | 'onSaved' | 'onRemoving'>,
  ) {}

  static async load(store: KVStore, lb: LoadBalancer, endpoints: Pick<EndpointRegistry, 'list' | 'onSaved' | 'onRemoving'>): Promise<UserServices> {
    const us = new UserServices(store, lb, endpoints);
    for (const spec of await listJSON<ServiceSpec>(store, 'service/')) {
      us.specs.set(spec.id, spec);
      us.write(spec);
    }
    endpoints.onSaved((before, after) => {
      if (before?.state !== after.state || before.labels.join() !== after.labels.join()) us.reselect();
    });
    endpoints.onRemoving((ep) => {
      us.reselect(ep);
    });
    return us;
  }

  /** Creates or redefines service spec.id: stored first, then written. */
  async update(spec: ServiceSpec): Promise<Service> {
    if (this.lb.get(spec.id) && !this.specs.has(spec.id))
      throw new Error(`service ID ${spec.id} is a published port's (cilium service list): choose another ID`);
    const clash = this.lb.find(frontendOf(spec));
    if (clash && clash.id !== spec.id)
      throw new Error(`frontend ${formatHostPort(spec.frontend.address, spec.frontend.port)}/${spec.protocol.toUpperCase()} is already service ${clash.id}'s`);
    const named = spec.name ? [...this.specs.values()].find((s) => s.id !== spec.id && s.name === spec.name) : undefined;
    if (named) throw new Error(`the name ${spec.name!} is already service ${named.id}'s`);
    await this.store.batch([putJSON(key(spec.id), spec)]);
    const before = this.specs.get(spec.id);
    if (before && clash?.id !== spec.id) this.lb.remove(spec.id); // a new frontend: the old one goes
    this.specs.set(spec.id, spec);
    const service = this.write(spec);
    this.announce(before, spec);
    return service;
  }

  /** false when there is no such user service. */
  async delete(id: number): Promise<boolean> {
    const before = this.specs.get(id);
    if (!before) return false;
    await this.store.batch([{ type: 'del', key: key(id) }]);
    this.specs.delete(id);
    this.lb.remove(id);
    this.announce(before, undefined);
    return true;
  }

  get(id: number): ServiceSpec | undefined {
    return this.specs.get(id);
  }

  /** The named services, for toServices. */
  targets(): ServiceTarget[] {
    return [...this.specs.values()]
      .filter((s) => s.name)
      .map((s) => ({ name: s.name!, ...(s.selector ? { selector: s.selector } : {}), backendAddresses: (s.backends ?? []).map((b) => b.address) }));
  }

  /** fn runs after a named service was defined, redefined or deleted: what toServices resolves to changed. */
  onTargetsChanged(fn: () => void): void {
    this.changed.push(fn);
  }

  private announce(before: ServiceSpec | undefined, after: ServiceSpec | undefined): void {
    if (before?.name || after?.name) for (const fn of this.changed) fn();
  }

  /** Selector services' backends anew (gone: an endpoint being removed, not yet out of the registry). */
  private reselect(gone?: Endpoint): void {
    for (const spec of this.specs.values()) if (spec.selector) this.write(spec, gone);
  }

  private write(spec: ServiceSpec, gone?: Endpoint): Service {
    const family = familyOf(spec.frontend.address);
    const proto = protoNumber(spec.protocol);
    const backends = spec.backends
      ? spec.backends
      : this.endpoints
          .list()
          .filter(
            (e) => e !== gone && e.dockerEndpointId !== gone?.dockerEndpointId && e.state === 'ready' && matches({ matchLabels: spec.selector! }, e.labels),
          )
          .flatMap((e) => {
            const a = (family === 4 ? e.ipv4 : e.ipv6)?.split('/')[0];
            return a ? [{ address: a, port: spec.targetPort! }] : [];
          });
    return this.lb.upsert(
      frontendOf(spec),
      backends.map((b) => ({ family, address: parseAddress(b.address).value, port: b.port, proto })),
      spec.id,
    );
  }
}

function frontendOf(spec: ServiceSpec): Frontend {
  return {
    family: familyOf(spec.frontend.address),
    address: parseAddress(spec.frontend.address).value,
    port: spec.frontend.port,
    proto: protoNumber(spec.protocol),
  };
}
