import { isIPv6 } from 'node:net';

/**
 * The 8 16-bit groups of an IPv6 address (a zone id is dropped; a trailing dotted IPv4 part, as
 * in ::ffff:1.2.3.4, is the last two groups), or undefined if it is not one.
 */
export function ipv6Groups(ip: string): number[] | undefined {
  const addr = ip.replace(/%.*$/, '');
  if (!isIPv6(addr)) return undefined;
  let text = addr;
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = [...h, ...Array<string>(tail === undefined ? 0 : 8 - h.length - t.length).fill('0'), ...t];
  return groups.map((g) => parseInt(g, 16));
}
