import assert from 'assert';
import { parseCidr } from '../../net/address';
import type { KnownIdentity } from '../../identity/cidr';
import { PolicyResolver, lookup } from '../../policy/resolve';
import { Rule } from '../../policy/rule';
import { validateRules } from '../../policy/validate';

const IDS: KnownIdentity[] = [
  { id: 1, labels: ['reserved:host'] },
  { id: 2, labels: ['reserved:world'] },
  { id: 5, labels: ['reserved:init'] },
  { id: 256, labels: ['container:id=app1'] },
  { id: 257, labels: ['container:env=prod', 'container:id=app2'] },
  { id: 258, labels: ['container:env=dev', 'container:id=app3'] },
  { id: 1 << 24, labels: ['cidr:192.168.0.0/16', 'reserved:world'], cidr: parseCidr('192.168.0.0/16') },
  { id: (1 << 24) + 1, labels: ['cidr:192.168.9.0/24', 'reserved:world'], cidr: parseCidr('192.168.9.0/24') },
];
const app1 = ['container:id=app1'];
const rule = (r: Partial<Rule>): Rule => ({ endpointSelector: { matchLabels: { id: 'app1' } }, ...r });
const allows = (rules: Rule[], mode: 'default' | 'always' | 'never' = 'default') => new PolicyResolver(rules, IDS, mode).forEndpoint(app1);

describe('policy resolution', () => {
  it('an unselected endpoint is not enforced; a selected one only in the directions its rules have', () => {
    assert.deepStrictEqual(allows([]), { ingressEnforced: false, egressEnforced: false, allows: [] });
    const p = allows([rule({ ingress: [] })]);
    assert.strictEqual(p.ingressEnforced, true);
    assert.strictEqual(p.egressEnforced, false);
    assert.deepStrictEqual(p.allows, [], 'an empty ingress section denies all ingress');
  });

  it('enforcement modes: always enforces without rules, never ignores them', () => {
    assert.strictEqual(allows([], 'always').ingressEnforced, true);
    assert.strictEqual(allows([rule({ ingress: [{}] })], 'never').ingressEnforced, false);
  });

  it('fromEndpoints x toPorts, with protocol any case and ANY', () => {
    const p = allows([
      rule({
        ingress: [
          {
            fromEndpoints: [{ matchLabels: { id: 'app2' } }],
            toPorts: [
              {
                ports: [
                  { port: '80', protocol: 'tcp' },
                  { port: '53', protocol: 'ANY' },
                ],
              },
            ],
          },
        ],
      }),
    ]);
    assert.deepStrictEqual(p.allows.map((a) => `${a.identity}/${a.port}/${a.proto}`).sort(), ['257/53/0', '257/80/6']);
  });

  it('matchExpressions and sourced keys select identities', () => {
    const p = allows([rule({ ingress: [{ fromEndpoints: [{ matchExpressions: [{ key: 'container:env', operator: 'In', values: ['prod', 'dev'] }] }] }] })]);
    assert.deepStrictEqual(p.allows.map((a) => a.identity).sort(), [257, 258]);
    const q = allows([rule({ ingress: [{ fromEndpoints: [{ matchExpressions: [{ key: 'env', operator: 'DoesNotExist' }] }] }] })]);
    assert.deepStrictEqual(q.allows.map((a) => a.identity).sort(), [1, 256, 5], 'the host and init have no env label either; the world is never an endpoint');
  });

  it('fromRequires narrows every ingress peer of the endpoint', () => {
    const p = allows([rule({ ingress: [{ fromEndpoints: [{}] }] }), rule({ ingress: [{ fromRequires: [{ matchLabels: { env: 'prod' } }] }] })]);
    assert.deepStrictEqual(
      p.allows.map((a) => a.identity),
      [257],
    );
  });

  it('entities: all is the wildcard, world covers CIDR identities, host is 1', () => {
    assert.deepStrictEqual(
      allows([rule({ egress: [{ toEntities: ['all'] }] })]).allows.map((a) => a.identity),
      [0],
    );
    assert.deepStrictEqual(
      allows([rule({ egress: [{ toEntities: ['world'] }] })])
        .allows.map((a) => a.identity)
        .sort(),
      [16777216, 16777217, 2],
    );
    assert.deepStrictEqual(
      allows([rule({ ingress: [{ fromEntities: ['host'] }] })]).allows.map((a) => a.identity),
      [1],
    );
  });

  it('CIDR sets include more specific prefixes except those inside an except', () => {
    const p = allows([rule({ egress: [{ toCIDRSet: [{ cidr: '192.168.0.0/16', except: ['192.168.9.0/24'] }] }] })]);
    assert.deepStrictEqual(
      p.allows.map((a) => a.identity),
      [1 << 24],
    );
    const q = allows([rule({ egress: [{ toCIDR: ['192.168.0.0/16'] }] })]);
    assert.deepStrictEqual(q.allows.map((a) => a.identity).sort(), [16777216, 16777217]);
  });

  it('a port-only rule allows any peer on that port; lookup follows the datapath order', () => {
    const p = allows([rule({ ingress: [{ toPorts: [{ ports: [{ port: '80' }] }] }, { fromEndpoints: [{ matchLabels: { id: 'app2' } }] }] })]);
    assert.ok(lookup(p.allows, 258, 80, 6, 'ingress'), 'anyone on 80');
    assert.strictEqual(lookup(p.allows, 258, 81, 6, 'ingress'), undefined);
    assert.ok(lookup(p.allows, 257, 81, 6, 'ingress'), 'app2 on any port');
    assert.ok(lookup(p.allows, 257, 0, 1, 'ingress'), 'app2 ICMP via the L3 entry');
    assert.strictEqual(lookup(p.allows, 258, 80, 1, 'ingress'), undefined, 'ICMP never matches a port rule');
  });

  it('toServices: a selector service allows its selected endpoints, a service of given backends their identities, an unknown name nobody', () => {
    const services = [
      { name: 'prod', selector: { env: 'prod' }, identities: [] },
      { name: 'fixed', identities: [258] },
    ];
    const egress = (serviceName: string, ports?: string[]) =>
      new PolicyResolver(
        [rule({ egress: [{ toServices: [{ k8sService: { serviceName } }], ...(ports ? { toPorts: [{ ports: ports.map((port) => ({ port })) }] } : {}) }] })],
        IDS,
        'default',
        services,
      ).forEndpoint(app1);
    assert.deepStrictEqual(egress('prod').allows, [{ identity: 257, port: 0, proto: 0, dir: 'egress' }]);
    assert.deepStrictEqual(egress('fixed', ['80']).allows, [{ identity: 258, port: 80, proto: 0, dir: 'egress' }]);
    const none = egress('nowhere');
    assert.strictEqual(none.egressEnforced, true);
    assert.deepStrictEqual(none.allows, [], 'a service that does not exist (yet) allows nothing: not every peer');
  });

  it('HTTP rules: their port over TCP with its patterns; patterns of one entry join, an L4-only allow of it needs no proxy', () => {
    const http = (path: string) => ({ ports: [{ port: '80' }], rules: { http: [{ method: 'GET', path }] } });
    const p = allows([
      rule({ ingress: [{ fromEndpoints: [{ matchLabels: { id: 'app2' } }], toPorts: [http('/a'), { ports: [{ port: '81' }] }] }] }),
      rule({ ingress: [{ fromEndpoints: [{ matchLabels: { id: 'app2' } }], toPorts: [http('/b')] }] }),
      rule({ ingress: [{ fromEndpoints: [{ matchLabels: { id: 'app3' } }], toPorts: [http('/c')] }] }),
      rule({ ingress: [{ fromEndpoints: [{ matchLabels: { id: 'app3' } }], toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }] }] }] }),
    ]);
    const by = (id: number, port: number) => p.allows.find((a) => a.identity === id && a.port === port);
    assert.deepStrictEqual(by(257, 80), {
      identity: 257,
      port: 80,
      proto: 6,
      dir: 'ingress',
      http: [
        { method: 'GET', path: '/a' },
        { method: 'GET', path: '/b' },
      ],
    });
    assert.deepStrictEqual(by(257, 81), { identity: 257, port: 81, proto: 0, dir: 'ingress' });
    assert.deepStrictEqual(by(258, 80), { identity: 258, port: 80, proto: 6, dir: 'ingress' }, 'allowed at L4 by one rule: every request is');
  });

  it('trace judges a given HTTP request against the L7 rules of the entry that allows the port', () => {
    const rules = [
      rule({
        ingress: [
          { fromEndpoints: [{ matchLabels: { id: 'app2' } }], toPorts: [{ ports: [{ port: '80' }], rules: { http: [{ method: 'GET', path: '/public' }] } }] },
        ],
      }),
    ];
    const r = new PolicyResolver(rules, IDS, 'default');
    const ask = (method: string, url: string) => r.trace(['container:id=app2'], app1, 257, 256, 80, 6, { method, url, headers: {} });
    const ok = ask('GET', '/public');
    assert.strictEqual(ok.allowed, true);
    assert.match(ok.steps.at(-1)!, /GET \/public matches method=GET path=\/public: ALLOWED/);
    const no = ask('GET', '/private');
    assert.strictEqual(no.allowed, false);
    assert.match(no.steps.at(-1)!, /GET \/private matches none of them: DENIED \(403 Access denied\)/);
    assert.strictEqual(r.trace(['container:id=app2'], app1, 257, 256, 80, 6).allowed, true, 'no request given: the L4 verdict');
  });

  it('trace explains the verdict in both directions', () => {
    const r = new PolicyResolver(
      [rule({ ingress: [{ fromEndpoints: [{ matchLabels: { id: 'app2' } }], toPorts: [{ ports: [{ port: '80' }] }] }] })],
      IDS,
      'default',
    );
    assert.strictEqual(r.trace(['container:env=prod', 'container:id=app2'], app1, 257, 256, 80, 6).allowed, true);
    const denied = r.trace(['container:env=dev', 'container:id=app3'], app1, 258, 256, 80, 6);
    assert.strictEqual(denied.allowed, false);
    assert.match(denied.steps.join('\n'), /no entry allows identity 258 to port 80\/TCP: DENIED/);
  });
});

describe('policy validation', () => {
  const bad: Array<[unknown, RegExp]> = [
    [{ ingress: [] }, /rule 0: endpointSelector: is required/],
    [{ endpointSelector: {}, ingress: [{ fromEndpoint: [] }] }, /rule 0: ingress\[0\]\.fromEndpoint: unknown field/],
    [
      { endpointSelector: {}, egress: [{ toPorts: [{ ports: [{ port: '80', protocol: 'SCTP' }] }] }] },
      /egress\[0\]\.toPorts\[0\]\.ports\[0\]\.protocol: "SCTP" is not TCP, UDP or ANY/,
    ],
    [{ endpointSelector: {}, egress: [{ toCIDR: ['10.0.0.1/8'] }] }, /egress\[0\]\.toCIDR\[0\]: "10\.0\.0\.1\/8" has host bits set/],
    [
      { endpointSelector: {}, egress: [{ toCIDRSet: [{ cidr: '10.0.0.0/8', except: ['11.0.0.0/16'] }] }] },
      /except\[0\]: 11\.0\.0\.0\/16 is not inside 10\.0\.0\.0\/8/,
    ],
    [{ endpointSelector: {}, egress: [{ toEntities: ['everyone'] }] }, /unknown entity "everyone"/],
    [{ endpointSelector: { matchExpressions: [{ key: 'a', operator: 'Is' }] } }, /operator: "Is" is not In, NotIn, Exists or DoesNotExist/],
    [
      { endpointSelector: {}, ingress: [{ toPorts: [{ ports: [{ port: '80' }], rules: { http: [{ path: '/a(' }] } }] }] },
      /ingress\[0\]\.toPorts\[0\]\.rules\.http\[0\]\.path: not a regular expression/,
    ],
    [{ endpointSelector: {}, ingress: [{ toPorts: [{ ports: [{ port: '80' }], rules: { http: [{ verb: 'GET' }] } }] }] }, /http\[0\]\.verb: unknown field/],
    [{ endpointSelector: {}, ingress: [{ toPorts: [{ rules: { http: [{}] } }] }] }, /rules: L7 rules need the ports they apply to/],
    [
      { endpointSelector: {}, ingress: [{ toPorts: [{ ports: [{ port: '53', protocol: 'UDP' }], rules: { http: [{}] } }] }] },
      /toPorts\[0\]\.ports\[0\]\.protocol: HTTP rules need TCP/,
    ],
    [{ endpointSelector: {}, ingress: [{ toPorts: [{ ports: [{ port: '9092' }], rules: { kafka: [] } }] }] }, /kafka rules are not supported yet/],
    [
      { endpointSelector: {}, egress: [{ toPorts: [{ ports: [{ port: '80' }], rules: { http: [{ method: '[' }] } }] }] },
      /egress\[0\]\.toPorts\[0\]\.rules\.http\[0\]\.method: not a regular expression/,
    ],
    [
      { endpointSelector: {}, ingress: [{ toPorts: [{ ports: [{ port: '80' }], rules: { http: [{ headers: ['X Token'] }] } }] }] },
      /headers\[0\]: "X Token" is not "Name" or "Name: value"/,
    ],
    [[], /holds no rules/],
    [{ endpointSelector: {}, ingress: [{ toServices: [] }] }, /ingress\[0\]\.toServices: unknown field/],
    [{ endpointSelector: {}, egress: [{ toServices: [{}] }] }, /toServices\[0\]: needs k8sService/],
    [{ endpointSelector: {}, egress: [{ toServices: [{ k8sService: { serviceName: 5 } }] }] }, /k8sService\.serviceName: must be a string/],
    [{ endpointSelector: {}, egress: [{ toServices: [{ k8sService: { serviceName: 'a', namespace: 'kube-system' } }] }] }, /live in no namespace/],
    [{ endpointSelector: {}, egress: [{ toServices: [{ k8sServiceSelector: { selector: {} } }] }] }, /k8sServiceSelector: services here carry no labels/],
  ];
  for (const [input, err] of bad) {
    it(`refuses ${JSON.stringify(input).slice(0, 80)}`, () => {
      assert.throws(() => validateRules(input), err);
    });
  }
  it('names the rule by its labels', () => {
    assert.throws(
      () => validateRules([{ endpointSelector: {} }, { labels: [{ key: 'name', value: 'x' }], endpointSelector: 5 }]),
      /^Error: rule 1 \(name=x\): endpointSelector: must be an object/,
    );
  });
});
