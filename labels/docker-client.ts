import Docker from 'dockerode';

/** dockerode for a --docker-host URL (unix:// or tcp://), with a bound on every call. */
export function dockerClient(url: string): Docker {
  const u = new URL(url);
  if (u.protocol === 'unix:') return new Docker({ socketPath: u.pathname, timeout: 5_000 });
  return new Docker({ host: u.hostname, port: Number(u.port || 2375), protocol: u.protocol === 'https:' ? 'https' : 'http', timeout: 5_000 });
}
