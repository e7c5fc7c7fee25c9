import { Logger } from 'winston';
import { failpoint } from '../failpoint/failpoint';
import type { DatapathMaps } from '../datapath/bpf/loader';
import { PolicyKey, PolicyMap } from '../datapath/bpf/maps';
import { EndpointDatapathState, programEndpoint, unprogramEndpoint } from '../datapath/bpf/endpoint-program';
import { formatAddress, formatCidr, parseAddress, parseCidr } from '../net/address';
import { IdentityAllocator } from '../identity/allocator';
import { CidrIdentities, knownIdentities } from '../identity/cidr';
import { EndpointPolicy, EnforcementMode, PolicyResolver, ServicePeers, rulePrefixes } from '../policy/resolve';
import type { UserServices } from '../service/user-services';
import { Hooks } from '../metrics/metrics';
import type { ProxySnapshot } from '../proxy/snapshot';
import { PolicyRepository } from '../policy/repository';
import { Endpoint } from './endpoint';
import { EndpointRegistry } from './registry';

const hex = (k: PolicyKey) => PolicyMap.key(k).toString('hex');

/** A policy entry with the proxy port its value names (0: none). */
type ProxiedKey = PolicyKey & { proxyPort: number };

/** An endpoint's address as text, without its prefix length. */
const canonical = (a: string) => {
  const p = parseAddress(a.split('/')[0]!);
  return formatAddress(p.family, p.value);
};

/**
 * Keeps the kernel's policy in step with the rules and identities: it
 * computes what each endpoint should allow and writes only the difference,
 * adding before removing so that no change opens or closes more than it says.
 */
export class PolicySync {
  /** What the policy map holds, per endpoint ID (read back from the kernel at start). */
  private readonly current = new Map<number, Map<string, ProxiedKey>>();
  private readonly lastPolicy = new Map<number, EndpointPolicy>();
  /** What was last written to each endpoint's datapath entries, so regeneration rewrites only what changed. */
  private readonly programmed = new Map<number, string>();
  /**
   * Each endpoint's policy generation: moved whenever its policy allows less,
   * so the datapath checks its tracked connections again (revocation).
   */
  private readonly policyGens = new Map<number, number>();
  private lastGen = 0;
  private services?: Pick<UserServices, 'targets'>;
  private readonly changeListeners: Array<() => void> = [];

  constructor(
    private readonly dp: DatapathMaps,
    private readonly registry: EndpointRegistry,
    private readonly identities: IdentityAllocator,
    private readonly cidrs: CidrIdentities,
    private readonly repo: PolicyRepository,
    private readonly opts: { mode: EnforcementMode; l7ProxyPort: number },
    private readonly log: Logger,
    private readonly hooks?: Pick<Hooks, 'policyRegenerated'>,
  ) {
    for (const e of dp.maps.policy.entries()) this.entriesOf(e.epId).set(hex(e), e);
    for (const e of dp.maps.endpoints.entries()) {
      this.policyGens.set(e.epId, e.policyGen);
      this.lastGen = Math.max(this.lastGen, e.policyGen);
    }
  }

  /**
   * The owners' announcements that change what the maps must hold: the rules
   * (a failure here makes the repository roll back), an identity released, an
   * endpoint saved (written at once; one that became ready or took another
   * identity regenerates) or removed (its entries revoked before its ID can be
   * reused). Nothing else writes endpoints or policy, except the first pass at
   * start. A write that fails makes the owner's call fail.
   */
  follow(repo: PolicyRepository, identities: IdentityAllocator, registry: EndpointRegistry): void {
    repo.onChange(() => {
      this.regenerate();
    });
    identities.onChanged(() => {
      this.regenerate();
    });
    registry.onSaved((before, after) => {
      if (after.state === 'ready' && (before?.state !== 'ready' || before.identity !== after.identity)) this.regenerate();
      else this.program(after);
    });
    registry.onRemoving((ep) => {
      this.forget(ep);
    });
  }

  /** toServices resolves against the named user services, regenerated as they change (they are made after this). */
  followServices(services: Pick<UserServices, 'targets' | 'onTargetsChanged'>): void {
    this.services = services;
    services.onTargetsChanged(() => {
      this.regenerate();
    });
    if (services.targets().length) this.regenerate(); // the first pass at start ran before the services were loaded
  }

  resolver(): PolicyResolver {
    return new PolicyResolver(this.repo.rules, knownIdentities(this.identities, this.cidrs), this.opts.mode, this.servicePeers());
  }

  /** Named services with the identities of the ready endpoints holding their given backends' addresses. */
  private servicePeers(): ServicePeers[] {
    const targets = this.services?.targets() ?? [];
    if (targets.length === 0) return [];
    const byAddress = new Map<string, number>();
    for (const ep of this.registry.list()) {
      if (ep.state !== 'ready') continue;
      for (const a of [ep.ipv4, ep.ipv6]) if (a) byAddress.set(canonical(a), ep.identity);
    }
    return targets.map((t) => ({
      name: t.name,
      ...(t.selector ? { selector: t.selector } : {}),
      identities: t.backendAddresses.flatMap((a) => {
        const id = byAddress.get(canonical(a));
        return id === undefined ? [] : [id];
      }),
    }));
  }

  /** Called after every regeneration and endpoint removal: what the L7 proxy must be told. */
  onChanged(l: () => void): void {
    this.changeListeners.push(l);
  }

  /** The ready endpoints with their policy and addresses, and the CIDR identities, for the L7 proxy. */
  proxySnapshot(): ProxySnapshot {
    return {
      cidrs: this.cidrs.entries().map(([c, identity]) => ({ cidr: formatCidr(c), identity })),
      endpoints: this.registry
        .list()
        .filter((ep) => ep.state === 'ready')
        .map((ep) => {
          const policy = this.lastPolicy.get(ep.id);
          return {
            id: ep.id,
            identity: ep.identity,
            addresses: [ep.ipv4, ep.ipv6].flatMap((a) => (a ? [canonical(a)] : [])),
            ingressEnforced: policy?.ingressEnforced ?? false,
            egressEnforced: policy?.egressEnforced ?? false,
            allows: policy?.allows ?? [],
          };
        }),
    };
  }

  policyOf(epId: number): EndpointPolicy | undefined {
    return this.lastPolicy.get(epId);
  }

  /** Brings every ready endpoint's policy (and the CIDR identities) in line with the rules, and every endpoint's entries with its record. */
  regenerate(): void {
    const t0 = process.hrtime.bigint();
    const staleCidrs = this.cidrs.assign(rulePrefixes(this.repo.rules));
    const resolver = this.resolver();
    const removals: PolicyKey[] = [];
    let added = 0;
    // Endpoints with the same labels have the same policy: compute it once per label set.
    const byLabels = new Map<string, EndpointPolicy>();
    const ready = this.registry.list().filter((ep) => ep.state === 'ready');
    const restricted = new Set<number>();
    for (const ep of ready) {
      const labelsKey = ep.labels.join('\n');
      let policy = byLabels.get(labelsKey);
      if (!policy) byLabels.set(labelsKey, (policy = resolver.forEndpoint(ep.labels)));
      const before = this.lastPolicy.get(ep.id);
      if ((policy.ingressEnforced && !before?.ingressEnforced) || (policy.egressEnforced && !before?.egressEnforced)) restricted.add(ep.id);
      const desired = new Map<string, ProxiedKey>();
      for (const a of policy.allows) {
        const k: ProxiedKey = { epId: ep.id, identity: a.identity, port: a.port, proto: a.proto, dir: a.dir, proxyPort: a.http ? this.opts.l7ProxyPort : 0 };
        desired.set(hex(k), k);
      }
      const have = this.entriesOf(ep.id);
      for (const [h, k] of desired) {
        const was = have.get(h);
        if (was?.proxyPort === k.proxyPort) continue;
        this.dp.maps.policy.allow(k, k.proxyPort);
        have.set(h, k);
        added++;
        // Into or out of the proxy: tracked connections are judged again (bpf ct_still_allowed)
        if (was) restricted.add(ep.id);
      }
      for (const [h, k] of have) if (!desired.has(h)) removals.push(k);
      this.lastPolicy.set(ep.id, policy);
    }
    for (const [c, id] of this.cidrs.entries()) this.dp.maps.ipcache.set(c.family, c.base, c.bits, id);
    for (const ep of this.registry.list()) this.program(ep);
    if (added) failpoint('policy-datapath'); // a failure halfway: entries added, none removed yet
    for (const prefix of staleCidrs) {
      const c = parseCidr(prefix);
      this.dp.maps.ipcache.delete(c.family, c.base, c.bits);
    }
    for (const k of removals) {
      this.dp.maps.policy.revoke(k);
      this.current.get(k.epId)?.delete(hex(k));
      restricted.add(k.epId);
    }
    // Only now that the map allows less: connections it no longer allows are dropped at their next packet.
    for (const ep of ready) {
      if (!restricted.has(ep.id)) continue;
      this.lastGen = (this.lastGen + 1) >>> 0 || 1;
      this.policyGens.set(ep.id, this.lastGen);
      this.program(ep);
    }
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    this.hooks?.policyRegenerated(ms / 1000);
    for (const l of this.changeListeners) l();
    if (added || removals.length)
      this.log.info(`policy regenerated: +${added} -${removals.length} entries in ${ms.toFixed(1)} ms`, { revision: this.repo.revision });
  }

  /** Writes the endpoint's datapath state from its current identity and policy. */
  private program(ep: Endpoint): void {
    const policy = this.lastPolicy.get(ep.id);
    const state: EndpointDatapathState = {
      id: ep.id,
      ifIndex: ep.ifIndex,
      mac: ep.mac,
      hostMac: ep.hostMac,
      ...(ep.ipv4 ? { ipv4: ep.ipv4 } : {}),
      ...(ep.ipv6 ? { ipv6: ep.ipv6 } : {}),
      ...(ep.sandboxKey ? { sandboxKey: ep.sandboxKey } : {}),
      identity: ep.identity,
      ingressEnforced: policy?.ingressEnforced ?? false,
      egressEnforced: policy?.egressEnforced ?? false,
      ready: ep.state === 'ready',
      policyGen: this.policyGens.get(ep.id) ?? 0,
    };
    const signature = JSON.stringify(state);
    if (this.programmed.get(ep.id) === signature) return;
    programEndpoint(this.dp, state);
    this.programmed.set(ep.id, signature);
  }

  /** Removes the endpoint's entries and revokes its policy (before its ID can be reused), and forgets it. */
  private forget(ep: Endpoint): void {
    unprogramEndpoint(this.dp, ep);
    for (const k of this.current.get(ep.id)?.values() ?? []) this.dp.maps.policy.revoke(k);
    this.current.delete(ep.id);
    this.lastPolicy.delete(ep.id);
    this.programmed.delete(ep.id);
    this.policyGens.delete(ep.id);
    failpoint('endpoint-unprogrammed');
    for (const l of this.changeListeners) l();
  }

  private entriesOf(epId: number): Map<string, ProxiedKey> {
    let m = this.current.get(epId);
    if (!m) this.current.set(epId, (m = new Map<string, ProxiedKey>()));
    return m;
  }
}
