import { Identity } from './allocator';

/**
 * Where identity numbers live: this host's store, or the cluster's kvstore.
 * Either way a label set gets one number and a number one label set, whoever
 * races for them (compare-and-set), and the allocator above keeps the users.
 */
export interface IdentityBackend {
  /** Every identity that exists now. */
  load(): Promise<Identity[]>;
  /** The number of this label set: the one it has, else a new one from pick() (called again while a number is taken). */
  allocate(labels: string[], pick: () => number): Promise<number>;
  /** This host uses the identity (again). */
  use(identity: Identity): void;
  /** This host stopped using it, after the grace period; the identity may be gone for every host. */
  release(identity: Identity): Promise<void>;
  /** Other hosts' allocations: every identity, each time the set changes. Absent: only this host allocates. */
  follow?(onChange: (all: Identity[]) => void): Promise<void>;
}
