import assert from 'assert';
import { mkdtempSync, rmSync } from 'fs';
import { Server } from 'http';
import { tmpdir } from 'os';
import { join } from 'path';
import winston from 'winston';
import { IpamDriver } from '../../plugin/ipam-driver';
import { NetworkDriver } from '../../plugin/network-driver';
import { pluginApp } from '../../plugin/server';
import { httpUnix } from '../harness/agent';

/**
 * The plugin socket's framing, against drivers that record what reaches
 * them: what the engine sees for each kind of call, without root or kernel.
 */
describe('plugin server: what the engine gets back', () => {
  let dir: string;
  let server: Server;
  let socket: string;
  const calls: string[] = [];
  const net = {
    getCapabilities: () => ({ Scope: 'local', ConnectivityScope: 'local' }),
    deleteEndpoint: (b: unknown) => {
      calls.push(`DeleteEndpoint ${JSON.stringify(b)}`);
      return {};
    },
    join: () => {
      throw new Error('network x is not known to this cilium agent');
    },
  } as unknown as NetworkDriver;
  const ipam = {} as unknown as IpamDriver;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'plugin-'));
    socket = join(dir, 'p.sock');
    server = pluginApp(net, ipam, winston.createLogger({ silent: true })).listen(socket);
    await new Promise((r) => server.once('listening', r));
  });
  after(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const call = (method: string, body: string) => httpUnix(socket, 'POST', `/${method}`, body);

  it('a handler error is a 500 with {"Err"} naming the call; a handler answer is a 200 with its JSON', async () => {
    assert.deepStrictEqual(await call('NetworkDriver.Join', '{"NetworkID":"x"}'), {
      status: 500,
      body: { Err: 'network x is not known to this cilium agent' },
    });
    const ok = await call('NetworkDriver.DeleteEndpoint', '{"NetworkID":"n","EndpointID":"e"}');
    assert.deepStrictEqual(ok, { status: 200, body: {} });
    assert.deepStrictEqual(calls, ['DeleteEndpoint {"NetworkID":"n","EndpointID":"e"}']);
  });

  it('a body-less retry: a teardown is answered without reaching the driver, a set-up is refused by name', async () => {
    calls.length = 0;
    assert.deepStrictEqual(await call('NetworkDriver.DeleteEndpoint', ''), { status: 200, body: {} });
    assert.deepStrictEqual(calls, [], 'the driver never saw the empty call');
    const join = await call('NetworkDriver.Join', '');
    assert.strictEqual(join.status, 500);
    assert.match((join.body as { Err: string }).Err, /^NetworkDriver\.Join arrived without a body: .* start it again$/);
    // Calls that carry nothing are answered as usual.
    assert.deepStrictEqual(await call('NetworkDriver.GetCapabilities', ''), { status: 200, body: { Scope: 'local', ConnectivityScope: 'local' } });
  });

  it('malformed JSON, an unknown call: 400 and 404, each with its message', async () => {
    assert.deepStrictEqual(await call('NetworkDriver.DeleteEndpoint', '{"Net'), { status: 400, body: { Err: 'malformed JSON in request body' } });
    assert.deepStrictEqual(await call('NetworkDriver.Nope', '{}'), { status: 404, body: { Err: 'unknown plugin call POST /NetworkDriver.Nope' } });
  });
});
