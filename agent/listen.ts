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
    server.listen(path, () => resolve());
  });
  if (group) {
    await fs.chown(path, 0, group.gid);
    await fs.chmod(path, 0o660);
  } else {
    await fs.chmod(path, 0o600);
  }
  return server;
}

function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = createConnection(path);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

export async function closeServer(server: Server, path: string): Promise<void> {
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
  await fs.rm(path, { force: true });
}
