import assert from 'assert';
import { protocolName, protocolNumber } from '../../net/protocol';

describe('net/protocol: one table of IP protocol numbers', () => {
  it('names policy, trace and the CLI use map to the kernel numbers and back', () => {
    assert.deepStrictEqual(['TCP', 'udp', 'ANY', 'ICMP', 'icmpv6'].map(protocolNumber), [6, 17, 0, 1, 58]);
    assert.deepStrictEqual([6, 17, 0, 1, 58, 132].map(protocolName), ['TCP', 'UDP', 'ANY', 'ICMP', 'ICMPv6', 'proto 132']);
  });
  it('anything else names no protocol, even keys every object has', () => {
    assert.deepStrictEqual(['SCTP', '', 'constructor', '__proto__', 'toString'].map(protocolNumber), [undefined, undefined, undefined, undefined, undefined]);
  });
});
