import { Socket as UdpSocket, createSocket } from 'dgram';
import { Server, Socket, connect, createServer } from 'net';
import { Family } from '../net/address';
import { Proto } from './port-mapping';

/** How long a UDP client's relay lives without a datagram either way (docker-proxy's is 90 s). */
const UDP_IDLE_MS = 90_000;

export interface HostPortKey {
  proto: Proto;
  family: Family;
  /** undefined: every host address of the family. */
  hostIp?: string;
  hostPort: number;
}

export interface BackendAddress {
  address: string;
  port: number;
}

/** A held host port: its socket, and the relays it carries. */
interface Holder {
  close(): void;
}

/** The address text Docker's errors use for a frontend. */
export const bindAddress = (k: HostPortKey) => k.hostIp ?? (k.family === 4 ? '0.0.0.0' : '::');

/**
 * Holds published host ports the way the bridge driver does: a socket bound
 * to each, so nothing else on the host takes the port while it is published
 * and a port already in use is a clear error. Clients beyond the host and
 * containers never reach these sockets (the datapath translates their
 * packets first); the host's own clients (127.0.0.1, ::1, its addresses
 * over loopback) do, and are relayed to the backend, as docker-proxy
 * relays them: the backend sees them coming from the host, whose identity
 * its policy judges.
 */
export class HostPortProxy {
  private readonly held = new Map<string, Holder>();

  static key(k: HostPortKey): string {
    return `${k.proto}/${bindAddress(k)}/${k.hostPort}`;
  }

  has(k: HostPortKey): boolean {
    return this.held.has(HostPortProxy.key(k));
  }

  /**
   * Binds k (hostPort 0: a free port the kernel picks) and relays to backend.
   * Resolves with the port bound; rejects with Docker's wording when taken.
   */
  async open(k: HostPortKey, backend: BackendAddress): Promise<number> {
    if (k.hostPort !== 0 && this.has(k)) throw new Error(`Bind for ${bindAddress(k)}:${k.hostPort} failed: port is already allocated`);
    const bound = k.proto === 'tcp' ? await this.openTcp(k, backend) : await this.openUdp(k, backend);
    this.held.set(HostPortProxy.key({ ...k, hostPort: bound.port }), bound.holder);
    return bound.port;
  }

  close(k: HostPortKey): void {
    const key = HostPortProxy.key(k);
    this.held.get(key)?.close();
    this.held.delete(key);
  }

  closeAll(): void {
    for (const h of this.held.values()) h.close();
    this.held.clear();
  }

  private openTcp(k: HostPortKey, backend: BackendAddress): Promise<{ port: number; holder: Holder }> {
    const conns = new Set<Socket>();
    const server: Server = createServer({ noDelay: true }, (client) => {
      const up = connect({ host: backend.address, port: backend.port, noDelay: true });
      conns.add(client).add(up);
      const end = () => {
        client.destroy();
        up.destroy();
        conns.delete(client);
        conns.delete(up);
      };
      client.on('error', end).on('close', end);
      up.on('error', end).on('close', end);
      client.pipe(up);
      up.pipe(client);
    });
    return new Promise((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        reject(bindError(k, 'tcp', err));
      });
      server.listen({ host: bindAddress(k), port: k.hostPort, ipv6Only: k.family === 6, exclusive: true }, () => {
        server.removeAllListeners('error');
        server.on('error', () => undefined);
        resolve({
          port: (server.address() as { port: number }).port,
          holder: {
            close: () => {
              server.close();
              for (const c of conns) c.destroy();
            },
          },
        });
      });
    });
  }

  private openUdp(k: HostPortKey, backend: BackendAddress): Promise<{ port: number; holder: Holder }> {
    const type = k.family === 4 ? 'udp4' : 'udp6';
    const relays = new Map<string, { sock: UdpSocket; timer: NodeJS.Timeout }>();
    const server = createSocket({ type, ipv6Only: k.family === 6 });
    const drop = (key: string) => {
      const r = relays.get(key);
      if (!r) return;
      clearTimeout(r.timer);
      relays.delete(key);
      r.sock.close();
    };
    server.on('message', (msg, from) => {
      const key = `${from.address}/${from.port}`;
      let r = relays.get(key);
      if (!r) {
        const sock = createSocket({ type: backend.address.includes(':') ? 'udp6' : 'udp4' });
        const relay = {
          sock,
          timer: setTimeout(() => {
            drop(key);
          }, UDP_IDLE_MS),
        };
        relays.set(key, relay);
        sock.on('message', (reply) => {
          relay.timer.refresh();
          server.send(reply, from.port, from.address);
        });
        sock.on('error', () => {
          drop(key);
        });
        sock.connect(backend.port, backend.address);
        r = relay;
      }
      r.timer.refresh();
      const { sock } = r;
      const send = () => {
        sock.send(msg, (err) => {
          if (err) drop(key);
        });
      };
      try {
        sock.remoteAddress();
        send();
      } catch {
        sock.once('connect', send); // not connected yet
      }
    });
    return new Promise((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        reject(bindError(k, 'udp', err));
      });
      server.bind({ address: bindAddress(k), port: k.hostPort, exclusive: true }, () => {
        server.removeAllListeners('error');
        server.on('error', () => undefined);
        resolve({
          port: server.address().port,
          holder: {
            close: () => {
              for (const key of [...relays.keys()]) drop(key);
              server.close();
              server.removeAllListeners('message');
            },
          },
        });
      });
    });
  }
}

/** The engine's own words when a port is taken ("port is already allocated"), with the cause otherwise. */
function bindError(k: HostPortKey, proto: Proto, err: NodeJS.ErrnoException): Error {
  const where = `${k.family === 6 ? `[${bindAddress(k)}]` : bindAddress(k)}:${k.hostPort}`;
  if (err.code === 'EADDRINUSE') return new Error(`Bind for ${where} failed: port is already allocated`);
  if (err.code === 'EADDRNOTAVAIL') return new Error(`listen ${proto} ${where}: ${bindAddress(k)} is not an address of this host`);
  return new Error(`listen ${proto} ${where}: ${err.message}`);
}
