import { Readable } from 'stream';

/**
 * Newline-delimited JSON off a stream (the proxy's control socket, the
 * API's monitor stream): each complete line parsed and handed on; a line
 * that does not parse goes to onBad, and nothing after it is read.
 */
export function readJsonLines(stream: Readable, onMessage: (m: unknown) => void, onBad: (line: string) => void): void {
  let pending = '';
  let broken = false;
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    if (broken) return;
    pending += chunk;
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      let m: unknown;
      try {
        m = JSON.parse(line);
      } catch {
        broken = true;
        onBad(line);
        return;
      }
      onMessage(m);
    }
  });
}
