import express, { NextFunction, Request, Response } from 'express';
import { Logger } from 'winston';
import { IpamDriver } from './ipam-driver';
import { NetworkDriver } from './network-driver';

type Handler = (body: unknown) => unknown;

/**
 * Calls that only tear down or report. The engine's plugin client retries a
 * call whose connection broke (the agent died mid-call) with the body it has
 * already sent, i.e. with none. Refusing such a teardown makes the engine
 * keep a half-deleted endpoint (a stale entry `docker network rm` trips on);
 * answering it lets the engine finish, and reconciliation removes whatever it
 * referred to here (state Docker no longer knows is ours to reap).
 */
/** Calls whose body carries nothing: an empty one is normal. */
const NO_ARGUMENTS = new Set(['Plugin.Activate', 'NetworkDriver.GetCapabilities', 'IpamDriver.GetCapabilities', 'IpamDriver.GetDefaultAddressSpaces']);

const TEARDOWN_ANSWERS: Record<string, object> = {
  'NetworkDriver.DeleteNetwork': {},
  'NetworkDriver.FreeNetwork': {},
  'NetworkDriver.DeleteEndpoint': {},
  'NetworkDriver.Leave': {},
  'NetworkDriver.EndpointOperInfo': { Value: {} },
  'NetworkDriver.ProgramExternalConnectivity': {},
  'NetworkDriver.RevokeExternalConnectivity': {},
  'NetworkDriver.DiscoverNew': {},
  'NetworkDriver.DiscoverDelete': {},
  'IpamDriver.ReleaseAddress': {},
  'IpamDriver.ReleasePool': {},
};

/** The engine waits forever on a plugin call; no call of ours may. */
const CALL_TIMEOUT_MS = 30_000;
const MEDIA_TYPE = 'application/vnd.docker.plugins.v1.2+json';

/** Every route of the libnetwork remote protocol that this plugin answers. */
function routes(net: NetworkDriver, ipam: IpamDriver): Record<string, Handler> {
  return {
    'Plugin.Activate': () => ({ Implements: ['NetworkDriver', 'IpamDriver'] }),
    'NetworkDriver.GetCapabilities': () => net.getCapabilities(),
    'NetworkDriver.CreateNetwork': (b) => net.createNetwork(b),
    'NetworkDriver.DeleteNetwork': (b) => net.deleteNetwork(b),
    'NetworkDriver.AllocateNetwork': (b) => net.ok(b),
    'NetworkDriver.FreeNetwork': (b) => net.ok(b),
    'NetworkDriver.CreateEndpoint': (b) => net.createEndpoint(b),
    'NetworkDriver.DeleteEndpoint': (b) => net.deleteEndpoint(b),
    'NetworkDriver.EndpointOperInfo': (b) => net.endpointOperInfo(b),
    'NetworkDriver.Join': (b) => net.join(b),
    'NetworkDriver.Leave': (b) => net.leave(b),
    'NetworkDriver.DiscoverNew': (b) => net.ok(b),
    'NetworkDriver.DiscoverDelete': (b) => net.ok(b),
    'NetworkDriver.ProgramExternalConnectivity': (b) => net.programExternalConnectivity(b),
    'NetworkDriver.RevokeExternalConnectivity': (b) => net.revokeExternalConnectivity(b),
    'IpamDriver.GetCapabilities': () => ipam.getCapabilities(),
    'IpamDriver.GetDefaultAddressSpaces': () => ipam.getDefaultAddressSpaces(),
    'IpamDriver.RequestPool': (b) => ipam.requestPool(b),
    'IpamDriver.ReleasePool': (b) => ipam.releasePool(b),
    'IpamDriver.RequestAddress': (b) => ipam.requestAddress(b),
    'IpamDriver.ReleaseAddress': (b) => ipam.releaseAddress(b),
  };
}

export interface CallObserver {
  (method: string, seconds: number, ok: boolean): void;
}

export function pluginApp(net: NetworkDriver, ipam: IpamDriver, log: Logger, observe?: CallObserver): express.Express {
  const app = express();
  app.disable('x-powered-by');
  // The engine sends no Content-Type: parse every body as JSON.
  app.use(express.json({ type: () => true, limit: '256kb' }));
  for (const [method, handler] of Object.entries(routes(net, ipam))) {
    app.post(`/${method}`, async (req: Request, res: Response) => {
      const start = process.hrtime.bigint();
      const seconds = () => Number(process.hrtime.bigint() - start) / 1e9;
      if (bodyless(req) && !NO_ARGUMENTS.has(method)) {
        const teardown = TEARDOWN_ANSWERS[method];
        observe?.(method, seconds(), teardown !== undefined);
        if (teardown) {
          log.warn(
            `${method} arrived without a body (the engine retrying a call the agent died in): answered so the engine finishes; reconciliation removes what it referred to`,
          );
          res.status(200).type(MEDIA_TYPE).send(JSON.stringify(teardown));
        } else {
          const message = `${method} arrived without a body: the engine resends a call the agent died in without its request; this container start fails, start it again`;
          log.warn(message);
          res
            .status(500)
            .type(MEDIA_TYPE)
            .send(JSON.stringify({ Err: message }));
        }
        return;
      }
      const body: unknown = req.body;
      try {
        const answer: unknown = await withTimeout(Promise.resolve(handler(body)), CALL_TIMEOUT_MS, method);
        log.debug(`${method} ok`, { request: body, answer });
        observe?.(method, seconds(), true);
        res.status(200).type(MEDIA_TYPE).send(JSON.stringify(answer));
      } catch (err) {
        const message = (err as Error).message;
        log.warn(`${method} failed: ${message}`, { request: body });
        observe?.(method, seconds(), false);
        res
          .status(500)
          .type(MEDIA_TYPE)
          .send(JSON.stringify({ Err: message }));
      }
    });
  }
  app.use((req: Request, res: Response) => {
    res
      .status(404)
      .type(MEDIA_TYPE)
      .send(JSON.stringify({ Err: `unknown plugin call ${req.method} ${req.path}` }));
  });
  app.use((err: Error & { status?: number; type?: string }, _req: Request, res: Response, _next: NextFunction) => {
    const status = err.status && err.status >= 400 && err.status < 500 ? err.status : 500;
    const what = err.type === 'entity.parse.failed' ? 'malformed JSON in request body' : err.message;
    res
      .status(status)
      .type(MEDIA_TYPE)
      .send(JSON.stringify({ Err: what }));
  });
  return app;
}

/** No body at all (not even `{}`): what the engine's retry of a broken call sends. */
function bodyless(req: Request): boolean {
  return req.headers['content-length'] === '0' || (req.headers['content-length'] === undefined && req.headers['transfer-encoding'] === undefined);
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new Error(`${what} did not finish within ${ms / 1000}s`));
    }, ms);
  });
  return Promise.race([p, timeout]).finally(() => {
    clearTimeout(timer);
  });
}
