import { DatapathEvent } from '../datapath/bpf/events';

export interface LoggedEvent extends DatapathEvent {
  seq: number;
  time: string;
}

/**
 * The last datapath events, numbered, for the API: a reader asks for what
 * came after the last number it saw, so a reconnecting monitor misses nothing
 * that is still held.
 */
export class EventLog {
  private readonly events: LoggedEvent[] = [];
  private seq = 0;
  private readonly listeners = new Set<(e: LoggedEvent) => void>();

  constructor(private readonly capacity = 4096) {}

  push(e: DatapathEvent): void {
    const logged = { ...e, seq: ++this.seq, time: new Date().toISOString() };
    this.events.push(logged);
    if (this.events.length > this.capacity) this.events.shift();
    for (const l of this.listeners) l(logged);
  }

  since(seq: number): LoggedEvent[] {
    return this.events.filter((e) => e.seq > seq);
  }

  subscribe(l: (e: LoggedEvent) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
}
