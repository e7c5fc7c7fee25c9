import { Family, formatAddress } from '../../net/address';
import { protocolName } from '../../net/protocol';
import { EVENT, REASON_NAMES, directionOf } from './constants';
import { struct } from './layout';
import { bpf, checkPtr, koffi, Pointer, SampleFn } from './libbpf';
import { FLOW, fromAddr16 } from './maps';

/**
 * A ring buffer record, as bpf/lib/events.h writes it. Ring records carry no
 * BTF to check it against: the end-to-end monitor tests decode real events.
 */
export const EVENT_LAYOUT = struct('struct event', [
  ['type', 'u8'],
  ['reason', 'u8'],
  ['dir', 'u8'],
  ['pad', 'u8'],
  ['ep_id', 'u32'],
  ['src_identity', 'u32'],
  ['dst_identity', 'u32'],
  ['len', 'u32'],
  ['ifindex', 'u32'],
  ['flow', FLOW],
]);

export type EventType = 'drop' | 'policy-verdict' | 'trace';
const TYPES: Record<number, EventType> = { [EVENT.drop]: 'drop', [EVENT.policyVerdict]: 'policy-verdict', [EVENT.trace]: 'trace' };

export interface DatapathEvent {
  type: EventType;
  reason: number;
  reasonName: string;
  direction: 'ingress' | 'egress';
  endpoint: number;
  srcIdentity: number;
  dstIdentity: number;
  family: Family;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  protocol: string;
  tcpFlags: number;
  length: number;
  ifindex: number;
}

export function decodeEvent(b: Buffer): DatapathEvent {
  const e = EVENT_LAYOUT.decode(b);
  const src = fromAddr16(e.flow.saddr);
  const dst = fromAddr16(e.flow.daddr);
  return {
    type: TYPES[e.type] ?? 'trace',
    reason: e.reason,
    reasonName: REASON_NAMES[e.reason] ?? `reason ${e.reason}`,
    direction: directionOf(e.dir),
    endpoint: e.ep_id,
    srcIdentity: e.src_identity,
    dstIdentity: e.dst_identity,
    length: e.len,
    ifindex: e.ifindex,
    family: e.flow.family === 6 ? 6 : 4,
    src: formatAddress(src.family, src.value),
    dst: formatAddress(dst.family, dst.value),
    sport: e.flow.sport,
    dport: e.flow.dport,
    protocol: protocolName(e.flow.proto).toLowerCase(),
    tcpFlags: e.flow.tcp_flags,
  };
}

/** Drains the events ring buffer on a timer (no thread blocks in poll). */
export class EventReader {
  private readonly ring: Pointer;
  private readonly callback: bigint;
  private readonly timer: NodeJS.Timeout;

  constructor(eventsFd: number, onEvent: (e: DatapathEvent) => void, everyMs = 50) {
    this.callback = koffi.register((_ctx: unknown, data: unknown, size: number | bigint) => {
      // An exception must not unwind through libbpf's C frames: a bad event is skipped.
      try {
        onEvent(decodeEvent(Buffer.from(koffi.decode(data, koffi.array('uint8_t', Number(size))) as number[])));
      } catch {
        /* a verdict's report is lost; the verdict stood */
      }
      return 0;
    }, koffi.pointer(SampleFn));
    this.ring = checkPtr(bpf.ringNew(eventsFd, this.callback, null, null), 'open events ring buffer');
    this.timer = setInterval(() => bpf.ringConsume(this.ring), everyMs);
    this.timer.unref();
  }

  close(): void {
    clearInterval(this.timer);
    bpf.ringFree(this.ring);
    koffi.unregister(this.callback);
  }
}
