import assert from 'node:assert/strict';
import { createHash, createPublicKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startCluster, tbotFlags, type TestCluster } from '../helpers/cluster.js';
import { cli, run, waitFor } from '../helpers/procs.js';

const fingerprintOfKeyFile = (path: string) =>
  `sha256:${createHash('sha256')
    .update(createPublicKey(readFileSync(path, 'utf8')).export({ type: 'spki', format: 'der' }))
    .digest('hex')}`;

describe('finding 14: forensics', () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await startCluster();
  });
  after(async () => cluster?.stop());

  it('finding 14: every successful /v1/certs call is audited with serials, instance, remote address, key fingerprint and what was issued', async () => {
    const token = await cluster.addBot('forensic', ['deploy', 'ops']);
    const storage = join(cluster.dir, 'bot14');
    const out = join(cluster.dir, 'out14');
    const r = await cli('tbot', [
      'start',
      ...tbotFlags(cluster, token, storage, out),
      '--oneshot',
      '--certificate-ttl',
      '30m',
      '--renewal-interval',
      '10m',
    ]);
    assert.equal(r.code, 0, r.stderr);

    const events = await waitFor('the bot.certs event', () => {
      const e = cluster
        .audit()
        .filter((x) => x.event === 'bot.certs' && x.success === true && x.bot_name === 'forensic');
      return e.length > 0 ? e : undefined;
    });
    assert.equal(events.length, 1);
    const ev = events[0]!;
    const state = JSON.parse(readFileSync(join(storage, 'state.json'), 'utf8')) as {
      identity: { instance_id: string };
    };
    assert.equal(ev.bot_instance_id, state.identity.instance_id);
    assert.match(ev.remote_addr, /127\.0\.0\.1/);
    assert.equal(ev.public_key_fingerprint, fingerprintOfKeyFile(join(out, 'key')));
    assert.deepEqual(ev.logins, ['deploy', 'ops']);
    assert.equal(ev.ttl_seconds, 30 * 60);
    // the serials name the certificates the output holds
    assert.equal(
      ev.tls_serial,
      new X509Certificate(readFileSync(join(out, 'tlscert'), 'utf8')).serialNumber.toLowerCase(),
    );
    const listed = await run('ssh-keygen', ['-L', '-f', join(out, 'key-cert.pub')]);
    assert.equal(listed.code, 0, listed.stderr);
    assert.equal(ev.ssh_serial, /Serial: (\d+)/.exec(listed.stdout)?.[1]);
    // nothing secret
    const text = JSON.stringify(ev);
    assert.ok(!text.includes('PRIVATE KEY') && !text.includes('BEGIN CERTIFICATE'));
  });

  it('finding 14: every renewal carries the remote address and the new key fingerprint', async () => {
    const token = await cluster.addBot('forensic2', ['deploy']);
    const storage = join(cluster.dir, 'bot14b');
    const flags = [...tbotFlags(cluster, token, storage, join(cluster.dir, 'out14b')), '--oneshot'];
    assert.equal((await cli('tbot', ['start', ...flags])).code, 0);
    const r = await cli('tbot', ['start', ...flags]);
    assert.equal(r.code, 0, r.stderr);
    const renew = await waitFor('the bot.renew event', () =>
      cluster.audit().find((x) => x.event === 'bot.renew' && x.bot_name === 'forensic2'),
    );
    assert.equal(renew.success, true);
    assert.match(renew.remote_addr, /127\.0\.0\.1/);
    const state = JSON.parse(readFileSync(join(storage, 'state.json'), 'utf8')) as { identity: { tls_cert: string } };
    const spki = new X509Certificate(state.identity.tls_cert).publicKey.export({ type: 'spki', format: 'der' });
    assert.equal(renew.public_key_fingerprint, `sha256:${createHash('sha256').update(spki).digest('hex')}`);
  });
});
