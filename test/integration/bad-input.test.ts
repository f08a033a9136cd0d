import assert from 'node:assert/strict';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startCluster, tbotFlags, type TestCluster } from '../helpers/cluster.js';
import { cli } from '../helpers/procs.js';
import { freePort } from '../helpers/sshd.js';

/** Each bad input exits non-zero, names the field or cause, and leaves nothing behind. */
describe('tbot bad input', () => {
  let cluster: TestCluster;
  let n = 0;
  before(async () => {
    cluster = await startCluster();
  });
  after(async () => cluster?.stop());

  const paths = () => {
    n++;
    return {
      storage: join(cluster.dir, `bot-${n}`),
      out: join(cluster.dir, `out-${n}`),
      cfg: join(cluster.dir, `tbot-${n}.yaml`),
    };
  };
  const assertNothingWritten = (p: { storage: string; out: string }) => {
    for (const d of [p.storage, p.out]) assert.ok(!existsSync(d) || readdirSync(d).length === 0, `${d} was written`);
  };
  const config = (p: { storage: string; out: string }, body: string) =>
    `version: v2\nauth_server: ${cluster.addr}\nstorage: { type: directory, path: ${p.storage} }\noutputs:\n` +
    `  - type: identity\n    destination: { type: directory, path: ${p.out} }\n${body}`;
  const onboarding = (extra = '') =>
    `onboarding:\n  join_method: token\n  token: "0123456789abcdef0123456789abcdef"\n` +
    `  ca_pins: ["${cluster.caPin}"]\n${extra}`;

  // daemon: checked for a daemon only (issue #11: a one-shot run never uses its renewal interval)
  type Case = { name: string; body: (p: ReturnType<typeof paths>) => string; message: RegExp; daemon?: true };
  const cases: Case[] = [
    { name: 'malformed YAML', body: () => 'version: v2\nauth_server: [unclosed\n', message: /is not valid YAML/ },
    {
      name: 'unknown top-level key',
      body: (p) => config(p, `${onboarding()}renewal_intreval: 5m\n`),
      message: /renewal_intreval: unknown key/,
    },
    {
      name: 'unknown nested key',
      body: (p) => config(p, onboarding('  tokn: x\n')),
      message: /onboarding\.tokn: unknown key/,
    },
    {
      name: 'wrong version',
      body: (p) => config(p, onboarding()).replace('version: v2', 'version: v1'),
      message: /version: expected "v2"/,
    },
    {
      name: 'unknown join method',
      body: (p) => config(p, onboarding().replace('join_method: token', 'join_method: tokn')),
      message: /onboarding\.join_method: unknown join method "tokn" \(expected one of: token/,
    },
    {
      name: 'renewal_interval >= credential_ttl',
      body: (p) => config(p, `${onboarding()}credential_ttl: 10m\nrenewal_interval: 10m\n`),
      message: /renewal_interval: must be less than credential_ttl/,
      daemon: true,
    },
    {
      name: 'credential_ttl over 24h',
      body: (p) => config(p, `${onboarding()}credential_ttl: 25h\nrenewal_interval: 1h\n`),
      message: /credential_ttl: at most 24h/,
    },
    {
      name: 'bad duration',
      body: (p) => config(p, `${onboarding()}credential_ttl: forever\n`),
      message: /credential_ttl: expected a duration/,
    },
    {
      name: 'malformed CA pin',
      body: (p) => config(p, onboarding().replace(cluster.caPin, 'sha256:abc')),
      message: /onboarding\.ca_pins\[0\]: expected sha256:<64 hex digits>/,
    },
    {
      name: 'the placeholder CA pin of deploy/kubernetes/tbot.yaml',
      body: (p) => config(p, onboarding().replace(cluster.caPin, `sha256:${'0'.repeat(64)}`)),
      message: /onboarding\.ca_pins\[0\]: the all-zero pin is a placeholder: put the CA pin from `tctl status` here/,
    },
    {
      name: 'no CA pin',
      body: (p) => config(p, onboarding().replace(/ {2}ca_pins.*\n/, '')),
      message: /onboarding\.ca_pins: required for the first join/,
    },
    {
      name: 'missing token',
      body: (p) => config(p, onboarding().replace(/ {2}token.*\n/, '')),
      // a restart from storage needs no token (issue #12): only a first join asks for it
      message: /no identity in storage .*bot-\d+ and no onboarding\.token: a first join needs a token/,
    },
  ];

  for (const c of cases) {
    it(`config: ${c.name} exits 2 naming the field`, async () => {
      const p = paths();
      writeFileSync(p.cfg, c.body(p));
      const r = await cli('tbot', ['start', '-c', p.cfg, ...(c.daemon ? [] : ['--oneshot'])]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, c.message);
      assertNothingWritten(p);
    });
  }

  it('flags: unknown flag exits 2 naming it', async () => {
    const r = await cli('tbot', ['start', '--auth-servr', cluster.addr]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown option '--auth-servr'/i);
  });

  it('expired token: refused, exit 1, audit says expired', async () => {
    await cluster.addBot('late', ['deploy']);
    const out = JSON.parse(
      await cluster.tctlOk(['tokens', 'add', '--type=bot', '--bot-name', 'late', '--ttl', '1s', '--format', 'json']),
    ) as { token: string; id: string };
    await new Promise((r) => setTimeout(r, 1500));
    const p = paths();
    const r = await cli('tbot', ['start', ...tbotFlags(cluster, out.token, p.storage, p.out), '--oneshot']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /the join was refused .*expired/);
    assertNothingWritten(p);
    const e = cluster.audit().filter((x) => x.event === 'bot.join' && x.token_id === out.id);
    assert.equal(e.length, 1);
    assert.equal(e[0]!.reason, 'token expired');
  });

  it('wrong CA pin: refused before anything is sent, exit 1', async () => {
    const token = await cluster.addBot('pinned', ['deploy']);
    const p = paths();
    const flags = tbotFlags(cluster, token, p.storage, p.out).map((f) =>
      f === cluster.caPin ? `sha256:${'ab'.repeat(32)}` : f,
    );
    const r = await cli('tbot', ['start', ...flags, '--oneshot']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /presented no CA matching the configured CA pin/);
    assertNothingWritten(p);
    // the token was never presented, so it still works
    const ok = await cli('tbot', ['start', ...tbotFlags(cluster, token, p.storage, p.out), '--oneshot']);
    assert.equal(ok.code, 0, ok.stderr);
  });

  it('unreachable auth server: exit 1 naming the address', async () => {
    const port = await freePort();
    const p = paths();
    const r = await cli('tbot', [
      'start',
      '--auth-server',
      `127.0.0.1:${port}`,
      '--token',
      '0123456789abcdef0123456789abcdef',
      '--ca-pin',
      cluster.caPin,
      '--data-dir',
      p.storage,
      '--destination-dir',
      p.out,
      '--oneshot',
    ]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`cannot reach the Auth Service at 127\\.0\\.0\\.1:${port}: ECONNREFUSED`));
    assertNothingWritten(p);
  });

  it('unknown bot in tctl bots add / missing role: clear error, exit non-zero', async () => {
    const r = await cluster.tctl(['bots', 'add', 'x', '--roles', 'no-such-role']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /role "no-such-role" does not exist/);
  });
});
