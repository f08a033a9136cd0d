import assert from 'node:assert/strict';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PATHS } from '../../src/api/wire.js';
import { generateKeys } from '../../src/crypto/keys.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { waitFor } from '../helpers/procs.js';
import { anonymousCall, type RawAnswer } from '../helpers/raw-api.js';
import { createIdentity, workloadBotIdentity } from '../helpers/workload-identity.js';

const doc = (name: string, team: string, spec: string) =>
  `kind: workload_identity\nversion: v1\nmetadata: { name: ${name}, labels: { team: ${team} } }\nspec:\n${spec}`;

/** Hostile input to the three workload identity routes, over a real bot identity. */
describe('workload identity routes: hostile input', () => {
  let c: TestCluster;
  let bot: { cert: string; key: string };
  let publicKey: string;
  const call = (path: string, body?: unknown, client: { cert: string; key: string } | undefined = bot) =>
    anonymousCall(c.addr, c.caPin, body === undefined ? 'GET' : 'POST', path, body, client);
  const refused = (r: RawAnswer, status: number, code: string, message: RegExp) => {
    assert.equal(r.status, status, r.text);
    assert.equal(r.json.error.code, code, r.text);
    assert.match(r.json.error.message, message, r.text);
  };
  before(async () => {
    c = await startCluster('hostile.example');
    await createIdentity(
      c,
      'k8s',
      doc('k8s', 'mine', '  spiffe: { id: "/ns/{{ workload.kubernetes.namespace }}/sa" }\n'),
    );
    await createIdentity(
      c,
      'root-only',
      doc(
        'root-only',
        'mine',
        '  spiffe: { id: /root }\n  rules:\n    allow:\n' +
          '      - conditions: [{ attribute: workload.unix.uid, eq: { value: "0" } }]\n',
      ),
    );
    await createIdentity(c, 'secret-svc', doc('secret-svc', 'theirs', '  spiffe: { id: /secret/svc }\n'));
    bot = await workloadBotIdentity(c, 'hostile', 'mine');
    publicKey = (await generateKeys('ec-p256')).publicKeyPem;
  });
  after(async () => c?.stop());

  it('no client certificate: refused', async () => {
    const r = await call(PATHS.workloadX509, { selector: { name: 'k8s' }, public_key: publicKey }, undefined);
    assert.equal(r.status, 403, r.text);
  });

  it('bad keys: not PEM, RSA-512, RSA-2048 are refused naming public_key; Ed25519 is accepted', async () => {
    const rsa = (bits: number) =>
      generateKeyPairSync('rsa', { modulusLength: bits }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    for (const key of ['not a key', rsa(512), rsa(2048)])
      refused(
        await call(PATHS.workloadX509, { selector: { name: 'secret-svc' }, public_key: key }),
        400,
        'BAD_REQUEST',
        /^public_key: /,
      );
    const ed = (await generateKeys('ed25519')).publicKeyPem;
    const ok = await call(PATHS.workloadX509, {
      selector: { name: 'k8s' },
      public_key: ed,
      attributes: {
        kubernetes: { attested: true, namespace: 'prod', service_account: 'a', pod_name: 'p', pod_uid: 'u' },
      },
    });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.json.svids[0].spiffe_id, 'spiffe://hostile.example/ns/prod/sa');
  });

  it('oversized attributes and bodies are refused naming the field', async () => {
    const labels = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`l${i}`, 'v']));
    const k8s = { attested: true, namespace: 'n', service_account: 'a', pod_name: 'p', pod_uid: 'u' };
    refused(
      await call(PATHS.workloadX509, {
        selector: { name: 'k8s' },
        public_key: publicKey,
        attributes: { kubernetes: { ...k8s, labels } },
      }),
      400,
      'BAD_REQUEST',
      /^attributes\.kubernetes\.labels: at most 64 labels/,
    );
    refused(
      await call(PATHS.workloadX509, {
        selector: { name: 'k8s' },
        public_key: publicKey,
        attributes: { kubernetes: { ...k8s, namespace: 'n'.repeat(300) } },
      }),
      400,
      'BAD_REQUEST',
      /^attributes\.kubernetes\.namespace: at most 253 characters/,
    );
    refused(
      await call(PATHS.workloadX509, { selector: { name: 'k8s' }, public_key: publicKey, pad: 'x'.repeat(70_000) }),
      400,
      'BAD_REQUEST',
      /request body over 65536 bytes/,
    );
    refused(
      await call(PATHS.workloadX509, {
        selector: { name: 'k8s' },
        public_key: publicKey,
        attributes: { unix: { attested: 'yes' } },
      }),
      400,
      'BAD_REQUEST',
      /^attributes\.unix\.attested: /,
    );
  });

  it("another bot's identity: refused with the same answer as one that does not exist, naming none of its rules", async () => {
    const theirs = await call(PATHS.workloadX509, { selector: { name: 'secret-svc' }, public_key: publicKey });
    const none = await call(PATHS.workloadX509, { selector: { name: 'no-such' }, public_key: publicKey });
    refused(theirs, 403, 'ACCESS_DENIED', /does not exist, is not granted to this bot/);
    assert.equal(theirs.json.error.message.replace('secret-svc', 'X'), none.json.error.message.replace('no-such', 'X'));
    assert.doesNotMatch(theirs.text, /theirs|team|\/secret/);
    const byLabels = await call(PATHS.workloadJwt, { selector: { labels: { team: ['theirs'] } }, audiences: ['a'] });
    refused(byLabels, 403, 'ACCESS_DENIED', /no workload_identity with these labels is granted/);
  });

  it('template injection: "/", "..", "%", "{{" in an attribute never make a SPIFFE ID', async () => {
    for (const namespace of ['a/b', '..', '../../etc', '%2e%2e', 'x%2fy', '{{ user.name }}', 'a b']) {
      const r = await call(PATHS.workloadX509, {
        selector: { name: 'k8s' },
        public_key: publicKey,
        attributes: { kubernetes: { attested: true, namespace, service_account: 'a', pod_name: 'p', pod_uid: 'u' } },
      });
      refused(r, 400, 'BAD_REQUEST', /the value of workload\.kubernetes\.namespace cannot go into a SPIFFE ID path/);
    }
    // the template names an attribute this request lacks: said so
    refused(
      await call(PATHS.workloadX509, { selector: { name: 'k8s' }, public_key: publicKey }),
      403,
      'ACCESS_DENIED',
      /names workload\.kubernetes\.namespace, which this request does not have/,
    );
  });

  it('dns_sans: an attribute is one DNS label; no wildcard, no extra labels, no IP address (issue #16, L1)', async () => {
    await createIdentity(
      c,
      'sans',
      doc(
        'sans',
        'mine',
        '  spiffe:\n    id: /sans\n    x509: { dns_sans: ["{{ workload.kubernetes.pod_name }}.0.0.1"] }\n',
      ),
    );
    await createIdentity(
      c,
      'sans-svc',
      doc(
        'sans-svc',
        'mine',
        '  spiffe:\n    id: /sans-svc\n    x509: { dns_sans: ["{{ workload.kubernetes.pod_name }}.svc"] }\n',
      ),
    );
    const ask = (name: string, pod: string) =>
      call(PATHS.workloadX509, {
        selector: { name },
        public_key: publicKey,
        attributes: {
          kubernetes: { attested: true, namespace: 'n', service_account: 'a', pod_name: pod, pod_uid: 'u' },
        },
      });
    for (const pod of ['*', 'evil.com.x', '127.0.0.1'])
      refused(await ask('sans-svc', pod), 400, 'BAD_REQUEST', /cannot go into a DNS SAN: it must be one DNS label/);
    refused(await ask('sans', '127'), 400, 'BAD_REQUEST', /a DNS SAN may not be an IP address/);
    const ok = await ask('sans-svc', 'web-1');
    assert.equal(ok.status, 200, ok.text);
    assert.ok(new X509Certificate(ok.json.svids[0].cert_pem).subjectAltName?.includes('DNS:web-1.svc'));
  });

  it('a rule that does not match is refused; the operator sees which rule and why (tctl audit ls --failures)', async () => {
    const unix = (uid: number) => ({ unix: { attested: true, pid: 10, uid, gid: uid } });
    const r = await call(PATHS.workloadX509, {
      selector: { name: 'root-only' },
      public_key: publicKey,
      attributes: unix(1000),
    });
    refused(r, 403, 'ACCESS_DENIED', /its rules do not match this workload's attributes/);
    assert.doesNotMatch(r.text, /uid/);
    const audit = await c.tctlOk(['audit', 'ls', '--failures', '--type', 'workload_identity.x509', '--format', 'json']);
    // the newest refusal of this identity (a counted repeat of an earlier refusal may be written after it)
    const latest = (JSON.parse(audit) as Array<{ reason: string; attributes: unknown }>).find((e) =>
      e.reason.startsWith('root-only:'),
    );
    assert.equal(latest!.reason, 'root-only: rules.allow[0].conditions[0]: workload.unix.uid is "1000", not "0"');
    assert.deepEqual(latest!.attributes, unix(1000));
    const ok = await call(PATHS.workloadX509, {
      selector: { name: 'root-only' },
      public_key: publicKey,
      attributes: unix(0),
    });
    assert.equal(ok.status, 200, ok.text);
  });

  it('audiences: empty, too many, or too long are refused naming audiences', async () => {
    for (const [audiences, message] of [
      [[], /^audiences: at least one audience/],
      [Array.from({ length: 17 }, (_, i) => `a${i}`), /^audiences: at most 16 audiences/],
      [['x'.repeat(300)], /^audiences\[0\]: /],
      [[''], /^audiences\[0\]: /],
    ] as const)
      refused(await call(PATHS.workloadJwt, { selector: { name: 'k8s' }, audiences }), 400, 'BAD_REQUEST', message);
    // control and bidirectional characters would be signed into aud (issue #16, L5)
    for (const aud of ['a\u0000b', 'line\nbreak', '\u202eevil'])
      refused(
        await call(PATHS.workloadJwt, { selector: { name: 'k8s' }, audiences: ['ok', aud] }),
        400,
        'BAD_REQUEST',
        /^audiences\[1\]: control characters and bidirectional overrides are not allowed/,
      );
  });

  it('one request signs at most 32 SVIDs; a refusal of many is audited as a count and the first 5', async () => {
    const many = (n: number, group: string, team: string) =>
      Array.from(
        { length: n },
        (_, i) =>
          `kind: workload_identity\nversion: v1\nmetadata: { name: ${group}-${String(i).padStart(3, '0')}, ` +
          `labels: { team: ${team}, group: ${group} } }\nspec:\n  spiffe: { id: /${group}/${i} }\n`,
      ).join('---\n');
    await createIdentity(c, 'bulk', many(33, 'bulk', 'mine'));
    await createIdentity(c, 'forbidden', many(40, 'forbidden', 'theirs'));
    const r = await call(PATHS.workloadX509, { selector: { labels: { group: ['bulk'] } }, public_key: publicKey });
    refused(r, 400, 'BAD_REQUEST', /^selector: the selector matches 33 workload identities .*at most 32/);
    const denied = await call(PATHS.workloadX509, {
      selector: { labels: { group: ['forbidden'] } },
      public_key: publicKey,
    });
    refused(denied, 403, 'ACCESS_DENIED', /no workload_identity with these labels is granted/);
    const audit = await c.tctlOk(['audit', 'ls', '--failures', '--type', 'workload_identity.x509', '--format', 'json']);
    const latest = (JSON.parse(audit) as Array<{ reason: string }>).find((e) => e.reason.startsWith('forbidden-'));
    assert.match(latest!.reason, /^forbidden-000: no role of the bot .*; forbidden-004: .*; and 35 more$/);
    assert.ok(latest!.reason.length < 1500, String(latest!.reason.length));
    // the refusal goes to refusals.log (its line may reach the file a moment after the answer)
    const log = (name: string) => readFileSync(join(c.dataDir, 'audit', name), 'utf8');
    await waitFor('the refusal in refusals.log', () => /forbidden-000/.test(log('refusals.log')), 5000, 20);
    assert.doesNotMatch(log('events.log'), /"event":"workload_identity\.x509"[^\n]*forbidden-000/);
  });
});
