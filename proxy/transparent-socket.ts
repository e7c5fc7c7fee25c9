import koffi from 'koffi';
import { addressBytes } from '../datapath/rtnl';
import { parseAddress } from '../net/address';

/**
 * The socket options Node has no API for, through koffi: a listener that
 * accepts connections for any address (IP_TRANSPARENT: what bpf_sk_assign
 * hands it keeps its original destination), and an upstream socket that
 * connects from the client's address, marked with its identity.
 * Node adopts both fds (listen({fd}), new Socket({fd})).
 */
const libc = koffi.load('libc.so.6');
const socket = libc.func('socket', 'int', ['int', 'int', 'int']) as (...a: [number, number, number]) => number;
const setsockopt = libc.func('setsockopt', 'int', ['int', 'int', 'int', 'void *', 'uint32_t']) as (...a: [number, number, number, Buffer, number]) => number;
const bind = libc.func('bind', 'int', ['int', 'void *', 'uint32_t']) as (...a: [number, Buffer, number]) => number;
const listen = libc.func('listen', 'int', ['int', 'int']) as (...a: [number, number]) => number;
const close = libc.func('close', 'int', ['int']) as (fd: number) => number;

const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_STREAM = 1;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_REUSEADDR = 2;
const SO_MARK = 36;
const SOL_IP = 0;
const IP_TRANSPARENT = 19;
const SOL_IPV6 = 41;
const IPV6_V6ONLY = 26;
const IPV6_TRANSPARENT = 75;

const int = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32LE(v);
  return b;
};

function errno(): string {
  const code = koffi.errno();
  return Object.entries(koffi.os.errno).find(([, v]) => v === code)?.[0] ?? `errno ${code}`;
}

function sockaddr(address: string, port: number): Buffer {
  const a = parseAddress(address);
  const b = Buffer.alloc(a.family === 4 ? 16 : 28);
  b.writeUInt16LE(a.family === 4 ? AF_INET : AF_INET6, 0);
  b.writeUInt16BE(port, 2);
  addressBytes(a.family, a.value).copy(b, a.family === 4 ? 4 : 8);
  return b;
}

/** Runs the calls on a new socket; on any failure closes it and says which call failed and why. */
function made(family: 4 | 6, what: string, steps: Array<[string, (fd: number) => number]>): number {
  const fd = socket(family === 4 ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw new Error(`${what}: socket: ${errno()}`);
  for (const [name, step] of steps) {
    if (step(fd) < 0) {
      const e = errno();
      close(fd);
      throw new Error(`${what}: ${name}: ${e}`);
    }
  }
  return fd;
}

const transparent = (family: 4 | 6) => (fd: number) =>
  family === 4 ? setsockopt(fd, SOL_IP, IP_TRANSPARENT, int(1), 4) : setsockopt(fd, SOL_IPV6, IPV6_TRANSPARENT, int(1), 4);

/** A listening fd on every address of the family (IPv6 alone on its own), transparent. */
export function transparentListener(family: 4 | 6, port: number): number {
  return made(family, `proxy listener on port ${port} (IPv${family})`, [
    ['IP_TRANSPARENT', transparent(family)],
    ['SO_REUSEADDR', (fd) => setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, int(1), 4)],
    ...(family === 6 ? ([['IPV6_V6ONLY', (fd: number) => setsockopt(fd, SOL_IPV6, IPV6_V6ONLY, int(1), 4)]] as Array<[string, (fd: number) => number]>) : []),
    ['bind', (fd) => bind(fd, sockaddr(family === 4 ? '0.0.0.0' : '::', port), family === 4 ? 16 : 28)],
    ['listen', (fd) => listen(fd, 4096)],
  ]);
}

/** An unconnected fd bound to source (any port) with SO_MARK mark: it connects as the client it stands for. */
export function upstreamSocket(source: string, mark: number): number {
  const family = parseAddress(source).family;
  return made(family, `upstream socket from ${source}`, [
    ['IP_TRANSPARENT', transparent(family)],
    ['SO_MARK', (fd) => setsockopt(fd, SOL_SOCKET, SO_MARK, int(mark), 4)],
    ['bind', (fd) => bind(fd, sockaddr(source, 0), family === 4 ? 16 : 28)],
  ]);
}
