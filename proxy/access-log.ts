import type { Flow } from './judge';
import { AccessRecord, ProxyMessage } from './snapshot';

/** Access records go to the agent in batches, at most ten messages a second whatever the request rate. */
const ACCESS_BATCH_MS = 100;

export type Report = (r: AccessRecord) => void;

export function batchedReport(send: (m: ProxyMessage) => void): Report {
  let batch: AccessRecord[] = [];
  return (r) => {
    if (batch.push(r) > 1) return;
    setTimeout(() => {
      send({ type: 'access', records: batch });
      batch = [];
    }, ACCESS_BATCH_MS);
  };
}

/** What one request was, for its record. */
export interface RequestLine {
  protocol: AccessRecord['protocol'];
  method: string;
  url: string;
  host: string;
}

/**
 * The record of one request, written once its answer is known. The proxy's
 * own time runs from the request's arrival to the moment it went upstream
 * (or was answered); sent() marks that moment.
 */
export class RequestRecord {
  private readonly t0 = process.hrtime.bigint();
  private sentAfter = 0;
  private done = false;

  constructor(
    private readonly report: Report,
    private readonly f: Flow,
    private readonly req: RequestLine,
  ) {}

  sent(): void {
    this.sentAfter = this.elapsed();
  }

  finish(verdict: AccessRecord['verdict'], status: number): void {
    if (this.done) return;
    this.done = true;
    const f = this.f;
    this.report({
      direction: f.direction,
      verdict,
      status,
      ...this.req,
      src: f.src,
      srcPort: f.srcPort,
      srcIdentity: f.srcIdentity,
      dst: f.dst,
      dstPort: f.dstPort,
      dstIdentity: f.dstIdentity,
      endpoint: f.endpoint,
      proxySeconds: verdict === 'forwarded' ? this.sentAfter : this.sentAfter || this.elapsed(),
    });
  }

  private elapsed(): number {
    return Number(process.hrtime.bigint() - this.t0) / 1e9;
  }
}
