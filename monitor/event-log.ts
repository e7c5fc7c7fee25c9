import { DatapathEvent, EventType } from '../datapath/bpf/events';
import type { AccessRecord } from '../proxy/snapshot';

/** A datapath event, or an HTTP request the L7 proxy judged (type l7, with its request and answer). */
export interface MonitorEvent extends Omit<DatapathEvent, 'type'> {
  type: EventType | 'l7';
  http?: { protocol: string; method: string; url: string; host: string; status: number };
}

export interface LoggedEvent extends MonitorEvent {
  seq: number;
  time: string;
}

const L7_VERDICT = { forwarded: 'Forwarded', denied: 'Denied', error: 'Error' } as const;

/** The proxy's access record as a monitor event: the client's request, in the direction whose policy redirected it. */
export function l7Event(r: AccessRecord): MonitorEvent {
  return {
    type: 'l7',
    reason: 0,
    reasonName: L7_VERDICT[r.verdict],
    direction: r.direction,
    endpoint: r.endpoint,
    srcIdentity: r.srcIdentity,
    dstIdentity: r.dstIdentity,
    family: r.dst.includes(':') ? 6 : 4,
    src: r.src,
    dst: r.dst,
    sport: r.srcPort,
    dport: r.dstPort,
    protocol: 'tcp',
    tcpFlags: 0,
    length: 0,
    ifindex: 0,
    http: { protocol: r.protocol, method: r.method, url: r.url, host: r.host, status: r.status },
  };
}

/** What the log holds of one event: the event as it came (an access record stays one until read) and when. */
interface Entry {
  seq: number;
  ms: number;
  event: MonitorEvent | AccessRecord;
  access: boolean;
}

/**
 * The last datapath events, numbered, for the API: a reader asks for what
 * came after the last number it saw, so a reconnecting monitor misses nothing
 * that is still held. Events are shaped for readers only when read (the L7
 * proxy reports thousands a second that nobody may ever ask for).
 */
export class EventLog {
  private readonly events: Entry[] = [];
  private seq = 0;
  private readonly listeners = new Set<(e: LoggedEvent) => void>();

  constructor(private readonly capacity = 4096) {}

  push(e: MonitorEvent): void {
    this.add(e, false);
  }

  /** The proxy's access records, as l7 events. */
  pushAccess(records: AccessRecord[]): void {
    for (const r of records) this.add(r, true);
  }

  since(seq: number): LoggedEvent[] {
    const out: LoggedEvent[] = [];
    for (const x of this.events) if (x.seq > seq) out.push(logged(x));
    return out;
  }

  subscribe(l: (e: LoggedEvent) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  private add(event: MonitorEvent | AccessRecord, access: boolean): void {
    const x: Entry = { seq: ++this.seq, ms: Date.now(), event, access };
    this.events.push(x);
    if (this.events.length > this.capacity) this.events.shift();
    if (this.listeners.size === 0) return;
    const e = logged(x);
    for (const l of this.listeners) l(e);
  }
}

function logged(x: Entry): LoggedEvent {
  const e = x.access ? l7Event(x.event as AccessRecord) : (x.event as MonitorEvent);
  return { ...e, seq: x.seq, time: new Date(x.ms).toISOString() };
}
