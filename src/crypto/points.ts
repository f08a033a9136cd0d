/**
 * Cheap validity checks for the raw public keys clients send (join, renew, bound keypairs): a
 * key that is no key must be refused where it arrives, not certified.
 */

// P-256 (SEC 2 section 2.4.2): y^2 = x^3 - 3x + b over GF(p)
const P = 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn;
const B = 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn;

function bigintOf(bytes: Uint8Array): bigint {
  return BigInt(`0x${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')}`);
}

/**
 * Whether a 65-byte SEC 1 uncompressed point (0x04 || X || Y) is a point of P-256: both
 * coordinates canonical (below p) and on the curve. The point at infinity has no such encoding.
 */
export function isP256Point(raw: Uint8Array): boolean {
  if (raw.length !== 65 || raw[0] !== 4) return false;
  const x = bigintOf(raw.subarray(1, 33));
  const y = bigintOf(raw.subarray(33, 65));
  if (x >= P || y >= P) return false;
  return (y * y - (((x * x - 3n) * x + B) % P)) % P === 0n;
}

// y coordinates (little-endian, sign bit cleared) of the 8 points of small order on
// edwards25519: 1 (identity), p-1 (order 2), 0 (order 4, the all-zero key), and the two of order 8
const SMALL_ORDER_Y = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
].map((h) => Buffer.from(h, 'hex'));

/**
 * Whether a 32-byte Ed25519 public key is acceptable: its y coordinate canonical (below
 * p = 2^255 - 19) and not one of the 8 small-order points, whatever the sign bit. A small-order
 * key verifies signatures that prove nothing (RFC 8032 does not forbid them; we do), and the
 * non-canonical encodings (y >= p) include the other spellings of the same points.
 */
export function isEd25519Key(raw: Uint8Array): boolean {
  if (raw.length !== 32) return false;
  const y = Buffer.from(raw);
  y[31] = y[31]! & 0x7f;
  // y >= p: bytes 1..30 all 0xff, byte 31 0x7f, byte 0 >= 0xed
  let allOnes = y[31] === 0x7f && y[0]! >= 0xed;
  for (let i = 1; allOnes && i < 31; i++) allOnes = y[i] === 0xff;
  if (allOnes) return false;
  return !SMALL_ORDER_Y.some((s) => s.equals(y));
}
