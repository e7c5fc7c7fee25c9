import { request } from 'http';
import type { EndpointView, EventView } from '../../api/types';
import { readJsonLines } from '../../net/json-lines';
import { Command, UsageError } from '../context';

const TYPES = ['drop', 'trace', 'policy-verdict', 'l7'];

function tcpFlags(f: number): string {
  return [
    [2, 'SYN'],
    [16, 'ACK'],
    [1, 'FIN'],
    [4, 'RST'],
    [8, 'PSH'],
  ]
    .filter(([bit]) => f & (bit as number))
    .map(([, n]) => n)
    .join(', ');
}

const addr = (a: string, p: number, proto: string) => (proto.startsWith('icmp') ? a : a.includes(':') ? `[${a}]:${p}` : `${a}:${p}`);

/** One line as Cilium prints it, then who the two sides are. */
export function formatEvent(e: EventView): string {
  const ep = `endpoint ${e.endpoint}${e.endpointName ? ` (${e.endpointName})` : ''}`;
  const flow = `${addr(e.src, e.sport, e.protocol)} -> ${addr(e.dst, e.dport, e.protocol)} ${e.protocol}${e.protocol === 'tcp' ? ` ${tcpFlags(e.tcpFlags)}` : ''}`;
  const who = (labels: string[], name?: string) => `${labels.join(',') || 'unknown'}${name ? ` (${name})` : ''}`;
  const sides = `    from ${who(e.srcLabels, e.srcName)} to ${who(e.dstLabels, e.dstName)}`;
  if (e.type === 'l7' && e.http) {
    // Cilium's access log line: the request, its verdict and the status the client got
    const url = `http://${e.http.host || e.dst}${e.http.url}`;
    const tail = `identity ${e.srcIdentity}->${e.dstIdentity}, verdict ${e.reasonName} ${e.http.method} ${url} => ${e.http.status}\n`;
    // As Cilium marks an access log's direction: <- the endpoint's ingress, -> its egress
    return e.direction === 'egress'
      ? `-> Request http from ${ep} ([${e.srcLabels.join(',')}]) to ${who(e.dstLabels, e.dstName)}, ${tail}`
      : `<- Request http from ${who(e.srcLabels, e.srcName)} to ${ep} ([${e.dstLabels.join(',')}]), ${tail}`;
  }
  const head =
    e.type === 'drop'
      ? `xx drop (${e.reasonName}) ${e.direction === 'ingress' ? 'to' : 'from'} ${ep}, identity ${e.srcIdentity}->${e.dstIdentity}: ${flow}`
      : e.type === 'policy-verdict'
        ? `Policy verdict log: ${ep}, ${e.direction}, action allow, identity ${e.srcIdentity}->${e.dstIdentity}: ${flow}`
        : `-> ${ep} ${e.direction} new connection, identity ${e.srcIdentity}->${e.dstIdentity}: ${flow}`;
  return `${head}\n${sides}\n`;
}

/** Streams events until interrupted; a lost agent is waited for and the stream resumed. */
export const monitor: Command = async (ctx) => {
  const types = ctx.flag(['-t', '--type']);
  for (const t of types) if (!TYPES.includes(t)) throw new UsageError(`-t ${t}: expected one of ${TYPES.join(', ')}`);
  const relatedTo = ctx.flag(['--related-to'])[0];
  let endpoint: number | undefined;
  if (relatedTo) endpoint = (await ctx.api<EndpointView>('GET', `/v1/endpoint/${encodeURIComponent(relatedTo)}`)).id;
  else await ctx.api('GET', '/v1/healthz'); // a clear error now if the agent is not running
  const query = `types=${encodeURIComponent(types.join(','))}${endpoint === undefined ? '' : `&endpoint=${endpoint}`}`;
  const banner = `Listening for events on ${ctx.socket}${types.length ? ` (${types.join(', ')})` : ''}... Press Ctrl-C to quit\n`;
  for (let first = true; ; first = false) {
    if (!first) {
      process.stderr.write('lost the connection to cilium-agent; reconnecting...\n');
      await new Promise((r) => setTimeout(r, 1000));
    }
    await new Promise<void>((resolve) => {
      const req = request({ socketPath: ctx.socket, path: `/v1/monitor?${query}` }, (res) => {
        readJsonLines(
          res,
          (m) => {
            const e = m as EventView | { type: 'hello' | 'heartbeat' };
            if (e.type === 'hello' && first) process.stderr.write(banner); // the stream is established
            if (e.type === 'heartbeat' || e.type === 'hello') return;
            process.stdout.write(ctx.json ? `${JSON.stringify(e)}\n` : formatEvent(e as EventView));
          },
          () => res.destroy(new Error('the agent sent an event that is not JSON')),
        );
        res.on('end', resolve);
        res.on('error', () => {
          resolve();
        });
      });
      req.on('error', () => {
        resolve();
      });
      req.end();
    });
  }
};
