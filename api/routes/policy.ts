import { Router } from 'express';
import { failpoint } from '../../failpoint/failpoint';
import { protocolNumber } from '../../net/protocol';
import { PolicyRepository } from '../../policy/repository';
import { PolicyResolver } from '../../policy/resolve';
import { ApiDeps } from '../deps';
import { HttpError, queryText, userLabels } from '../http';
import type { PolicyChange, PolicyDeleted, PolicyList, Trace } from '../types';

export function policyRoutes(d: ApiDeps): Router {
  const r = Router();
  r.get('/v1/policy', (req, res) => {
    const labels = queryText(req.query.labels).split(',').filter(Boolean);
    res.json({ revision: d.repo.revision, rules: d.repo.select(labels) } satisfies PolicyList);
  });
  /**
   * A repository change whose datapath update fails is rolled back: the
   * previous rules and revision are put back and the maps rewritten from them.
   */
  const applyOrRollBack = async (before: ReturnType<PolicyRepository['snapshot']>, what: string) => {
    try {
      d.sync.regenerate();
    } catch (err) {
      await d.repo.restore(before);
      try {
        d.sync.regenerate();
      } catch (again) {
        d.log.error(`policy rollback: rewriting the maps for revision ${before.revision} failed too: ${(again as Error).message}`);
      }
      d.log.error(`${what} rolled back: the datapath update failed: ${(err as Error).message}`);
      throw new HttpError(500, `${what} not applied, revision ${before.revision} stays in force: the datapath update failed: ${(err as Error).message}`);
    }
  };
  r.put('/v1/policy', async (req, res) => {
    const before = d.repo.snapshot();
    let revision: number;
    try {
      revision = await d.repo.import(req.body);
    } catch (err) {
      throw new HttpError(400, (err as Error).message);
    }
    failpoint('policy-persisted');
    await applyOrRollBack(before, 'policy import');
    d.log.info(`policy imported, revision ${revision}`);
    res.json({ revision } satisfies PolicyChange);
  });
  r.delete('/v1/policy', async (req, res) => {
    const body = (req.body ?? {}) as { labels?: unknown; all?: unknown };
    const labels = Array.isArray(body.labels) ? body.labels.map(String) : [];
    if (labels.length === 0 && body.all !== true) throw new HttpError(400, 'give labels of the rules to delete, or all: true');
    const before = d.repo.snapshot();
    const result = await d.repo.delete(labels);
    await applyOrRollBack(before, 'policy delete');
    res.json(result satisfies PolicyDeleted);
  });
  r.post('/v1/policy/resolve', (req, res) => {
    const b = (req.body ?? {}) as { from?: unknown; to?: unknown; dport?: unknown; protocol?: unknown };
    if (!Array.isArray(b.from) || !Array.isArray(b.to)) throw new HttpError(400, 'from and to must be lists of labels');
    const from = userLabels(b.from.map(String));
    const to = userLabels(b.to.map(String));
    const port = Number(b.dport ?? 0);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new HttpError(400, `dport ${String(b.dport)} is not a port`);
    const protocol = b.protocol ?? 'TCP';
    const proto = typeof protocol === 'string' ? protocolNumber(protocol) : undefined;
    if (proto === undefined)
      throw new HttpError(400, `protocol ${typeof protocol === 'string' ? protocol : JSON.stringify(protocol)} is not TCP, UDP, ICMP or ANY`);
    // Label sets with no identity yet get provisional numbers, so a trace works before any container exists.
    const known = d.sync.knownIdentities();
    const idOf = (labels: string[], provisional: number) => known.find((i) => JSON.stringify(i.labels) === JSON.stringify(labels))?.id ?? provisional;
    const srcId = idOf(from, -1);
    const dstId = idOf(to, -2);
    const extra = [srcId < 0 ? { id: srcId, labels: from } : undefined, dstId < 0 ? { id: dstId, labels: to } : undefined].filter((x) => x !== undefined);
    const resolver = new PolicyResolver(d.repo.rules, [...known, ...extra], 'default');
    const trace = resolver.trace(from, to, srcId, dstId, port, proto);
    res.json({ verdict: trace.allowed ? 'ALLOWED' : 'DENIED', steps: trace.steps, srcIdentity: srcId, dstIdentity: dstId } satisfies Trace);
  });
  return r;
}
