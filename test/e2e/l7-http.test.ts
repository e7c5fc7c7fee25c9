import assert from 'assert';
import { ChildProcess, spawn } from 'child_process';
import { readFileSync, writeFileSync } from 'fs';
import { join } from 'path';
import { run, waitFor } from '../harness/exec';
import { Env, WGET } from './env';

const CLI = join(__dirname, '../../../bin/cilium');
const METRICS = '127.0.0.1:19971';
const PROXY_PORT = 10091;

interface Ev {
  type: string;
  reasonName: string;
  srcLabels: string[];
  dport: number;
  seq: number;
}

/** Cilium's getting-started L7 rule: app2 may GET /public on app1, nothing else; with a token, /private too. */
const L7_RULE = [
  {
    labels: [{ key: 'name', value: 'l7-rule' }],
    endpointSelector: { matchLabels: { id: 'app1' } },
    ingress: [
      {
        fromEndpoints: [{ matchLabels: { id: 'app2' } }],
        toPorts: [
          {
            ports: [{ port: '80', protocol: 'TCP' }],
            rules: {
              http: [
                { method: 'GET', path: '/public' },
                { method: 'GET', path: '/private', headers: ['X-Token: 42'] },
                { method: 'GET', path: '/private', host: 'admin\\.app1' },
              ],
            },
          },
        ],
      },
    ],
  },
];

/** app2 may open WebSockets on /ws, fetch /h2/public over h2c and call demo.Echo/Say; nothing else on those ports. */
const STREAM_RULE = [
  {
    labels: [{ key: 'name', value: 'l7-streams' }],
    endpointSelector: { matchLabels: { id: 'app1' } },
    ingress: [
      {
        fromEndpoints: [{ matchLabels: { id: 'app2' } }],
        toPorts: [
          {
            ports: [{ port: '8080', protocol: 'TCP' }],
            rules: {
              http: [
                { method: 'GET', path: '/ws' },
                { method: 'POST', path: '/upload' },
              ],
            },
          },
          { ports: [{ port: '8081', protocol: 'TCP' }], rules: { http: [{ method: 'GET', path: '/h2/public' }] } },
          { ports: [{ port: '50051', protocol: 'TCP' }], rules: { http: [{ method: 'POST', path: '/demo.Echo/Say' }] } },
        ],
      },
    ],
  },
];
const PEERS = join(__dirname, '../harness/l7-peers.js');
/** busybox httpd serving /public and /private, logging each client's address. */
const WEB = ['sh', '-c', 'echo public > /www/public && echo private > /www/private && exec httpd -f -vv -p 80 -h /www'];

/** Egress L7: app3 may only GET /public from app4 (which has no policy); app2 only GET /public from app1 (whose ingress rules apply as well). */
const EGRESS_RULE = [
  {
    labels: [{ key: 'name', value: 'l7-egress' }],
    endpointSelector: { matchLabels: { id: 'app3' } },
    egress: [
      {
        toEndpoints: [{ matchLabels: { id: 'app4' } }],
        toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }], rules: { http: [{ method: 'GET', path: '/public' }] } }],
      },
    ],
  },
  {
    labels: [{ key: 'name', value: 'l7-egress' }],
    endpointSelector: { matchLabels: { id: 'app2' } },
    egress: [
      {
        toEndpoints: [{ matchLabels: { id: 'app1' } }],
        toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }], rules: { http: [{ method: 'GET', path: '/public' }] } }],
      },
    ],
  },
];

describe('L7 HTTP policy through the transparent proxy (real dockerd, BPF redirect, proxy process)', function () {
  this.timeout(600_000);
  const env = new Env([`--prometheus-serve-addr=${METRICS}`, `--proxy-port=${PROXY_PORT}`]);
  const cli = (...args: string[]) => run(CLI, ['--api-socket', env.agent.apiSocket, ...args], { timeoutMs: 30_000 });
  /**
   * The HTTP status lines and bodies a container gets, as raw as nc shows
   * them. Its input stays open until the server closes (the last request
   * says "Connection: close"): nc would half-close it at the end of input.
   */
  const http = async (from: string, host: string, requests: string) => (await env.exec(from, `(printf '${requests}'; sleep 3) | nc -w 5 ${host} 80`)).stdout;
  const get = (path: string, extra = '') => `GET ${path} HTTP/1.1\\r\\nHost: app1\\r\\n${extra}\\r\\n`;
  const statuses = (raw: string) => [...raw.matchAll(/^HTTP\/1\.1 (\d{3})/gm)].map((m) => Number(m[1]));
  const lastSeq = async () => Math.max(0, ...(await env.agent.api<Ev[]>('/v1/events')).map((e) => e.seq));
  const proxyPid = () => readFileSync(join(env.agent.stateDir, 'proxy.pid'), 'utf8').trim();
  /** cilium policy import, as a user runs it, of rules written to a file. */
  const importRules = async (name: string, rules: unknown) => {
    const f = join(env.agent.dir, `${name}.json`);
    writeFileSync(f, JSON.stringify(rules));
    const r = await cli('policy', 'import', f);
    assert.strictEqual(r.code, 0, r.stderr);
  };

  let app1 = '';
  before(async () => {
    await env.up();
    await env.createNetwork('lnet', ['--ipv6']);
    await env.runDetached('app1', 'lnet', WEB, ['-l', 'id=app1']);
    await env.runDetached('app2', 'lnet', undefined, ['-l', 'id=app2']);
    await env.runDetached('app3', 'lnet', undefined, ['-l', 'id=app3']);
    app1 = await env.address('app1', 'lnet');
    await importRules('l7', L7_RULE);
  });
  after(async () => {
    await env.down();
  });

  it('GET /public is answered by app1; GET /private and POST /public get 403 "Access denied"', async () => {
    const pub = await http('app2', app1, get('/public', 'Connection: close\\r\\n'));
    assert.deepStrictEqual(statuses(pub), [200], pub);
    assert.match(pub, /\r\n\r\npublic\n$/);
    const priv = await http('app2', app1, get('/private', 'Connection: close\\r\\n'));
    assert.deepStrictEqual(statuses(priv), [403], priv);
    assert.match(priv, /\r\n\r\nAccess denied\n$/);
    const post = await http('app2', app1, 'POST /public HTTP/1.1\\r\\nHost: app1\\r\\nContent-Length: 2\\r\\nConnection: close\\r\\n\\r\\nhi');
    assert.deepStrictEqual(statuses(post), [403], post);
  });

  it('one keep-alive connection: each request is judged on its own (allowed, denied, allowed)', async () => {
    const raw = await http('app2', app1, get('/public') + get('/private') + get('/public', 'Connection: close\\r\\n'));
    assert.deepStrictEqual(statuses(raw), [200, 403, 200], raw);
  });

  it('cilium monitor -t l7 shows each request with both identities, the verdict and the status', async () => {
    const since = await lastSeq();
    const watching = run('timeout', ['8', CLI, '--api-socket', env.agent.apiSocket, 'monitor', '-t', 'l7'], { timeoutMs: 20_000 });
    await new Promise((r) => setTimeout(r, 1500));
    await http('app2', app1, get('/private') + get('/public', 'Connection: close\\r\\n'));
    const out = (await watching).stdout;
    assert.match(
      out,
      /<- Request http from container:id=app2 \(app2\) to endpoint \d+ \(app1\) \(\[container:id=app1\]\), identity \d+->\d+, verdict Denied GET http:\/\/app1\/private => 403/,
      out,
    );
    assert.match(out, /verdict Forwarded GET http:\/\/app1\/public => 200/, out);
    const l7 = await env.agent.api<Array<Ev & { http: { status: number; url: string } }>>(`/v1/events?type=l7&since=${since}`);
    assert.deepStrictEqual(
      l7.map((e) => `${e.reasonName} ${e.http.url} ${e.http.status}`),
      ['Denied /private 403', 'Forwarded /public 200'],
    );
  });

  it('a header rule: /private with X-Token: 42 is allowed, with another value denied', async () => {
    assert.deepStrictEqual(statuses(await http('app2', app1, get('/private', 'X-Token: 42\\r\\nConnection: close\\r\\n'))), [200]);
    assert.deepStrictEqual(statuses(await http('app2', app1, get('/private', 'X-Token: 7\\r\\nConnection: close\\r\\n'))), [403]);
  });

  it('a host rule: /private for Host admin.app1 is allowed, for another host denied', async () => {
    const as = (host: string) => `GET /private HTTP/1.1\\r\\nHost: ${host}\\r\\nConnection: close\\r\\n\\r\\n`;
    assert.deepStrictEqual(statuses(await http('app2', app1, as('admin.app1'))), [200]);
    assert.deepStrictEqual(statuses(await http('app2', app1, as('admin.app1.evil'))), [403]);
  });

  it('over IPv6 as over IPv4', async () => {
    const v6 = await env.address('app1', 'lnet', 6);
    assert.ok(v6, 'app1 has an IPv6 address');
    assert.deepStrictEqual(statuses(await http('app2', v6, get('/public', 'Connection: close\\r\\n'))), [200]);
    assert.deepStrictEqual(statuses(await http('app2', v6, get('/private', 'Connection: close\\r\\n'))), [403]);
  });

  it("app1 sees app2's own address, not the host's or the proxy's", async () => {
    const app2 = await env.address('app2', 'lnet');
    const logs = await env.ok(['logs', 'app1']).catch(() => '');
    const all = `${logs}${(await env.docker(['logs', 'app1'])).stderr}`;
    assert.ok(all.includes(app2), `app1's log names no request from ${app2}:\n${all.slice(-2000)}`);
  });

  it('cilium endpoint list shows the L7 ports', async () => {
    const list = (await cli('endpoint', 'list')).stdout;
    const row = list.split('\n').find((l) => l.includes('container:id=app1'));
    assert.match(row ?? '', /Enabled \(L7 80\/TCP\)/, list);
  });

  it('cilium policy trace judges a request as the proxy would', async () => {
    const t = async (...http: string[]) => cli('policy', 'trace', '-s', 'app2', '-d', 'app1', '--dport', '80', ...http);
    const denied = await t('--http-method', 'GET', '--http-path', '/private');
    assert.match(denied.stdout, /GET \/private matches none of them: DENIED \(403 Access denied\)[\s\S]*Final verdict: DENIED/, denied.stdout);
    const allowed = await t('--http-method', 'GET', '--http-path', '/private', '--http-header', 'X-Token: 42');
    assert.match(allowed.stdout, /Final verdict: ALLOWED/, allowed.stdout);
    const bad = await t('--http-method', 'GET');
    assert.notStrictEqual(bad.code, 0);
    assert.match(bad.stderr, /needs both --http-method and --http-path/);
  });

  it('an identity the L4 rule does not allow is dropped in BPF, before any proxy', async () => {
    const since = await lastSeq();
    assert.notStrictEqual((await env.exec('app3', `${WGET} http://app1/public`)).code, 0);
    const drops = await env.agent.api<Ev[]>(`/v1/events?type=drop&since=${since}`);
    assert.ok(
      drops.some((e) => e.reasonName === 'Policy denied' && e.dport === 80 && e.srcLabels.includes('container:id=app3')),
      JSON.stringify(drops),
    );
  });

  it('metrics count the requests by verdict', async () => {
    const m = (await run('curl', ['-sf', `http://${METRICS}/metrics`])).stdout;
    const count = (rule: string) => Number(new RegExp(`^cilium_policy_l7_total\\{rule="${rule}"\\} (\\d+)`, 'm').exec(m)?.[1] ?? 0);
    assert.ok(
      count('denied') >= 5,
      m
        .split('\n')
        .filter((l) => l.includes('l7'))
        .join('\n'),
    );
    assert.ok(count('forwarded') >= 5);
    assert.strictEqual(count('received'), count('denied') + count('forwarded') + count('error'));
  });

  it('the agent restarted during a stream of requests: none fails, and the restarted agent adopts the proxy that went on judging', async () => {
    const pid = proxyPid();
    const n = 60;
    const stream = env.docker(
      ['exec', 'app2', 'sh', '-c', `i=0; while [ $i -lt ${n} ]; do ${WGET} http://app1/public || echo FAIL; i=$((i+1)); sleep 0.1; done`],
      60_000,
    );
    await new Promise((r) => setTimeout(r, 1000));
    await env.agent.stop();
    await new Promise((r) => setTimeout(r, 1000));
    await env.agent.start();
    const out = (await stream).stdout;
    assert.strictEqual((out.match(/^public$/gm) ?? []).length, n, out);
    assert.strictEqual(proxyPid(), pid, 'the same proxy process, adopted');
    assert.deepStrictEqual(statuses(await http('app2', app1, get('/private', 'Connection: close\\r\\n'))), [403], 'still judged');
  });

  it('the proxy killed: connections to the L7 port are dropped with the reason, never passed unchecked; restarted: served again', async () => {
    const pid = proxyPid();
    assert.ok(/^\d+$/.test(pid), `the agent's proxy process: "${pid}"`);
    const since = await lastSeq();
    await run('kill', ['-9', pid]);
    // Dead once a zombie: the proxy outlives agents, so init, not the agent, reaps it, in its own time.
    const dead = () => {
      try {
        return /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
      } catch {
        return true;
      }
    };
    await waitFor('the proxy to be gone', dead, 5000, 20);
    await env.exec('app2', `${WGET} -T 1 http://app1/private`);
    const drops = await env.agent.api<Ev[]>(`/v1/events?type=drop&since=${since}`);
    assert.ok(
      drops.some((e) => /Proxy redirection failed/.test(e.reasonName) && e.dport === 80),
      `no proxy drop: ${JSON.stringify(drops.map((e) => e.reasonName))}`,
    );
    await waitFor(
      'the restarted proxy to answer',
      async () => statuses(await http('app2', app1, get('/public', 'Connection: close\\r\\n')))[0] === 200,
      30_000,
      500,
    );
    assert.deepStrictEqual(statuses(await http('app2', app1, get('/private', 'Connection: close\\r\\n'))), [403], 'still judged');
  });

  describe("HTTP/2, gRPC and WebSocket (real peers in the containers' network namespaces)", () => {
    let server: ChildProcess | undefined;
    let served = '';
    const pidOf = (c: string) => env.ok(['inspect', '-f', '{{.State.Pid}}', c]);
    /** A peer client run in app2's network namespace: the JSON line it printed. */
    const client = async (...args: string[]) => {
      const r = await run('nsenter', ['-t', await pidOf('app2'), '-n', process.execPath, PEERS, ...args], { timeoutMs: 30_000 });
      try {
        return JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as Record<string, unknown>;
      } catch {
        throw new Error(`l7-peers ${args.join(' ')} printed no result (exit ${r.code}): ${r.stdout}${r.stderr}`);
      }
    };

    before(async () => {
      await importRules('l7-streams', STREAM_RULE);
      server = spawn('nsenter', ['-t', await pidOf('app1'), '-n', process.execPath, PEERS, 'serve'], { stdio: ['ignore', 'pipe', 'inherit'] });
      server.stdout!.on('data', (d: Buffer) => (served += String(d)));
      await waitFor('the peers in app1 to listen', () => served.includes('ready\n'), 20_000);
    });
    after(() => {
      server?.kill();
    });

    it('an allowed WebSocket upgrade is passed through and echoes; a denied one gets 403', async () => {
      assert.deepStrictEqual(await client('ws', `ws://${app1}:8080/ws`, 'hello'), { echo: 'echo hello' });
      assert.deepStrictEqual(await client('ws', `ws://${app1}:8080/other`, 'hello'), { status: 403 });
      assert.ok(!/^ws \S+ \/other$/m.test(served), 'the denied upgrade never reached app1');
    });

    it('a chunked request body is streamed through to app1 whole', async () => {
      assert.deepStrictEqual(await client('post', `http://${app1}:8080/upload`, '64'), { status: 200, body: 'h1 /upload 65536 bytes\n' });
      assert.deepStrictEqual(await client('post', `http://${app1}:8080/elsewhere`, '1'), { status: 403, body: 'Access denied\n' });
    });

    it('HTTP/2 cleartext: each stream judged on its own, a denied one answered 403 "Access denied"', async () => {
      assert.deepStrictEqual(await client('h2', `http://${app1}:8081`, '/h2/public'), { status: 200, body: 'h2 /h2/public\n' });
      assert.deepStrictEqual(await client('h2', `http://${app1}:8081`, '/h2/private'), { status: 403, body: 'Access denied\n' });
    });

    it('gRPC: the allowed method is answered by app1, the denied one fails with PERMISSION_DENIED', async () => {
      assert.deepStrictEqual(await client('grpc', `${app1}:50051`, 'Say'), { reply: 'Say: hi' });
      assert.deepStrictEqual(await client('grpc', `${app1}:50051`, 'Secret'), { code: 7, codeName: 'PERMISSION_DENIED', details: 'Access denied' });
      assert.ok(!served.includes('/demo.Echo/Secret'), 'the denied call never reached app1');
    });

    it("app1's peers see app2's own address on every protocol", async () => {
      const app2 = await env.address('app2', 'lnet');
      for (const proto of ['ws', 'h2', 'grpc']) {
        const line = served.split('\n').find((l) => l.startsWith(`${proto} `));
        assert.ok(line?.includes(app2), `${proto}: ${line ?? 'no request logged'} (app2 is ${app2})`);
      }
    });

    it('cilium monitor -t l7 names the protocol of each request', async () => {
      const l7 = await env.agent.api<Array<Ev & { http: { protocol: string; url: string; status: number } }>>('/v1/events?type=l7');
      const seen = (url: string) => l7.filter((e) => e.http.url === url).map((e) => `${e.http.protocol} ${e.reasonName} ${e.http.status}`);
      assert.deepStrictEqual(seen('/h2/private'), ['HTTP/2 Denied 403']);
      assert.deepStrictEqual(seen('/demo.Echo/Say'), ['HTTP/2 Forwarded 200']);
      assert.deepStrictEqual(seen('/ws'), ['HTTP/1.1 Forwarded 101']);
    });
  });

  describe("egress L7 rules: the client's own policy sends its requests through the proxy", () => {
    let app4 = '';
    const to4 = (path: string, extra = '') => `GET ${path} HTTP/1.1\\r\\nHost: app4\\r\\n${extra}\\r\\n`;
    before(async () => {
      await env.runDetached('app4', 'lnet', WEB, ['-l', 'id=app4']);
      app4 = await env.address('app4', 'lnet');
      await importRules('l7-egress', EGRESS_RULE);
    });
    after(async () => {
      await cli('policy', 'delete', 'name=l7-egress');
    });

    it('to a destination without policy: GET /public is answered, GET /private gets 403, each request of a keep-alive connection judged', async () => {
      const raw = await http('app3', app4, to4('/public') + to4('/private') + to4('/public', 'Connection: close\\r\\n'));
      assert.deepStrictEqual(statuses(raw), [200, 403, 200], raw);
      assert.match(raw, /\r\n\r\nAccess denied\n/);
    });

    it("the destination sees the client's own address", async () => {
      const app3 = await env.address('app3', 'lnet');
      const all = (await env.docker(['logs', 'app4'])).stderr;
      assert.ok(all.includes(app3), `app4's log names no request from ${app3}:\n${all.slice(-2000)}`);
    });

    it("both ends with L7 rules: a request must pass the client's egress rules and the server's ingress rules", async () => {
      assert.deepStrictEqual(statuses(await http('app2', app1, get('/public', 'Connection: close\\r\\n'))), [200]);
      // app1's ingress rules alone let this one through (the header rule test above)
      assert.deepStrictEqual(statuses(await http('app2', app1, get('/private', 'X-Token: 42\\r\\nConnection: close\\r\\n'))), [403]);
    });

    it('cilium monitor -t l7 shows the request as the egress of the client, with both identities', async () => {
      const watching = run('timeout', ['8', CLI, '--api-socket', env.agent.apiSocket, 'monitor', '-t', 'l7'], { timeoutMs: 20_000 });
      await new Promise((r) => setTimeout(r, 1500));
      await http('app3', app4, to4('/private', 'Connection: close\\r\\n'));
      const out = (await watching).stdout;
      assert.match(
        out,
        /-> Request http from endpoint \d+ \(app3\) \(\[container:id=app3\]\) to container:id=app4 \(app4\), identity \d+->\d+, verdict Denied GET http:\/\/app4\/private => 403/,
        out,
      );
    });

    it('cilium endpoint list shows the egress L7 ports', async () => {
      const row = (await cli('endpoint', 'list')).stdout.split('\n').find((l) => l.includes('container:id=app3'));
      assert.match(row ?? '', /Disabled\s+Enabled \(L7 80\/TCP\)/, row);
    });

    it('cilium policy trace names the egress rule that denies the request', async () => {
      const t = await cli('policy', 'trace', '-s', 'app3', '-d', 'app4', '--dport', '80', '--http-method', 'GET', '--http-path', '/private');
      assert.match(t.stdout, /Egress from [^\n]*container:id=app3[\s\S]*GET \/private matches none of them: DENIED[\s\S]*Final verdict: DENIED/, t.stdout);
    });

    it('a destination the egress rule does not name is dropped in BPF, before any proxy', async () => {
      const since = await lastSeq();
      assert.notStrictEqual((await env.exec('app3', `${WGET} http://${app1}/public`)).code, 0);
      const drops = await env.agent.api<Ev[]>(`/v1/events?type=drop&since=${since}`);
      assert.ok(
        drops.some((e) => e.reasonName === 'Policy denied' && e.dport === 80 && e.srcLabels.includes('container:id=app3')),
        JSON.stringify(drops),
      );
    });
  });
});
