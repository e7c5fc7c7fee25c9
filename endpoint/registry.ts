import { KVStore, listJSON, putJSON } from '../store/kvstore';
import { Endpoint } from './endpoint';

const MAX_ENDPOINT_ID = 65535;
const key = (dockerEndpointId: string) => `endpoint/${dockerEndpointId}`;

/** Endpoints by Docker endpoint ID, mirrored in the store before any caller sees a change. */
export class EndpointRegistry {
  private readonly byDockerId = new Map<string, Endpoint>();
  private readonly usedIds = new Set<number>();
  private readonly listeners: Array<(before: Endpoint | undefined, after: Endpoint) => void> = [];
  private readonly removingListeners: Array<(ep: Endpoint) => void> = [];

  private constructor(private readonly store: KVStore) {}

  /** Called, synchronously, after each saved change with the endpoint as it was and as it is. */
  onSaved(listener: (before: Endpoint | undefined, after: Endpoint) => void): void {
    this.listeners.push(listener);
  }

  /**
   * Called, synchronously, before each removal is stored, so while the
   * endpoint's ID is still taken. A listener that throws fails the removal and
   * leaves the endpoint recorded, for reconciliation to remove again.
   */
  onRemoving(listener: (ep: Endpoint) => void): void {
    this.removingListeners.push(listener);
  }

  static async load(store: KVStore): Promise<EndpointRegistry> {
    const reg = new EndpointRegistry(store);
    for (const ep of await listJSON<Endpoint>(store, 'endpoint/')) reg.remember(ep);
    return reg;
  }

  /** Lowest free ID; reserved synchronously so that concurrent creates never share one. */
  reserveId(): number {
    for (let id = 1; id <= MAX_ENDPOINT_ID; id++) {
      if (!this.usedIds.has(id)) {
        this.usedIds.add(id);
        return id;
      }
    }
    throw new Error(`all ${MAX_ENDPOINT_ID} endpoint IDs are in use on this host`);
  }

  /** An ID taken by a create still under way (no endpoint recorded yet). */
  isReserved(id: number): boolean {
    return this.usedIds.has(id) && !this.byId(id);
  }

  unreserveId(id: number): void {
    if (![...this.byDockerId.values()].some((e) => e.id === id)) this.usedIds.delete(id);
  }

  async save(ep: Endpoint): Promise<void> {
    const before = this.byDockerId.get(ep.dockerEndpointId);
    await this.store.batch([putJSON(key(ep.dockerEndpointId), ep)]);
    this.remember(ep);
    for (const l of this.listeners) l(before, ep);
  }

  /**
   * Not synced to disk: DeleteEndpoint comes while the engine tears the
   * container down and an fsync then waits ~20 ms for its I/O. A removal lost
   * to a power cut leaves a record whose container is gone, which start-up
   * reconciliation removes; an address, by contrast, is never allocated
   * without an fsync.
   */
  async remove(ep: Endpoint): Promise<void> {
    for (const l of this.removingListeners) l(ep);
    await this.store.batch([{ type: 'del', key: key(ep.dockerEndpointId) }], { durable: false });
    this.byDockerId.delete(ep.dockerEndpointId);
    this.usedIds.delete(ep.id);
  }

  byDockerEndpoint(dockerEndpointId: string): Endpoint | undefined {
    return this.byDockerId.get(dockerEndpointId);
  }

  byId(id: number): Endpoint | undefined {
    return [...this.byDockerId.values()].find((e) => e.id === id);
  }

  list(): Endpoint[] {
    return [...this.byDockerId.values()].sort((a, b) => a.id - b.id);
  }

  private remember(ep: Endpoint): void {
    this.byDockerId.set(ep.dockerEndpointId, ep);
    this.usedIds.add(ep.id);
  }
}
