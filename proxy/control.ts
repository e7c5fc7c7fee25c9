import { Socket } from 'net';
import { readJsonLines } from '../net/json-lines';

/**
 * The agent's channel to its proxy: one JSON message per line over a unix
 * socket in the agent's state dir. Not the IPC channel of a fork, which
 * would end the proxy with the agent: a restarted agent connects to the
 * proxy that went on enforcing while it was away.
 */
export function send(sock: Socket, m: unknown): void {
  if (!sock.destroyed) sock.write(`${JSON.stringify(m)}\n`);
}

/** Calls onMessage with each message that arrives; a line that does not parse ends the channel. */
export function receive(sock: Socket, onMessage: (m: unknown) => void): void {
  readJsonLines(sock, onMessage, () => sock.destroy(new Error('a control message that is not JSON')));
}
