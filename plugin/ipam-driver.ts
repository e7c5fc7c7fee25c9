import { Logger } from 'winston';
import { Ipam } from '../ipam/ipam';
import { asBody, optionalBool, optionalString, stringMap } from './validate';

/** libnetwork's IpamDriver.* calls, translated onto the host-scope allocator. */
export class IpamDriver {
  constructor(
    private readonly ipam: Ipam,
    private readonly log: Logger,
  ) {}

  getCapabilities() {
    // No replay: our own store is the source of truth across dockerd restarts.
    return { RequiresMACAddress: false, RequiresRequestReplay: false };
  }

  getDefaultAddressSpaces() {
    return this.ipam.getDefaultAddressSpaces();
  }

  async requestPool(raw: unknown) {
    const b = asBody(raw);
    optionalString(b, 'AddressSpace');
    stringMap(b, 'Options');
    const answer = await this.ipam.requestPool({
      pool: optionalString(b, 'Pool'),
      subPool: optionalString(b, 'SubPool'),
      v6: optionalBool(b, 'V6'),
    });
    this.log.debug('pool requested', answer);
    return { PoolID: answer.poolId, Pool: answer.pool, Data: answer.data };
  }

  async releasePool(raw: unknown) {
    await this.ipam.releasePool(poolId(asBody(raw)));
    return {};
  }

  async requestAddress(raw: unknown) {
    const b = asBody(raw);
    const address = await this.ipam.requestAddress(poolId(b), optionalString(b, 'Address'), stringMap(b, 'Options'));
    this.log.debug('address requested', { pool: b.PoolID, address });
    return { Address: address, Data: {} };
  }

  async releaseAddress(raw: unknown) {
    const b = asBody(raw);
    const address = optionalString(b, 'Address');
    if (address === '') throw new Error('Address is required');
    const released = await this.ipam.releaseAddress(poolId(b), address);
    if (!released) this.log.warn(`address ${address} of pool ${String(b.PoolID)} was not allocated (released twice?)`);
    return {};
  }
}

function poolId(b: Record<string, unknown>): string {
  const id = optionalString(b, 'PoolID');
  if (id === '') throw new Error('PoolID is required');
  return id;
}
