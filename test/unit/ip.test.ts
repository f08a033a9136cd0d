import assert from 'node:assert/strict';
import { it } from 'node:test';
import { ipv6Groups } from '../../src/util/ip.js';

it('ipv6Groups expands every spelling of an IPv6 address to its 8 groups, and nothing else', () => {
  assert.deepEqual(ipv6Groups('::1'), [0, 0, 0, 0, 0, 0, 0, 1]);
  assert.deepEqual(ipv6Groups('::'), [0, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(ipv6Groups('1:2:3:4:5:6:7:8'), [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.deepEqual(ipv6Groups('2001:db8::ff00:42'), [0x2001, 0xdb8, 0, 0, 0, 0, 0xff00, 0x42]);
  assert.deepEqual(ipv6Groups('::ffff:1.2.3.4'), [0, 0, 0, 0, 0, 0xffff, 0x102, 0x304]);
  assert.deepEqual(ipv6Groups('fe80::1%eth0'), [0xfe80, 0, 0, 0, 0, 0, 0, 1]);
  for (const bad of ['1.2.3.4', '', 'localhost', '1::2::3', '12345::', '::ffff:1.2.3.256']) {
    assert.equal(ipv6Groups(bad), undefined, bad);
  }
});
