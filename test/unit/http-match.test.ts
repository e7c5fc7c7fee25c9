import assert from 'assert';
import { compileHttpRule, httpRuleMatches, requestPath } from '../../policy/http-match';

const req = (method: string, url: string, headers: Record<string, string> = {}) => ({ method, url, headers: { host: 'app1', ...headers } });

describe('HTTP rule matching (the L7 proxy, policy trace)', () => {
  it('method and path are anchored regular expressions; the query is not part of the path', () => {
    const r = compileHttpRule({ method: 'GET', path: '/public(/.*)?' });
    assert.ok(httpRuleMatches(r, req('GET', '/public')));
    assert.ok(httpRuleMatches(r, req('GET', '/public/a?b=c')));
    assert.ok(!httpRuleMatches(r, req('GET', '/publicity')), 'anchored at the end');
    assert.ok(!httpRuleMatches(r, req('GET', '/x/public')), 'anchored at the start');
    assert.ok(!httpRuleMatches(r, req('POST', '/public')));
    assert.ok(!httpRuleMatches(r, req('GETX', '/public')));
    assert.strictEqual(requestPath('/a/b?c#d'), '/a/b');
  });

  it('host matches the Host header; headers must be present, with the value when one is given', () => {
    const r = compileHttpRule({ host: 'app1(:80)?', headers: ['X-Token: 42', 'X-Trace'] });
    assert.ok(httpRuleMatches(r, req('GET', '/', { 'x-token': '42', 'x-trace': '' })));
    assert.ok(!httpRuleMatches(r, req('GET', '/', { 'x-token': '43', 'x-trace': '1' })), 'wrong value');
    assert.ok(!httpRuleMatches(r, req('GET', '/', { 'x-token': '42' })), 'a header missing');
    assert.ok(!httpRuleMatches(r, req('GET', '/', { host: 'app2', 'x-token': '42', 'x-trace': '1' })), 'another host');
  });

  it('an empty rule allows every request', () => {
    assert.ok(httpRuleMatches(compileHttpRule({}), req('DELETE', '/anything')));
  });
});
