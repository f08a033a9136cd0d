import assert from 'node:assert/strict';
import { createPublicKey, X509Certificate } from 'node:crypto';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startCluster, tbotFlags, type TestCluster } from '../helpers/cluster.js';
import { cli, exited, spawnCli } from '../helpers/procs.js';

/** The public key inside an OpenSSH certificate line, as the blob of a plain key. */
function sshCertKey(line: string): Buffer {
  const blob = Buffer.from(line.trim().split(/\s+/)[1]!, 'base64');
  let off = 0;
  const str = () => {
    const len = blob.readUInt32BE(off);
    const v = blob.subarray(off + 4, off + 4 + len);
    off += 4 + len;
    return v;
  };
  const type = str().toString().replace('-cert-v01@openssh.com', '');
  str(); // nonce
  const fields = type === 'ssh-ed25519' ? [str()] : [str(), str()];
  const w = (b: Buffer) =>
    Buffer.concat([Buffer.from([0, 0, 0, 0].map((_, i) => (b.length >>> (24 - 8 * i)) & 0xff)), b]);
  return Buffer.concat([w(Buffer.from(type)), ...fields.map(w)]);
}

function assertMatchingPair(out: string): void {
  const key = createPublicKey(readFileSync(join(out, 'key'), 'utf8'));
  const tls = new X509Certificate(readFileSync(join(out, 'tlscert'), 'utf8'));
  assert.deepEqual(
    tls.publicKey.export({ type: 'spki', format: 'der' }),
    key.export({ type: 'spki', format: 'der' }),
    'tlscert does not match key',
  );
  const pub = Buffer.from(readFileSync(join(out, 'key.pub'), 'utf8').trim().split(/\s+/)[1]!, 'base64');
  assert.deepEqual(
    sshCertKey(readFileSync(join(out, 'key-cert.pub'), 'utf8')),
    pub,
    'key-cert.pub does not match key.pub',
  );
  const identity = readFileSync(join(out, 'identity'), 'utf8');
  assert.ok(identity.includes(readFileSync(join(out, 'key'), 'utf8')), 'identity file holds another key');
}

describe('kill -9 while writing outputs', () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await startCluster();
  });
  after(async () => cluster?.stop());

  it('50 kills, half of them mid-write: the destination always holds a matching cert/key pair', async () => {
    const token = await cluster.addBot('crashy', ['deploy']);
    const storage = join(cluster.dir, 'bot');
    const out = join(cluster.dir, 'out');
    const flags = [
      ...tbotFlags(cluster, token, storage, out),
      // long enough that a loaded machine (the whole suite, 2 cores) never lets the stored identity
      // expire between a kill and the next start: what is tested is the files, not expiry
      '--certificate-ttl',
      '2m',
      '--renewal-interval',
      '30ms',
    ];
    const first = await cli('tbot', ['start', ...flags, '--oneshot']);
    assert.equal(first.code, 0, first.stderr);
    let midWrite = 0;
    for (let i = 0; i < 50; i++) {
      const tbot = spawnCli('tbot', ['start', ...flags]);
      if (i % 2 === 0) {
        // kill the moment a new version directory exists that ..data does not point to yet
        midWrite += (await killMidWrite(tbot, out)) ? 1 : 0;
      } else {
        await new Promise((r) => setTimeout(r, 150 + Math.random() * 450));
        tbot.kill('SIGKILL');
      }
      await exited(tbot);
      assert.doesNotMatch(tbot.out(), /locked|ERROR/, `run ${i}: ${tbot.out()}`);
      assertMatchingPair(out);
    }
    assert.ok(midWrite >= 10, `only ${midWrite} of 25 kills landed mid-write`);
  });
});

/** Polls the destination and SIGKILLs tbot while a write is in progress; true if it caught one. */
async function killMidWrite(tbot: ReturnType<typeof spawnCli>, out: string): Promise<boolean> {
  const end = Date.now() + 5000;
  while (Date.now() < end) {
    let current = '';
    try {
      current = readlinkSync(join(out, '..data'));
    } catch {
      // not written yet
    }
    if (readdirSync(out).some((e) => e.startsWith('..v-') && e !== current)) {
      tbot.kill('SIGKILL');
      return true;
    }
    await new Promise((r) => setImmediate(r));
  }
  tbot.kill('SIGKILL');
  return false;
}
