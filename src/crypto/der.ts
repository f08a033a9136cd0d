/** Minimal DER helpers for the one private certificate extension mwi reads on the hot path. */

function encodeLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  while (n > 0) {
    bytes.unshift(n & 0xff);
    n >>= 8;
  }
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** DER TLV with the given tag. */
export function tlv(tag: number, value: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([tag]), encodeLength(value.length), value]);
}

/** DER encoding of a dotted OID. */
export function encodeOid(oid: string): Buffer {
  const parts = oid.split('.').map(Number);
  const first = parts[0] ?? 0;
  const second = parts[1] ?? 0;
  const out: number[] = [first * 40 + second];
  for (const p of parts.slice(2)) {
    const chunk: number[] = [p & 0x7f];
    let v = p >>> 7;
    while (v > 0) {
      chunk.unshift((v & 0x7f) | 0x80);
      v >>>= 7;
    }
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}

/** Reads a TLV at `offset`; returns the value bounds. */
export function readTlv(buf: Uint8Array, offset: number): { tag: number; start: number; end: number } | undefined {
  if (offset + 2 > buf.length) return undefined;
  const tag = buf[offset]!;
  let len = buf[offset + 1]!;
  let start = offset + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || start + n > buf.length) return undefined;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[start + i]!;
    start += n;
  }
  const end = start + len;
  if (end > buf.length) return undefined;
  return { tag, start, end };
}

/** A TLV inside [from, to): its value bounds must not run past its parent's. */
function child(buf: Uint8Array, offset: number, to: number, tag: number): { start: number; end: number } | undefined {
  if (offset >= to) return undefined;
  const t = readTlv(buf, offset);
  return t && t.tag === tag && t.end <= to ? t : undefined;
}

const oidCache = new Map<string, Buffer>();

/**
 * The extnValue (inner DER) of extension `oid` in a DER certificate, or undefined when it is
 * absent, appears more than once, or the structure is malformed. The DER is walked:
 * Certificate -> tbsCertificate -> [3] extensions -> Extension { extnID, critical?, extnValue },
 * comparing extnID exactly. Rule: a claim is read from the one extension with that OID, never
 * from bytes that happen to spell it inside a subject, a SAN or another extension's value.
 */
export function findExtensionValue(der: Uint8Array, oid: string): Uint8Array | undefined {
  let needle = oidCache.get(oid);
  if (!needle) oidCache.set(oid, (needle = encodeOid(oid)));
  const cert = child(der, 0, der.length, 0x30);
  const tbs = cert && child(der, cert.start, cert.end, 0x30);
  if (!tbs) return undefined;
  // the fields before the extensions are skipped as whole TLVs; [3] is only ever the extensions
  let pos = tbs.start;
  let exts: { start: number; end: number } | undefined;
  while (pos < tbs.end) {
    const t = readTlv(der, pos);
    if (!t || t.end > tbs.end) return undefined;
    if (t.tag === 0xa3) exts = t;
    pos = t.end;
  }
  const list = exts && child(der, exts.start, exts.end, 0x30);
  if (!list) return undefined;
  let found: Uint8Array | undefined;
  for (pos = list.start; pos < list.end;) {
    const ext = child(der, pos, list.end, 0x30);
    const id = ext && child(der, ext.start, ext.end, 0x06);
    if (!ext || !id) return undefined;
    pos = ext.end;
    const idBytes = der.subarray(ext.start, id.end);
    if (idBytes.length !== needle.length || !needle.equals(idBytes)) continue;
    if (found) return undefined; // RFC 5280 4.2: an extension appears at most once
    let next = id.end;
    const critical = child(der, next, ext.end, 0x01);
    if (critical) next = critical.end;
    const value = child(der, next, ext.end, 0x04);
    if (!value || value.end !== ext.end) return undefined;
    found = der.subarray(value.start, value.end);
  }
  return found;
}

/**
 * The UTF8String payload of extension `oid` in a DER certificate (see findExtensionValue), or
 * undefined. Only used on certificates whose signature TLS already verified.
 */
export function findUtf8Extension(der: Uint8Array, oid: string): string | undefined {
  const value = findExtensionValue(der, oid);
  if (!value) return undefined;
  const inner = readTlv(value, 0);
  if (inner?.tag !== 0x0c || inner.end !== value.length) return undefined;
  return Buffer.from(value.buffer, value.byteOffset + inner.start, inner.end - inner.start).toString('utf8');
}

/** DER SEQUENCE of the given elements. */
export function seq(...items: Uint8Array[]): Buffer {
  return tlv(0x30, Buffer.concat(items));
}

/** DER INTEGER from unsigned big-endian bytes. */
export function uint(bytes: Uint8Array): Buffer {
  let b = Buffer.from(bytes);
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  b = b.subarray(i);
  return tlv(0x02, b[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), b]) : b);
}

/** UTCTime before 2050, GeneralizedTime from then on (RFC 5280 4.1.2.5). */
export function time(d: Date): Buffer {
  const iso = d.toISOString();
  const y = d.getUTCFullYear();
  const body =
    `${iso.slice(2, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}` +
    `${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
  return y < 2050 ? tlv(0x17, Buffer.from(body)) : tlv(0x18, Buffer.from(`${String(y).slice(0, 2)}${body}`));
}

/** The subject Name of a DER certificate, as DER. */
export function certSubjectDer(der: Uint8Array): Uint8Array {
  const cert = readTlv(der, 0)!;
  const tbs = readTlv(der, cert.start)!;
  let pos = tbs.start;
  const first = readTlv(der, pos)!;
  if (first.tag === 0xa0) pos = first.end; // version
  // serialNumber, signature, issuer, validity, then subject
  for (let i = 0; i < 4; i++) pos = readTlv(der, pos)!.end;
  const subject = readTlv(der, pos)!;
  return der.subarray(pos, subject.end);
}
