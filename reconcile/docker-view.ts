import Docker from 'dockerode';

export interface DockerEndpoint {
  containerId: string;
  name: string;
  ipv4?: string;
  ipv6?: string;
}

/** What Docker says exists on this driver's networks, and on any network using its IPAM, at one moment. */
export interface DockerView {
  /** ms since the epoch, taken before the first request: anything newer may be missing. */
  takenAt: number;
  /** network ID -> Docker endpoint ID -> its container (networks of this driver) */
  networks: Map<string, Map<string, DockerEndpoint>>;
  /** every address Docker has given a container on a network using this IPAM (whatever its driver) */
  addresses: Set<string>;
  /** the --subnet of every network using this IPAM (`--ipam-driver cilium` with another driver too) */
  subnets: Set<string>;
}

const bare = (cidr: string | undefined) => (cidr ? cidr.split('/')[0] : undefined);

export async function dockerView(docker: Docker, driver: string): Promise<DockerView> {
  const takenAt = Date.now();
  const view: DockerView = { takenAt, networks: new Map(), addresses: new Set(), subnets: new Set() };
  for (const n of (await docker.listNetworks()) as Array<{ Id: string; Driver?: string; IPAM?: { Driver?: string } }>) {
    const ours = n.Driver === driver;
    if (!ours && n.IPAM?.Driver !== driver) continue;
    const detail = (await docker.getNetwork(n.Id).inspect()) as {
      Containers?: Record<string, { EndpointID?: string; Name?: string; IPv4Address?: string; IPv6Address?: string }>;
      IPAM?: { Config?: Array<{ Subnet?: string }> };
    };
    const eps = new Map<string, DockerEndpoint>();
    for (const [cid, c] of Object.entries(detail.Containers ?? {})) {
      if (!c.EndpointID) continue;
      const ipv4 = bare(c.IPv4Address) || undefined;
      const ipv6 = bare(c.IPv6Address) || undefined;
      eps.set(c.EndpointID, { containerId: cid, name: c.Name ?? '', ...(ipv4 ? { ipv4 } : {}), ...(ipv6 ? { ipv6 } : {}) });
      for (const a of [ipv4, ipv6]) if (a) view.addresses.add(a);
    }
    if (ours) view.networks.set(n.Id, eps);
    for (const c of detail.IPAM?.Config ?? []) if (c.Subnet) view.subnets.add(c.Subnet);
  }
  return view;
}
