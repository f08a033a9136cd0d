import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createLocalJWKSet, jwtVerify } from 'jose';
import type { TestCluster } from '../helpers/cluster.js';
import { run, waitFor, type CliProcess } from '../helpers/procs.js';
import {
  ROOT_ONLY,
  lines,
  startTbot,
  stopTbot,
  spawnWorkload,
  workload,
  workloadApiTbot,
  workloadScene,
} from '../helpers/workload-api.js';
import { createIdentity, svidServer } from '../helpers/workload-identity.js';

const CLUSTER = 'wlapi.example';
/** Two local uids that are not root, for workloads under other users (nobody, and one with no account). */
const NOBODY = { uid: 65534, gid: 65534 };
const STRANGER = { uid: 40123, gid: 40123 };

/** The SPIFFE Workload API of tbot with the independent Python client (issue #16). */
describe('workload api: tbot serves SPIFFE identities on a unix socket (python3-grpcio client)', ROOT_ONLY, () => {
  let c: TestCluster;
  let tmp: { path: string; cleanup: () => void };
  let client: string;
  let tbot: CliProcess | undefined;
  let socket: string;
  const root = { uid: 0, gid: 0 };

  before(async () => {
    // workloads under other uids must reach the socket and the client's files (not write here)
    ({ tmp, client, c } = await workloadScene('wlapi', CLUSTER));
    // the SPIFFE ID names the caller's uid; only root and nobody may have one
    await createIdentity(
      c,
      'by-uid',
      'kind: workload_identity\nversion: v1\nmetadata: { name: by-uid, labels: { team: wl } }\nspec:\n' +
        '  spiffe:\n    id: /uid/{{ workload.unix.uid }}\n    hint: by uid\n' +
        '  rules:\n    allow:\n      - conditions:\n          - attribute: workload.unix.uid\n' +
        `            in: { values: ["0", "${NOBODY.uid}"] }\n`,
    );
    socket = join(tmp.path, 'workload.sock');
    const file = await workloadApiTbot(
      c,
      { bot: 'wlbot', team: 'wl', dir: join(tmp.path, 'tbot'), socket, name: 'by-uid' },
      '    credential_ttl: 20s\n    renewal_interval: 10s\n',
    );
    tbot = await startTbot(file);
  });
  after(async () => {
    await stopTbot(tbot);
    await c?.stop();
    tmp?.cleanup();
  });

  it('makes the socket 0666 (attestation decides who gets what)', () => {
    const st = statSync(socket);
    assert.ok(st.isSocket());
    assert.equal(st.mode & 0o777, 0o666);
  });

  it('fetches an X.509-SVID that openssl verifies against the bundle, with its one URI SAN', async () => {
    const out = join(tmp.path, 'x509-root');
    const r = await workload(client, socket, ['x509', out], root);
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}\n${tbot?.out()}`);
    const [res] = lines(r);
    assert.deepEqual(res!.spiffe_ids, [`spiffe://${CLUSTER}/uid/0`]);
    assert.equal(res!.hint, 'by uid');
    const v = await run('openssl', ['verify', '-CAfile', join(out, 'bundle.pem'), join(out, 'svid.pem')]);
    assert.equal(v.code, 0, v.stdout + v.stderr);
    const san = await run('openssl', ['x509', '-in', join(out, 'svid.pem'), '-noout', '-ext', 'subjectAltName']);
    assert.match(san.stdout, new RegExp(`^\\s*URI:spiffe://${CLUSTER.replace('.', '\\.')}/uid/0\\s*$`, 'm'));
    // the private key is the certificate's
    const key = await run('openssl', ['pkey', '-in', join(out, 'svid_key.pem'), '-pubout']);
    const cert = await run('openssl', ['x509', '-in', join(out, 'svid.pem'), '-noout', '-pubkey']);
    assert.equal(key.stdout, cert.stdout);
  });

  it('two processes under different uids get different SPIFFE IDs from one socket', async () => {
    const a = await workload(client, socket, ['x509', join(tmp.path, 'x509-a')], root);
    // (a directory nobody may write its files to)
    mkdirSync(join(tmp.path, 'x509-b'), { mode: 0o777 });
    chmodSync(join(tmp.path, 'x509-b'), 0o777);
    const b = await workload(client, socket, ['x509', join(tmp.path, 'x509-b')], NOBODY);
    assert.equal(b.code, 0, `${b.stdout}${b.stderr}\n${tbot?.out()}`);
    assert.deepEqual(lines(a)[0]!.spiffe_ids, [`spiffe://${CLUSTER}/uid/0`]);
    assert.deepEqual(lines(b)[0]!.spiffe_ids, [`spiffe://${CLUSTER}/uid/${NOBODY.uid}`]);
  });

  it('a process matching no rule gets PermissionDenied', async () => {
    const r = await workload(client, socket, ['x509', join(tmp.path, 'x509-s')], STRANGER);
    assert.equal(r.code, 3, r.stdout + r.stderr);
    assert.equal(lines(r)[0]!.error, 'PERMISSION_DENIED');
    const j = await workload(client, socket, ['jwt', 'https://aud.example'], STRANGER);
    assert.equal(lines(j)[0]!.error, 'PERMISSION_DENIED');
    assert.ok(!existsSync(join(tmp.path, 'x509-s', 'svid.pem')));
  });

  it('a call without the workload.spiffe.io header gets InvalidArgument', async () => {
    const r = await workload(client, socket, ['noheader'], root);
    assert.equal(lines(r)[0]!.error, 'INVALID_ARGUMENT', r.stdout + r.stderr);
    assert.match(lines(r)[0]!.details, /security header/);
  });

  it('fetches a JWT-SVID that verifies against the bundle JWKS, and that ValidateJWTSVID accepts', async () => {
    const r = await workload(client, socket, ['jwt', 'https://aud.example'], NOBODY);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const { token, spiffe_ids } = lines(r)[0]!;
    assert.deepEqual(spiffe_ids, [`spiffe://${CLUSTER}/uid/${NOBODY.uid}`]);
    const b = lines(await workload(client, socket, ['bundles'], root))[0]!;
    const jwks = b.jwt[`spiffe://${CLUSTER}`];
    assert.ok(b.x509[`spiffe://${CLUSTER}`] >= 1);
    const { payload } = await jwtVerify(String(token), createLocalJWKSet(jwks), { audience: 'https://aud.example' });
    assert.equal(payload.sub, `spiffe://${CLUSTER}/uid/${NOBODY.uid}`);
    const v = await workload(client, socket, ['validate', 'https://aud.example', String(token)], STRANGER);
    assert.equal(v.code, 0, v.stdout + v.stderr);
    assert.equal(lines(v)[0]!.spiffe_id, `spiffe://${CLUSTER}/uid/${NOBODY.uid}`);
    assert.equal(lines(v)[0]!.claims.aud, 'https://aud.example');
    // FetchJWTSVID's spiffe_id picks one of the caller's identities; another's is PermissionDenied
    const mine = await workload(client, socket, ['jwt', 'https://aud.example', String(spiffe_ids[0])], NOBODY);
    assert.deepEqual(lines(mine)[0]!.spiffe_ids, spiffe_ids);
    const theirs = await workload(client, socket, ['jwt', 'https://aud.example', `spiffe://${CLUSTER}/uid/0`], NOBODY);
    assert.equal(lines(theirs)[0]!.error, 'PERMISSION_DENIED', theirs.stdout + theirs.stderr);
    const py = await workload(client, socket, ['pyjwt', 'https://aud.example', String(token)], root);
    assert.equal(py.code, 0, py.stdout + py.stderr);
    assert.equal(lines(py)[0]!.sub, `spiffe://${CLUSTER}/uid/${NOBODY.uid}`);
    const wrong = await workload(client, socket, ['validate', 'https://other.example', String(token)], root);
    assert.equal(lines(wrong)[0]!.error, 'INVALID_ARGUMENT');
  });

  it('tbot answers repeated calls of a workload from its cache: one issuance, not one per call', async () => {
    const issued = () => c.audit().filter((e) => e.event === 'workload_identity.jwt' && e.success !== false).length;
    const before = issued();
    const r = await workload(client, socket, ['jwt-repeat', 'https://cache.example', '3'], root);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const { tokens } = lines(r)[0]! as { tokens: string[] };
    assert.equal(new Set(tokens).size, 1, 'the same JWT-SVID three times');
    assert.equal(issued() - before, 1);
  });

  it('two workloads make an mTLS connection with their SVIDs (openssl s_server and s_client)', async () => {
    // the SVIDs of the earlier tests: root's (server) and nobody's (client), each verifying the other
    const a = join(tmp.path, 'x509-a');
    const b = join(tmp.path, 'x509-b');
    const server = await svidServer(
      { cert: join(a, 'svid.pem'), key: join(a, 'svid_key.pem'), bundle: join(a, 'bundle.pem') },
      ['-naccept', '1'],
      10_000,
    );
    try {
      const client = await run(
        'openssl',
        [
          's_client',
          '-connect',
          `127.0.0.1:${server.port}`,
          '-cert',
          join(b, 'svid.pem'),
          '-key',
          join(b, 'svid_key.pem'),
          '-CAfile',
          join(b, 'bundle.pem'),
          '-verify_return_error',
        ],
        { input: 'Q\n' },
      );
      assert.match(client.stdout, /Verify return code: 0 \(ok\)/, client.stdout + client.stderr);
      await waitFor('the server to verify the client SVID', () => /verify return:1/.test(server.out()), 10_000).catch(
        (err: unknown) => assert.fail(`${String(err)}: ${server.out()}`),
      );
    } finally {
      server.kill();
    }
  });

  it('a client holding FetchX509SVID receives a new SVID before the old one expires', async () => {
    const r = await workload(client, socket, ['stream', '2', '40'], root, 60_000);
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}\n${tbot?.out()}`);
    const [first, second] = lines(r);
    assert.ok(first && second, r.stdout);
    const a = new X509Certificate(String(first.cert));
    const b = new X509Certificate(String(second.cert));
    assert.notEqual(a.serialNumber, b.serialNumber);
    assert.ok(Number(second.at) * 1000 < Date.parse(a.validTo), 'the new SVID came before the old one expired');
    assert.equal(second.spiffe_id, `spiffe://${CLUSTER}/uid/0`);
  });
  it('a client holding FetchX509SVID receives an SVID of the new CA soon after tctl auth rotate --type spiffe', async () => {
    const py = spawnWorkload(client, socket, ['stream', '2', '40'], root);
    try {
      const first = await waitFor('the first SVID', () => py.lines()[0], 20_000);
      const rotated = Date.now();
      await c.tctlOk(['auth', 'rotate', '--type', 'spiffe']);
      const second = await waitFor('an SVID after the rotation', () => py.lines()[1], 20_000);
      const a = new X509Certificate(String(first.cert));
      const b = new X509Certificate(String(second.cert));
      const bundle = (second.bundle as string[]).map((p) => new X509Certificate(p));
      // signed by a CA that did not sign the first, and the bundle holds both (the old stays trusted)
      assert.ok(a.verify(new X509Certificate((first.bundle as string[])[0]!).publicKey));
      assert.ok(!b.verify(new X509Certificate((first.bundle as string[])[0]!).publicKey), 'a new CA signed it');
      assert.ok(bundle.some((ca) => b.verify(ca.publicKey)));
      assert.equal(bundle.length, 2);
      // the poll interval (5 s) bounds it, well before the first SVID's renewal at half its 20 s life
      assert.ok(Number(second.at) * 1000 - rotated < 8000, `${Number(second.at) * 1000 - rotated} ms`);
    } finally {
      py.kill('SIGKILL');
    }
  });
  it('while the Auth Service is unreachable a new workload gets Unavailable (clients retry), then its SVID', async () => {
    await c.halt();
    try {
      const r = await workload(client, socket, ['jwt', 'https://down.example'], root);
      assert.equal(lines(r)[0]!.error, 'UNAVAILABLE', r.stdout + r.stderr);
    } finally {
      await c.resume();
    }
    const back = await workload(client, socket, ['jwt', 'https://down.example'], root);
    assert.equal(back.code, 0, `${back.stdout}${back.stderr}\n${tbot?.out()}`);
  });
});
