import { errnoName, koffi } from './bpf/libbpf';

/** The few libc calls Node has no API for, bound through koffi: no process is spawned for them. */
const libc = koffi.load('libc.so.6');
const socket = libc.func('socket', 'int', ['int', 'int', 'int']) as (...a: [number, number, number]) => number;
const getsockopt = libc.func('getsockopt', 'int', ['int', 'int', 'int', 'void *', koffi.inout(koffi.pointer('uint32_t'))]) as (
  ...a: [number, number, number, Buffer, [number]]
) => number;
const close = libc.func('close', 'int', ['int']) as (fd: number) => number;
const mount = libc.func('mount', 'int', ['str', 'str', 'str', 'unsigned long', 'void *']) as (...a: [string, string, string, number, null]) => number;

const AF_INET = 2;
const SOCK_DGRAM = 2;
const SOL_SOCKET = 1;
const SO_NETNS_COOKIE = 71;

const errno = () => errnoName(koffi.errno());

/**
 * The cookie of the network namespace this process runs in (Linux 5.14+),
 * as bpf_get_netns_cookie gives it to the socket programs: how they tell
 * the host's sockets from containers'.
 */
export function ownNetnsCookie(): bigint {
  const fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) throw new Error(`socket: ${errno()}`);
  try {
    const value = Buffer.alloc(8);
    if (getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, value, [8]) < 0) throw new Error(`getsockopt(SO_NETNS_COOKIE): ${errno()} (Linux 5.14 or later is needed)`);
    return value.readBigUInt64LE(0);
  } finally {
    close(fd);
  }
}

export function mountCgroup2(path: string): void {
  if (mount('none', path, 'cgroup2', 0, null) < 0) throw new Error(`mount cgroup2 on ${path}: ${errno()}`);
}
