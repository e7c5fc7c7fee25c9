import type { Maps } from '../datapath/bpf/loader';
import { Backend, Frontend, MAGLEV_CHUNK } from '../datapath/bpf/maps';
import { maglevTable } from './maglev';

export interface Service {
  id: number;
  frontend: Frontend;
  backends: Backend[];
}

const frontendKey = (f: Frontend) => `${f.family}/${f.address ?? '*'}/${f.port}/${f.proto}`;
const backendKey = (b: Backend) => `${b.family}/${b.address}/${b.port}/${b.proto}`;

/**
 * The one writer of the service maps (cilium_lb_svc, cilium_lb_backend,
 * cilium_lb_maglev): services by ID with their frontend and backends, each
 * distinct backend written once under an ID of its own and freed with its
 * last service, and with Maglev each service's table.
 */
export class LoadBalancer {
  private readonly services = new Map<number, Service>();
  /** Service IDs by frontendKey: at thousands of services, an update must not walk them all. */
  private readonly byFrontend = new Map<string, number>();
  private nextFreeId = 1;
  private readonly backendIds = new Set<number>();
  /** Every backend ID below it is taken. */
  private nextBackendId = 1;
  private readonly backends = new Map<string, { id: number; refs: number }>();

  constructor(
    private readonly maps: Pick<Maps, 'lbServices' | 'lbBackends' | 'lbMaglev'>,
    /** Entries of each service's Maglev table (one of MAGLEV_TABLE_SIZES); 0: the datapath picks at random. */
    private readonly maglevTableSize = 0,
  ) {}

  /**
   * At start, once every owner has declared its services: whatever else the
   * maps hold (services and backends of an earlier run that are gone) is
   * removed. Services that stay were rewritten first, so they never
   * disappear from the datapath.
   */
  removeStale(): void {
    const wanted = new Set([...this.services.values()].map((s) => frontendKey(s.frontend)));
    for (const e of this.maps.lbServices.entries()) if (!wanted.has(frontendKey(e.frontend))) this.maps.lbServices.delete(e.frontend);
    const ids = new Set([...this.backends.values()].map((b) => b.id));
    for (const e of this.maps.lbBackends.entries()) if (!ids.has(e.id)) this.maps.lbBackends.delete(e.id);
    // Tables of services gone, all of them when Maglev is off, chunks beyond a table size changed since.
    const tables = new Set([...this.services.values()].filter((s) => s.backends.length).map((s) => frontendKey(s.frontend)));
    for (const e of this.maps.lbMaglev.entries())
      if (!tables.has(frontendKey(e.frontend)) || e.chunk >= this.chunks()) this.maps.lbMaglev.deleteChunk(e.frontend, e.chunk);
  }

  /**
   * Creates the service for frontend (under id when given, else the lowest
   * free one), or gives the existing one these backends.
   */
  upsert(frontend: Frontend, backends: Backend[], id?: number): Service {
    const existing = this.find(frontend);
    if (id !== undefined && existing && existing.id !== id) throw new Error(`the frontend is already service ${existing.id}'s`);
    if (id !== undefined && !existing && this.services.has(id)) throw new Error(`service ID ${id} is taken`);
    // An endpoint's every change reselects every selector service: most keep their backends, and their maps.
    if (existing && existing.backends.length === backends.length && existing.backends.every((b, i) => backendKey(b) === backendKey(backends[i]!)))
      return existing;
    const ids = backends.map((b) => this.refBackend(b));
    // The table before the slots that send packets to it; without backends, nothing is looked up in it.
    if (this.maglevTableSize && ids.length)
      this.maps.lbMaglev.set(
        frontend,
        maglevTable(backends.map(backendKey), this.maglevTableSize).map((i) => ids[i]!),
      );
    this.maps.lbServices.set(frontend, ids);
    if (this.maglevTableSize && !ids.length) this.maps.lbMaglev.delete(frontend, this.chunks());
    if (existing) for (const b of existing.backends) this.unrefBackend(b);
    const service: Service = { id: existing?.id ?? id ?? this.freeId(), frontend, backends };
    this.services.set(service.id, service);
    this.byFrontend.set(frontendKey(frontend), service.id);
    return service;
  }

  get(id: number): Service | undefined {
    return this.services.get(id);
  }

  /** The service whose frontend this is. */
  find(frontend: Frontend): Service | undefined {
    const id = this.byFrontend.get(frontendKey(frontend));
    return id === undefined ? undefined : this.services.get(id);
  }

  remove(id: number): void {
    const s = this.services.get(id);
    if (!s) return;
    this.maps.lbServices.delete(s.frontend);
    if (this.maglevTableSize) this.maps.lbMaglev.delete(s.frontend, this.chunks());
    for (const b of s.backends) this.unrefBackend(b);
    this.services.delete(id);
    this.byFrontend.delete(frontendKey(s.frontend));
    this.nextFreeId = Math.min(this.nextFreeId, id);
  }

  list(): Service[] {
    return [...this.services.values()].sort((a, b) => a.id - b.id);
  }

  backendId(b: Backend): number | undefined {
    return this.backends.get(backendKey(b))?.id;
  }

  private refBackend(b: Backend): number {
    const k = backendKey(b);
    const known = this.backends.get(k);
    if (known) {
      known.refs++;
      return known.id;
    }
    while (this.backendIds.has(this.nextBackendId)) this.nextBackendId++;
    const id = this.nextBackendId;
    this.maps.lbBackends.set(id, b);
    this.backends.set(k, { id, refs: 1 });
    this.backendIds.add(id);
    return id;
  }

  private unrefBackend(b: Backend): void {
    const k = backendKey(b);
    const known = this.backends.get(k);
    if (!known || --known.refs > 0) return;
    this.maps.lbBackends.delete(known.id);
    this.backends.delete(k);
    this.backendIds.delete(known.id);
    this.nextBackendId = Math.min(this.nextBackendId, known.id);
  }

  /** Chunks of a Maglev table. */
  private chunks(): number {
    return Math.ceil(this.maglevTableSize / MAGLEV_CHUNK);
  }

  /** The lowest free ID (every ID below nextFreeId is taken). */
  private freeId(): number {
    while (this.services.has(this.nextFreeId)) this.nextFreeId++;
    return this.nextFreeId;
  }
}
