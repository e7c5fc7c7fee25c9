import type { Flow } from './judge';
import { AccessRecord, AccessTuple, ProxyMessage, toTuple } from './snapshot';

/** Access records go to the agent in batches: at most ten a second, or sooner when one fills. */
const ACCESS_BATCH_MS = 100;
/** A full batch goes at once: the agent parses each message in one go, and a small one keeps its API answering meanwhile. */
const ACCESS_BATCH_MAX = 256;

export type Report = (r: AccessRecord) => void;

export function batchedReport(send: (m: ProxyMessage) => void): Report {
  let batch: AccessTuple[] = [];
  let timer: NodeJS.Timeout | undefined;
  const flush = () => {
    clearTimeout(timer);
    timer = undefined;
    send({ type: 'access', records: batch });
    batch = [];
  };
  return (r) => {
    if (batch.push(toTuple(r)) >= ACCESS_BATCH_MAX) flush();
    else timer ??= setTimeout(flush, ACCESS_BATCH_MS);
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
