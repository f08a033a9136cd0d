// The AWS joins: `iam` (a SigV4-signed sts:GetCallerIdentity the Auth Service sends to an STS
// stand-in on loopback, which checks the signature as AWS does) and `ec2` (instance identity
// documents signed in AWS's shape by a test CA the Auth Service is told is us-west-2's; with
// aws_role, also STS AssumeRole and EC2 DescribeInstances through an https stand-in on loopback).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PATHS } from '../../src/api/wire.js';
import { startAwsApi, type TestAwsApi } from '../../test/helpers/aws-ec2-api.js';
import { b64, signSts } from '../../test/helpers/aws.js';
import { iidJson, signIid, testRegionCa, type TestRegionCa } from '../../test/helpers/aws-iid.js';
import { startSts, testPrincipal, type TestPrincipal, type TestSts } from '../../test/helpers/sts.js';
import { cryptoBound, OPS } from '../crypto.js';
import { createResource, joinClient } from '../fixtures.js';
import { levels, type LoadBench } from '../measure.js';
import { drive } from '../stats.js';

const ACCOUNT = '123456789012';
const ROLE = `arn:aws:iam::${ACCOUNT}:role/bench-describe-instances`;

/** The stand-ins and the mwi.yaml that points the Auth Service at them. */
export interface AwsFixtures {
  sts: TestSts;
  principal: TestPrincipal;
  ca: TestRegionCa;
  /** STS AssumeRole and EC2 DescribeInstances for ec2 rules with aws_role (the Auth Service's `ec2.forward_url`). */
  ec2Api: TestAwsApi;
  /** mwi.yaml sections `iam` and `ec2`. */
  yaml: string;
  close(): Promise<void>;
}

export async function awsFixtures(dir: string): Promise<AwsFixtures> {
  const principal = testPrincipal(ACCOUNT, 'bench-role', 'bench');
  const sts = await startSts([principal]);
  const ca = await testRegionCa();
  const pem = join(dir, 'bench-us-west-2.pem');
  writeFileSync(pem, ca.pem);
  const ec2Api = await startAwsApi(dir, ACCOUNT);
  ec2Api.roles.add(ROLE);
  // the Auth Service, started after this, inherits the environment: its credentials for AssumeRole
  Object.assign(process.env, ec2Api.authEnv());
  const yaml =
    `iam:\n  forward_url: ${sts.url}\nec2:\n  region_certificates:\n    us-west-2: ${pem}\n` +
    `  forward_url: ${ec2Api.url}\n  forward_ca_path: ${ec2Api.caPath}\n`;
  return {
    sts,
    principal,
    ca,
    ec2Api,
    yaml,
    close: async () => {
      await sts.close();
      await ec2Api.close();
    },
  };
}

/** `iam` joins: a challenge, a request signed for it here (SigV4 is HMAC: cheap), the join. */
export async function iamJoins(b: LoadBench): Promise<void> {
  const { c, keys, aws } = b;
  const spec = { join_method: 'iam', bot_name: 'bench', allow: [{ aws_account: ACCOUNT }] };
  await createResource(c, { kind: 'token', metadata: { name: 'bench-iam' }, spec });
  const note = '2 requests/join, and the Auth Service asks STS (a stand-in in the load generator)';
  await levels(
    b,
    c,
    'join iam (STS stand-in)',
    cryptoBound(b.rates, OPS.iam),
    async () => {
      const api = joinClient(c);
      return {
        task: async (i) => {
          const ask = { token: 'bench-iam', join_method: 'iam', payload: {} };
          const ch = await api.call<{ challenge_id: string; challenge: string }>('POST', PATHS.challenge, ask);
          const { raw } = await signSts(aws.principal, { challenge: ch.challenge });
          const payload = { challenge_id: ch.challenge_id, sts_request: b64(raw) };
          const publicKey = keys[i % keys.length]!.publicKeyPem;
          await api.call('POST', PATHS.join, {
            token: 'bench-iam',
            join_method: 'iam',
            public_key: publicKey,
            payload,
          });
        },
        close: () => api.close(),
      };
    },
    note,
  );
}

/** `ec2` joins: each a document of another EC2 instance (one joins once), signed before the clock starts. */
export async function ec2Joins(b: LoadBench): Promise<void> {
  await ec2Rows(b, 'bench-ec2', [{ aws_account: ACCOUNT }], 'join ec2 (RSA-2048 PKCS#7)', 0);
  // the same with aws_role: + 1 DescribeInstances per join (the AssumeRole is cached per worker)
  const before = b.aws.ec2Api.calls.length;
  await ec2Rows(
    b,
    'bench-ec2-role',
    [{ aws_account: ACCOUNT, aws_role: ROLE }],
    'join ec2 with aws_role (STS, EC2 stand-in)',
    2 ** 40,
  );
  const calls = b.aws.ec2Api.calls.slice(before);
  if (b.aws.ec2Api.refused.length > 0) throw new Error(`stand-in refused: ${b.aws.ec2Api.refused.join(', ')}`);
  if (!calls.some((x) => x.startsWith('DescribeInstances'))) throw new Error('no DescribeInstances call was made');
}

async function ec2Rows(b: LoadBench, token: string, allow: unknown[], bench: string, base: number): Promise<void> {
  const { c, keys, aws } = b;
  const spec = { join_method: 'ec2', bot_name: 'bench', allow, aws_iid_ttl: '2h' };
  await createResource(c, { kind: 'token', metadata: { name: token }, spec });
  let next = base;
  await levels(
    b,
    c,
    bench,
    cryptoBound(b.rates, OPS.ec2),
    async (n) => {
      const docs: string[] = new Array<string>(n);
      const signed = await drive(n, 8, async (i) => {
        const instanceId = `i-${(next + i).toString(16).padStart(17, '0')}`;
        aws.ec2Api.instances.set(instanceId, { ownerId: ACCOUNT, region: 'us-west-2', state: 'running' });
        docs[i] = await signIid(iidJson({ instanceId }), aws.ca);
      });
      if (signed.errors) throw new Error(`signing ${n} documents: ${signed.firstError}`);
      next += n;
      const api = joinClient(c);
      return {
        task: async (i) => {
          const publicKey = keys[i % keys.length]!.publicKeyPem;
          const payload = { document: docs[i] };
          await api.call('POST', PATHS.join, {
            token,
            join_method: 'ec2',
            public_key: publicKey,
            payload,
          });
        },
        close: () => api.close(),
      };
    },
    base === 0
      ? 'reading the PKCS#7 (asn1js, pkijs: about 1.5 ms) costs more than its RSA verification'
      : 'as above, plus one DescribeInstances (https to a stand-in in the load generator) per join',
  );
}
