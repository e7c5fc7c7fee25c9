import { promises as fs } from 'fs';
import { createConnection } from 'net';
import { dirname } from 'path';
import { RequestListener, Server, createServer } from 'http';

/**
 * Serves HTTP on a unix socket, root-only unless a group is given (then 0660
 * root:group). A socket file left by a killed agent would make every engine
 * call fail slowly, so it is removed; one that still answers belongs to a
 * live agent and is an error.
 */
export async function listenUnix(path: string, handler: RequestListener, errorField: 'Err' | 'error', group?: { gid: number }): Promise<Server> {
  await fs.mkdir(dirname(path), { recursive: true, mode: 0o700 });
  if (group) await letGroupReach(dirname(path), group.gid);
  if (await answers(path)) throw new Error(`another process is already serving ${path}: stop it first`);
  await fs.rm(path, { force: true });
  const server = createServer(handler);
  server.keepAliveTimeout = 5_000;
  server.requestTimeout = 60_000;
  // Bytes that are not HTTP get an answer in the same JSON shape as every other error.
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (!socket.writable) return socket.destroy();
    const body = JSON.stringify({ [errorField]: `malformed HTTP request (${err.code ?? err.message})` });
    socket.end(`HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      resolve();
    });
  });
  if (group) {
    await fs.chown(path, 0, group.gid);
    await fs.chmod(path, 0o660);
  } else {
    await fs.chmod(path, 0o600);
  }
  return server;
}

/**
 * The group must be able to reach the socket, not only open it: a directory
 * on the way that only root may enter (/run/docker is 0700) is given to the
 * group for search only (g+x, group set when it was root's), others still
 * kept out. Directories that already let the group or everyone through, or
 * belong to another group, are left as they are.
 */
async function letGroupReach(dir: string, gid: number): Promise<void> {
  for (let d = dir; ; d = dirname(d)) {
    const st = await fs.stat(d);
    const reachable = st.mode & 0o001 || (st.mode & 0o010 && st.gid === gid);
    if (!reachable && (st.gid === 0 || st.gid === gid)) {
      if (st.gid !== gid) await fs.chown(d, st.uid, gid);
      await fs.chmod(d, (st.mode & 0o7777) | 0o010);
    }
    if (d === dirname(d)) return;
  }
}

function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = createConnection(path);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => {
      resolve(false);
    });
  });
}

export async function closeServer(server: Server, path: string): Promise<void> {
  await new Promise<void>((resolve) => {
    server.close(() => {
      resolve();
    });
    server.closeAllConnections();
  });
  await fs.rm(path, { force: true });
}
