/** What the agent knows of one container attachment. */
export type EndpointState = 'creating' | 'ready' | 'disconnected';

export interface Endpoint {
  /** Small per-host number, as in Cilium; what the CLI and (later) BPF maps use. */
  id: number;
  dockerEndpointId: string;
  dockerNetworkId: string;
  /** Host-side veth and the container side's name before Docker renames it. */
  ifName: string;
  peerName: string;
  ifIndex: number;
  mac: string;
  hostMac: string;
  ipv4?: string;
  ipv6?: string;
  sandboxKey?: string;
  state: EndpointState;
  createdAt: string;
}
