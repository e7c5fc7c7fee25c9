import type { BpfEndpointEntry, BpfPolicyEntry, CtEntryView, CtFlushed, IpcacheEntry, NatEntryView } from '../../api/types';
import { formatHostPort } from '../../net/address';
import { Command, UsageError } from '../context';
import { proto, table } from '../table';

export const bpfPolicyGet: Command = async (ctx) => {
  const [ep] = ctx.positional();
  if (!ep) throw new UsageError('bpf policy get needs an endpoint ID or container name');
  const entries = await ctx.api<BpfPolicyEntry[]>('GET', `/v1/bpf/policy/${encodeURIComponent(ep)}`);
  ctx.print(entries, () =>
    table(
      ['DIRECTION', 'IDENTITY', 'LABELS (source:key[=value])', 'PORT/PROTO', 'BYTES', 'PACKETS'],
      entries
        .sort((a, b) => a.dir.localeCompare(b.dir) || a.identity - b.identity || a.port - b.port)
        .map((e) => [
          e.dir === 'ingress' ? 'Ingress' : 'Egress',
          String(e.identity),
          e.labels.join(' '),
          e.port === 0 && e.proto === 0 ? 'ANY' : `${e.port || 'ANY'}/${proto(e.proto)}`,
          e.bytes,
          e.packets,
        ]),
    ),
  );
  return 0;
};

export const bpfIpcacheList: Command = async (ctx) => {
  const entries = await ctx.api<IpcacheEntry[]>('GET', '/v1/bpf/ipcache');
  ctx.print(entries, () =>
    table(
      ['IP PREFIX/ADDRESS', 'IDENTITY'],
      entries.map((e) => [e.prefix, `identity=${e.identity}`]),
    ),
  );
  return 0;
};

export const bpfCtList: Command = async (ctx) => {
  const entries = await ctx.api<CtEntryView[]>('GET', '/v1/bpf/ct');
  ctx.print(entries, () =>
    table(
      ['PROTO', 'SOURCE', 'DESTINATION', 'DIRECTION', 'STATE', 'EXPIRES', 'PACKETS', 'BYTES', 'PEER IDENTITY'],
      entries.map((e) => [
        proto(e.proto),
        formatHostPort(e.src, e.sport),
        formatHostPort(e.dst, e.dport),
        e.dir.toUpperCase(),
        e.state,
        `${e.remainingSeconds}s`,
        e.packets,
        e.bytes,
        String(e.peerIdentity),
      ]),
    ),
  );
  return 0;
};

export const bpfNatList: Command = async (ctx) => {
  const entries = await ctx.api<NatEntryView[]>('GET', '/v1/bpf/nat');
  ctx.print(entries, () =>
    table(
      ['PROTO', 'DIRECTION', 'SOURCE', 'DESTINATION', 'TRANSLATED TO', 'STATE', 'EXPIRES'],
      entries
        .sort((a, b) => a.dir.localeCompare(b.dir) || a.src.localeCompare(b.src) || a.sport - b.sport)
        .map((e) => [
          proto(e.proto),
          e.dir.toUpperCase(),
          formatHostPort(e.src, e.sport),
          formatHostPort(e.dst, e.dport),
          formatHostPort(e.to, e.toPort),
          e.closing ? 'CLOSING' : 'ACTIVE',
          `${e.remainingSeconds}s`,
        ]),
    ),
  );
  return 0;
};

export const bpfCtFlush: Command = async (ctx) => {
  const r = await ctx.api<CtFlushed>('DELETE', '/v1/bpf/ct');
  ctx.print(r, () => `Flushed ${r.flushed} entries\n`);
  return 0;
};

export const bpfEndpointList: Command = async (ctx) => {
  const entries = await ctx.api<BpfEndpointEntry[]>('GET', '/v1/bpf/endpoint');
  const flags = (f: number) => [f & 1 ? 'ingress-enforced' : '', f & 2 ? 'egress-enforced' : '', f & 4 ? 'not-ready' : ''].filter(Boolean).join(',') || '-';
  ctx.print(entries, () =>
    table(
      ['IFINDEX', 'ENDPOINT', 'IDENTITY', 'MAC', 'FLAGS'],
      entries.map((e) => [String(e.ifindex), String(e.epId), String(e.identity), e.mac, flags(e.flags)]),
    ),
  );
  return 0;
};

export const ipList: Command = async (ctx) => {
  const entries = await ctx.api<IpcacheEntry[]>('GET', '/v1/bpf/ipcache');
  ctx.print(entries, () =>
    table(
      ['IP', 'IDENTITY', 'LABELS'],
      entries.map((e) => [e.prefix, String(e.identity), e.labels.join(' ')]),
    ),
  );
  return 0;
};
