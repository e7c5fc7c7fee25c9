import type { Endpoint } from '../../endpoint/endpoint';

/** An endpoint record as the registry holds one, for unit tests: number id, the rest given or made up from it. */
export function endpointFixture(id: number, more: Partial<Endpoint> = {}): Endpoint {
  return {
    id,
    dockerEndpointId: String(id).repeat(64).slice(0, 64),
    dockerNetworkId: 'n'.repeat(64),
    ifName: `lxc${id}`,
    peerName: `tmp${id}`,
    ifIndex: 100 + id,
    mac: '02:00:00:00:00:01',
    hostMac: '02:00:00:00:00:02',
    labels: [],
    identity: 5,
    state: 'ready',
    createdAt: new Date().toISOString(),
    ...more,
  };
}
