import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { botAccess } from '../../src/auth/access.js';
import { signOutputCerts } from '../../src/auth/issue.js';
import { roleSchema, validateResource } from '../../src/api/resources.js';
import { parseClientKey } from '../../src/crypto/keys.js';
import { testContext } from '../helpers/auth-context.js';
import { signSshCertificate, sshPublicKeyBlob } from '../../src/crypto/ssh.js';
import { isMwiError } from '../../src/errors.js';
import { startCluster, tbotFlags, type TestCluster } from '../helpers/cluster.js';
import { cli, run } from '../helpers/procs.js';
import { sshRun, startSshd, type Sshd } from '../helpers/sshd.js';

/**
 * Finding 2: OpenSSH reads a user certificate with no principals as valid for every user where
 * the CA is trusted by an authorized_keys `cert-authority` line. A bot that ends up with no
 * logins must never get such a certificate.
 */
describe('finding 2: an SSH certificate without principals logs in as no one (real sshd, both trust modes)', () => {
  let cluster: TestCluster;
  let caKeysSshd: Sshd;
  let authorizedKeysSshd: Sshd;
  const me = userInfo().username;
  // every way a bot's logins can come out empty, plus one bot that may log in (the control)
  const bots = ['no-trait', 'denied', 'no-role', 'allowed'] as const;
  const out: Record<string, string> = {};

  async function createRole(name: string, allow: string[], deny: string[] = []): Promise<void> {
    const file = join(cluster.dir, `${name}.yaml`);
    writeFileSync(
      file,
      `kind: role\nversion: v7\nmetadata: { name: ${name} }\nspec:\n` +
        `  allow: { logins: ${JSON.stringify(allow)} }\n  deny: { logins: ${JSON.stringify(deny)} }\n`,
    );
    await cluster.tctlOk(['create', '-f', file]);
  }

  before(async () => {
    cluster = await startCluster();
    const authorizedKeys = join(cluster.dir, 'authorized_keys');
    caKeysSshd = await startSshd(cluster, join(cluster.dir, 'sshd-ca-keys'));
    authorizedKeysSshd = await startSshd(cluster, join(cluster.dir, 'sshd-authorized-keys'), {
      authorizedKeysFile: authorizedKeys,
    });
    // a role whose only login is a trait the bot does not have
    await createRole('trait-role', ['{{internal.logins}}']);
    // logins both allowed and denied
    await createRole('denied-role', ['root', me], ['root', me]);
    await createRole('gone-role', ['root', me]);
    await createRole('allowed-role', [me]);
    const roles: Record<(typeof bots)[number], string> = {
      'no-trait': 'trait-role',
      denied: 'denied-role',
      'no-role': 'gone-role',
      allowed: 'allowed-role',
    };
    const tokens: Record<string, string> = {};
    for (const bot of bots) {
      tokens[bot] = (
        JSON.parse(await cluster.tctlOk(['bots', 'add', bot, '--roles', roles[bot], '--format', 'json'])) as {
          token: string;
        }
      ).token;
    }
    // a deleted role grants nothing
    await cluster.tctlOk(['rm', 'role/gone-role']);
    for (const bot of bots) {
      out[bot] = join(cluster.dir, `out-${bot}`);
      const r = await cli(
        'tbot',
        ['start', '--oneshot', ...tbotFlags(cluster, tokens[bot]!, join(cluster.dir, `bot-${bot}`), out[bot])],
        { timeoutMs: 30_000 },
      );
      assert.equal(r.code, 0, `tbot ${bot}: ${r.stderr}`);
    }
    // the authorized_keys sshd trusts the user CA exactly as tbot's sshcacerts output writes it
    assert.match(readFileSync(join(out.allowed!, 'sshcacerts'), 'utf8'), /^cert-authority ssh-ed25519 /);
    copyFileSync(join(out.allowed!, 'sshcacerts'), authorizedKeys);
  });

  after(async () => {
    await caKeysSshd?.stop();
    await authorizedKeysSshd?.stop();
    await cluster?.stop();
  });

  for (const mode of ['TrustedUserCAKeys', 'authorized_keys cert-authority'] as const) {
    const sshd = (): Sshd => (mode === 'TrustedUserCAKeys' ? caKeysSshd : authorizedKeysSshd);

    it(`finding 2: ${mode}: a bot with a login logs in (the trust is set up right)`, async () => {
      const r = await sshRun(out.allowed!, sshd().port, me, 'echo in');
      assert.equal(r.code, 0, `${r.stderr}\nsshd: ${sshd().log().slice(-2000)}`);
      assert.equal(r.stdout.trim(), 'in');
    });

    for (const bot of ['no-trait', 'denied', 'no-role'] as const) {
      it(`finding 2: ${mode}: a bot with no logins (${bot}) cannot log in as ${[...new Set(['root', me])].join(' or ')}`, async () => {
        for (const login of new Set(['root', me])) {
          const r = await sshRun(out[bot]!, sshd().port, login, 'id -u');
          assert.notEqual(r.code, 0, `${bot} logged in as ${login}: ${r.stdout}`);
          assert.match(r.stderr, /Permission denied/);
        }
      });
    }
  }

  it("finding 2: a no-login bot's certificate carries exactly one placeholder principal no account can have", async () => {
    for (const bot of ['no-trait', 'denied', 'no-role'] as const) {
      const r = await run('ssh-keygen', ['-L', '-f', join(out[bot]!, 'key-cert.pub')]);
      assert.equal(r.code, 0, r.stderr);
      const principals = /Principals: \n((?:\s{16}.*\n)*)/.exec(r.stdout)?.[1]?.trim().split(/\s+/);
      assert.equal(principals?.length, 1, r.stdout);
      // a leading "-" makes it unusable as a user name (useradd refuses it, ssh reads it as an option)
      assert.match(principals[0]!, /^-mwi-nologin-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    }
  });
});

describe('finding 2: the signer and the role schema refuse what would make an empty principal list', () => {
  it('finding 2: signSshCertificate refuses an empty principal list (programmer misuse: TypeError)', async () => {
    const ca = createPrivateKey(generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const subject = sshPublicKeyBlob(generateKeyPairSync('ed25519').publicKey);
    const now = Date.now();
    for (const certType of ['user', 'host'] as const) {
      await assert.rejects(
        signSshCertificate({
          caKey: ca,
          subjectBlob: subject,
          certType,
          keyId: 'k',
          principals: [],
          validAfter: new Date(now),
          validBefore: new Date(now + 60_000),
        }),
        TypeError,
      );
    }
  });

  it('finding 2: trait values that are no login (empty, blank, control characters) never become principals', async () => {
    const t = await testContext();
    await t.admin.create(
      { kind: 'role', metadata: { name: 'dev' }, spec: { allow: { logins: ['{{internal.logins}}'] } } },
      false,
      'admin',
    );
    await t.admin.addBot({ name: 'robot', roles: ['dev'], logins: ['', ' ', 'a b', 'x\n'] }, 'admin');
    const access = await botAccess(t.ctx, 'robot');
    assert.deepEqual(access.logins, []);
    const key = parseClientKey(
      generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({ type: 'spki', format: 'pem' }),
      'public_key',
    );
    const issued = await signOutputCerts(t.ctx, access, 'i-1', key, 60_000);
    assert.equal(issued.sshPrincipals.length, 1);
    assert.match(issued.sshPrincipals[0]!, /^-mwi-nologin-[0-9a-f-]{36}$/);
    assert.deepEqual(issued.certs.logins, []);
  });

  it('finding 2: a role with an empty, blank or control-character login is refused naming the field', () => {
    for (const side of ['allow', 'deny'] as const) {
      for (const bad of ['', ' ', '  root', 'root ', 'ro ot', 'root\n', 'a\tb', 'a\u0000b', 'a\u007fb', 'a\u0085b']) {
        const role = { kind: 'role', metadata: { name: 'r' }, spec: { [side]: { logins: ['deploy', bad] } } };
        assert.throws(
          () => validateResource(role),
          (e) => isMwiError(e, 'BAD_REQUEST') && e.field === `spec.${side}.logins[1]`,
          `${side} ${JSON.stringify(bad)}`,
        );
      }
    }
    // what roles legitimately hold still parses
    const ok = roleSchema.parse({
      kind: 'role',
      metadata: { name: 'r' },
      spec: { allow: { logins: ['root', 'deploy-1', 'svc.user', '{{internal.logins}}'] }, deny: { logins: ['admin'] } },
    });
    assert.deepEqual(ok.spec.allow.logins, ['root', 'deploy-1', 'svc.user', '{{internal.logins}}']);
  });
});
