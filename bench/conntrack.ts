import { ChildProcess, spawn } from 'child_process';
import { closeSync } from 'fs';
import { resolve } from 'path';
import { bpf, check } from '../datapath/bpf/libbpf';
import { BpfMap } from '../datapath/bpf/map';
import { CT_VALUE, CtMap, MAP_LAYOUTS, monotonicSeconds } from '../datapath/bpf/maps';
import { must } from '../test/harness/exec';
import { Pair } from './datapath';
import { summarize } from './stats';

export const NETTOOL = '/tmp/cilium-bench-nettool';
const LRU_HASH = 9;
const CT_KEY = MAP_LAYOUTS.cilium_ct.key;
const KEY = CT_KEY.size;
const VALUE = CT_VALUE.size;
const EXPIRES = CT_VALUE.offset('expires');

export async function buildNettool(): Promise<void> {
  await must('clang', ['-O2', '-static', '-o', NETTOOL, resolve(__dirname, '../../test/tools/nettool.c')]);
}

/** n entries in a table of the datapath's layout: every other one expired. */
function fill(map: BpfMap, n: number, now: number): void {
  const saddr = Buffer.alloc(16);
  for (let i = 0; i < n; i++) {
    saddr.writeUInt32LE(i, 0);
    map.update(CT_KEY.encode({ flow: { saddr }, owner: 7 }), CT_VALUE.encode({ expires: i % 2 ? now + 3600 : now - 1 }));
  }
}

/**
 * The conntrack GC on a table of `entries` (half of them expired), in a map
 * of its own with the datapath's layout: the agent's pass (batched reads and
 * deletes) against a walk of one get-next-key, lookup and delete per entry.
 */
export async function gcRate(entries: number, rounds: number): Promise<{ batched: number[]; perEntry: number[] }> {
  const fd = check(bpf.mapCreate(LRU_HASH, 'bench_ct', KEY, VALUE, 262144, null), 'create a conntrack table');
  const map = new BpfMap('bench_ct', fd, KEY, VALUE);
  const ct = new CtMap(map);
  const out = { batched: [] as number[], perEntry: [] as number[] };
  try {
    for (let r = 0; r < rounds; r++) {
      const now = monotonicSeconds();
      fill(map, entries, now);
      let t0 = process.hrtime.bigint();
      const res = await ct.collect(now);
      out.batched.push(res.scanned / (Number(process.hrtime.bigint() - t0) / 1e9));
      ct.flush();
      fill(map, entries, now);
      t0 = process.hrtime.bigint();
      let scanned = 0;
      for (const key of map.keys()) {
        scanned++;
        const v = map.lookup(key);
        if (v && v.readUInt32LE(EXPIRES) < now) map.delete(key);
      }
      out.perEntry.push(scanned / (Number(process.hrtime.bigint() - t0) / 1e9));
      ct.flush();
    }
  } finally {
    closeSync(fd);
  }
  return out;
}

const hrMs = () => Number(process.hrtime.bigint()) / 1e6;

function inNs(ns: string, args: string[]): ChildProcess {
  return spawn('nsenter', [`--net=${ns}`, NETTOOL, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
}

/**
 * Revocation: a stream of one byte a millisecond from server to client is
 * allowed, then a rule without its port is imported. Measured: when the
 * client received its last byte, after the import was sent and after it
 * returned (CLOCK_MONOTONIC on both sides). Negative: the stream had stopped
 * before the API answered (the maps change before it does).
 */
export async function revocationLatency(
  pair: Pair,
  trials: number,
  setPolicy: (withPort: boolean) => Promise<void>,
): Promise<{ afterSent: number[]; afterReturn: number[] }> {
  const out = { afterSent: [] as number[], afterReturn: [] as number[] };
  for (let t = 0; t < trials; t++) {
    await setPolicy(true);
    const port = '7100'; // the port setPolicy(true) opens
    const server = inNs(pair.server, ['tick-server', port, '1000']);
    try {
      await new Promise((r) => setTimeout(r, 200));
      const client = inNs(pair.client, ['tick-client', pair.address, port]);
      let text = '';
      client.stdout!.on('data', (d: Buffer) => (text += d.toString()));
      const done = new Promise((r) => client.once('exit', r));
      await new Promise((r) => setTimeout(r, 500));
      const sent = hrMs();
      await setPolicy(false);
      const returned = hrMs();
      await done;
      const m = /last (\d+) bytes (\d+)/.exec(text);
      if (!m || Number(m[2]) < 100) throw new Error(`revocation trial ${t}: the stream did not flow (${text.trim()})`);
      const last = Number(m[1]) / 1e6;
      out.afterSent.push(last - sent);
      out.afterReturn.push(last - returned);
    } finally {
      server.kill('SIGKILL');
    }
  }
  return out;
}

export function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

export { summarize };
