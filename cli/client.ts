import { request } from 'http';

/** GET/PUT/DELETE against the agent API socket; JSON in, JSON out. */
export function apiCall<T>(socketPath: string, method: string, path: string, body?: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      {
        socketPath,
        method,
        path,
        timeout: 10_000,
        headers: payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {},
      },
      (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (data += c));
        res.on('end', () => {
          let parsed: unknown;
          try {
            parsed = JSON.parse(data);
          } catch {
            reject(new Error(`agent answered ${res.statusCode} with non-JSON: ${data.slice(0, 200)}`));
            return;
          }
          if ((res.statusCode ?? 500) >= 400) reject(new Error((parsed as { error?: string }).error ?? `HTTP ${res.statusCode}`));
          else resolve(parsed as T);
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`cilium-agent at ${socketPath} did not answer within 10s`)));
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED' || err.code === 'EACCES') {
        reject(new Error(`cannot reach cilium-agent at ${socketPath} (${err.code}): is it running? start it with "scripts/up.sh" or "bin/cilium-agent"`));
      } else reject(err);
    });
    if (payload) req.write(payload);
    req.end();
  });
}
