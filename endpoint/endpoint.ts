/** What the agent knows of one container attachment. */
export type EndpointState = 'waiting-for-identity' | 'ready' | 'disconnected';

export interface Endpoint {
  /** Small per-host number, as in Cilium; the key of its policy in the datapath. */
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
  containerId?: string;
  containerName?: string;
  /** Sorted "source:key=value"; empty until the container is known. */
  labels: string[];
  /** 5 (init) until the labels are known: the endpoint passes nothing until then. */
  identity: number;
  state: EndpointState;
  createdAt: string;
}
