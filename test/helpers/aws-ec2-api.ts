import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { makePublicPki } from './public-pki.js';
import { readBody, sigv4Problem, testPrincipal, type TestPrincipal } from './sts.js';

/**
 * A stand-in for AWS's STS (AssumeRole) and EC2 (DescribeInstances) on https://127.0.0.1, for the
 * ec2 join's `aws_role` check: the Auth Service's `ec2.forward_url`. Every request's SigV4
 * signature is checked with sts.ts's own implementation of AWS's algorithm (the service and region
 * from the Host header the request names: sts.REGION.amazonaws.com or ec2.REGION.amazonaws.com);
 * answers are in AWS's XML shapes, errors with AWS's codes.
 */

/** An instance EC2 knows: the account it belongs to, its region and state. */
export interface TestInstance {
  ownerId: string;
  region: string;
  state: 'pending' | 'running' | 'shutting-down' | 'terminated' | 'stopping' | 'stopped';
}

/** How EC2 answers a DescribeInstances whose signature verified (the hostile tests' knobs). */
export type Ec2Mode = 'ok' | '403' | '500' | 'garbage' | 'slow' | 'redirect' | 'huge';

export interface TestAwsApi {
  /** https://127.0.0.1:PORT: `ec2.forward_url`. */
  url: string;
  /** The root of its certificate: `ec2.forward_ca_path`. */
  caPath: string;
  /** The Auth Service's own credentials (give them to mwi as AWS_ACCESS_KEY_ID etc., see `authEnv`). */
  auth: TestPrincipal;
  /** Roles the Auth Service may assume (ARN), and how long their credentials live (ms). */
  roles: Set<string>;
  assumedTtlMs: number;
  /** Instances by id. */
  instances: Map<string, TestInstance>;
  ec2Mode: Ec2Mode;
  /** Calls whose signature verified, in order: `AssumeRole ROLE` or `DescribeInstances ID REGION`. */
  calls: string[];
  /** Requests refused for their signature (AWS's error code). */
  refused: string[];
  /** The environment that gives `auth` to the AWS SDK's default chain. */
  authEnv(): Record<string, string>;
  close(): Promise<void>;
}

const STATE_CODES: Record<TestInstance['state'], number> = {
  pending: 0,
  running: 16,
  'shutting-down': 32,
  terminated: 48,
  stopping: 64,
  stopped: 80,
};

const escape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function xml(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/xml;charset=UTF-8' });
  res.end(`<?xml version="1.0" encoding="UTF-8"?>\n${body}`);
}

const stsError = (res: ServerResponse, status: number, code: string) =>
  xml(
    res,
    status,
    '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">\n  <Error>\n    <Type>Sender</Type>\n' +
      `    <Code>${code}</Code>\n    <Message>${code}</Message>\n  </Error>\n` +
      `  <RequestId>${randomUUID()}</RequestId>\n` +
      '</ErrorResponse>\n',
  );

const ec2Error = (res: ServerResponse, status: number, code: string, message = code) =>
  xml(
    res,
    status,
    `<Response><Errors><Error><Code>${code}</Code><Message>${escape(message)}</Message></Error></Errors>` +
      `<RequestID>${randomUUID()}</RequestID></Response>`,
  );

/** DescribeInstances's answer for one instance, with nested items AWS adds (a network interface's ownerId, tags). */
function describeAnswer(id: string, i: TestInstance): string {
  return `<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
    <requestId>${randomUUID()}</requestId>
    <reservationSet>
        <item>
            <reservationId>r-0123456789abcdef0</reservationId>
            <ownerId>${i.ownerId}</ownerId>
            <groupSet/>
            <instancesSet>
                <item>
                    <instanceId>${id}</instanceId>
                    <imageId>ami-0123456789abcdef0</imageId>
                    <instanceState>
                        <code>${STATE_CODES[i.state]}</code>
                        <name>${i.state}</name>
                    </instanceState>
                    <privateDnsName>ip-10-0-1-10.${i.region}.compute.internal</privateDnsName>
                    <networkInterfaceSet>
                        <item>
                            <networkInterfaceId>eni-0123456789abcdef0</networkInterfaceId>
                            <ownerId>999999999999</ownerId>
                            <status>in-use</status>
                        </item>
                    </networkInterfaceSet>
                    <tagSet>
                        <item><key>Name</key><value>web &amp; &lt;api&gt;</value></item>
                    </tagSet>
                </item>
            </instancesSet>
        </item>
    </reservationSet>
</DescribeInstancesResponse>
`;
}

/** Starts the stand-in (its https certificate issued for 127.0.0.1 by a test root made in `dir`). */
export async function startAwsApi(dir: string, account = '123456789012'): Promise<TestAwsApi> {
  const pki = await makePublicPki(dir);
  const tls = await pki.issue('aws-api', 'DNS:localhost,IP:127.0.0.1');
  const auth = testPrincipal(account, 'mwi-auth-service', 'auth');
  const principals = new Map<string, TestPrincipal>([[auth.accessKeyId, auth]]);
  /** Assumed credentials: access key id -> the role they are of. */
  const assumedRole = new Map<string, string>();
  const api: TestAwsApi = {
    url: '',
    caPath: pki.root,
    auth,
    roles: new Set(),
    assumedTtlMs: 3600_000,
    instances: new Map(),
    ec2Mode: 'ok',
    calls: [],
    refused: [],
    authEnv: () => ({
      AWS_ACCESS_KEY_ID: auth.accessKeyId,
      AWS_SECRET_ACCESS_KEY: auth.secretAccessKey,
      AWS_SESSION_TOKEN: auth.sessionToken,
    }),
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };

  function assumeRole(res: ServerResponse, p: TestPrincipal, form: URLSearchParams): void {
    const role = form.get('RoleArn') ?? '';
    // every call is counted, refused ones too
    api.calls.push(`AssumeRole ${role}`);
    // only the Auth Service's own credentials may assume, and only a role that trusts it
    if (p !== auth || !api.roles.has(role)) return stsError(res, 403, 'AccessDenied');
    const roleAccount = /^arn:aws[a-z-]*:iam::(\d{12}):role\//.exec(role)?.[1] ?? account;
    const creds = testPrincipal(roleAccount, role.replace(/^.*\//, ''), form.get('RoleSessionName') ?? 's');
    principals.set(creds.accessKeyId, creds);
    assumedRole.set(creds.accessKeyId, role);
    const expiration = new Date(Date.now() + api.assumedTtlMs).toISOString().replace(/\.\d+Z$/, 'Z');
    xml(
      res,
      200,
      `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <AssumedRoleUser>
      <Arn>${creds.arn}</Arn>
      <AssumedRoleId>${creds.userId}</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>${creds.accessKeyId}</AccessKeyId>
      <SecretAccessKey>${creds.secretAccessKey}</SecretAccessKey>
      <SessionToken>${creds.sessionToken}</SessionToken>
      <Expiration>${expiration}</Expiration>
    </Credentials>
  </AssumeRoleResult>
  <ResponseMetadata>
    <RequestId>${randomUUID()}</RequestId>
  </ResponseMetadata>
</AssumeRoleResponse>
`,
    );
  }

  function describeInstances(res: ServerResponse, p: TestPrincipal, region: string, form: URLSearchParams): void {
    // EC2 answers the assumed role, in the role's own account
    if (!assumedRole.has(p.accessKeyId)) return ec2Error(res, 403, 'UnauthorizedOperation');
    const id = form.get('InstanceId.1') ?? '';
    api.calls.push(`DescribeInstances ${id} ${region}`);
    if (api.ec2Mode === '403') return ec2Error(res, 403, 'UnauthorizedOperation');
    if (api.ec2Mode === '500') return ec2Error(res, 500, 'InternalError');
    if (api.ec2Mode === 'garbage') {
      res.writeHead(200, { 'content-type': 'text/xml' });
      res.end('<html><body>not <b>AWS</body>');
      return;
    }
    if (api.ec2Mode === 'redirect') {
      res.writeHead(307, { location: 'https://ec2.evil.example/' });
      res.end();
      return;
    }
    if (api.ec2Mode === 'huge') {
      res.writeHead(200, { 'content-type': 'text/xml' });
      res.end(`<DescribeInstancesResponse>${'<requestId>x</requestId>'.repeat(40_000)}</DescribeInstancesResponse>`);
      return;
    }
    if (api.ec2Mode === 'slow') {
      // headers at once, then a byte a second: only a bound on the whole answer stops it
      res.writeHead(200, { 'content-type': 'text/xml' });
      const t = setInterval(() => res.write(' '), 1000);
      res.on('close', () => clearInterval(t));
      return;
    }
    const i = api.instances.get(id);
    if (!i || i.region !== region)
      return ec2Error(res, 400, 'InvalidInstanceID.NotFound', `The instance ID '${id}' does not exist`);
    xml(res, 200, describeAnswer(id, i));
  }

  const server: Server = createServer(
    { cert: readFileSync(tls.cert), key: readFileSync(tls.key) },
    (req, res) =>
      void readBody(req).then((body) => {
        const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)]));
        const { problem, principal } = sigv4Problem(
          { method: req.method ?? '', path: req.url ?? '', headers, body },
          principals,
          Date.now(),
        );
        const host = headers.host ?? '';
        const sts = host.startsWith('sts.');
        if (problem) {
          api.refused.push(problem);
          return sts ? stsError(res, 403, problem) : ec2Error(res, 401, 'AuthFailure');
        }
        const form = new URLSearchParams(body.toString('utf8'));
        const action = form.get('Action');
        if (sts && action === 'AssumeRole' && form.get('Version') === '2011-06-15')
          return assumeRole(res, principal!, form);
        const region = /^ec2\.([a-z0-9-]+)\.amazonaws\.com/.exec(host)?.[1];
        if (region && action === 'DescribeInstances' && form.get('Version') === '2016-11-15')
          return describeInstances(res, principal!, region, form);
        return sts ? stsError(res, 400, 'InvalidAction') : ec2Error(res, 400, 'InvalidAction');
      }),
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  api.url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return api;
}
