import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { loadAuthConfig } from '../../src/auth/config.js';
import { isMwiError } from '../../src/errors.js';
import { ARM_DEFAULT, httpsArmClient, readVm } from '../../src/join/azure/arm.js';
import { azureSection } from '../../src/join/azure/config.js';
import { parseResourceId } from '../../src/join/azure/resource.js';
import { JoinRefusal } from '../../src/join/types.js';
import { startArm, type TestArm } from '../helpers/arm.js';
import { armVmId, STS, tokenClaims, vmResourceId, VM_ID } from '../helpers/azure.js';
import { startIssuer, type TestIssuer } from '../helpers/oidc-issuer.js';
import { tempDir } from '../helpers/procs.js';

describe('azure: the Azure Resource Manager client (the token VM lookup)', () => {
  const tmp = tempDir('azure-arm');
  let sts: TestIssuer;
  let arm: TestArm;
  let token: string;
  const vm = parseResourceId(vmResourceId())!;
  const client = (timeoutMs?: number) =>
    httpsArmClient({
      endpoint: new URL(arm.url),
      ca: readFileSync(arm.caFile, 'utf8'),
      ...(timeoutMs ? { timeoutMs } : {}),
    });
  const refused = (p: Promise<unknown>, reason: RegExp) =>
    assert.rejects(p, (e) => e instanceof JoinRefusal && reason.test(e.detail ?? ''));

  before(async () => {
    sts = await startIssuer({ issuer: STS });
    arm = await startArm(tmp.path, STS, () => sts.jwks());
    arm.addVm({ id: armVmId(), vmId: VM_ID.toUpperCase() });
    token = await sts.sign({ ...tokenClaims(), exp: Math.floor(Date.now() / 1000) + 3600 });
  });
  after(async () => {
    await arm?.close();
    await sts?.close();
    tmp.cleanup();
  });

  it("reads the VM with the caller's token: its vmId and ARM's spelling of its id", async () => {
    const got = await client().getVm(vm, token);
    assert.equal(got.vmId, VM_ID);
    assert.equal(got.vm.id, armVmId());
    assert.equal(got.vm.resourceGroup, 'Prod-RG');
    assert.equal(arm.requests.at(-1)!.token, token);
    // the stand-in checks the bearer token as ARM does
    await refused(client().getVm(vm, 'not-a-token'), /HTTP 401 InvalidAuthenticationToken/);
  });

  it('hostile names and answers are refusals, not crashes: a lone surrogate, an id nested 100,000 deep', () => {
    const g = '00000000-0000-4000-8000-000000000000';
    const vm = (name: string) =>
      `/subscriptions/${g}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/${name}`;
    // (before: accepted, then encodeURIComponent threw URIError out of the join)
    assert.equal(parseResourceId(vm('web-\uD800')), undefined);
    assert.ok(parseResourceId(vm('İstanbul-😀')), 'whole code points above U+00C0 are names');
    // (before: String(d.id) of the nested array overflowed the stack: RangeError)
    const deep = `{"id":${'['.repeat(100_000)}${']'.repeat(100_000)}}`;
    assert.throws(
      () => readVm(parseResourceId(vm('web'))!, 200, deep, 'https://arm.test'),
      (e) => e instanceof JoinRefusal && /an id of type object/.test(String(e.detail)),
    );
  });

  it('a slow ARM is given up after the timeout; a closed port is refused; both say why', async () => {
    arm.mode = 'slow';
    const t0 = Date.now();
    try {
      await refused(client(300).getVm(vm, token), /could not be asked .*no answer within 0.3s/);
    } finally {
      arm.mode = 'ok';
    }
    assert.ok(Date.now() - t0 < 3000);
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as { port: number }).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const down = httpsArmClient({ endpoint: new URL(`https://127.0.0.1:${port}`) });
    await refused(down.getVm(vm, token), /could not be asked .*ECONNREFUSED/);
  });

  it('the token goes over HTTPS to the configured host only, whose certificate must verify', async () => {
    assert.throws(() => httpsArmClient({ endpoint: new URL('http://127.0.0.1:1') }), TypeError);
    // without the test CA, the stand-in's certificate is not trusted: no request reaches it
    const before = arm.requests.length;
    await refused(httpsArmClient({ endpoint: new URL(arm.url) }).getVm(vm, token), /certificate/);
    assert.equal(arm.requests.length, before);
  });

  it('mwi.yaml azure.arm_endpoint (default Azure public cloud) and arm_ca_path; bad values name the field', () => {
    const deps = { now: Date.now } as never;
    const build = (o: unknown) => azureSection.build(azureSection.schema.parse(o), deps);
    assert.equal(build(undefined).arm.endpoint, ARM_DEFAULT);
    assert.equal(build({ arm_endpoint: arm.url, arm_ca_path: arm.caFile }).arm.endpoint, arm.url);
    const file = (name: string, text: string) => {
      const p = join(tmp.path, name);
      writeFileSync(p, text);
      return p;
    };
    for (const [body, message] of [
      [
        'azure:\n  arm_endpoint: http://127.0.0.1:8080\n',
        'azure.arm_endpoint: expected https://HOST[:PORT], without a path',
      ],
      [
        'azure:\n  arm_endpoint: https://management.azure.com/x\n',
        'azure.arm_endpoint: expected https://HOST[:PORT], without a path',
      ],
    ] as const) {
      const f = file('mwi.yaml', body);
      assert.throws(
        () => loadAuthConfig(f, {}),
        (e) => isMwiError(e, 'BAD_CONFIG') && e.message === `${f}: ${message}`,
        body,
      );
    }
    assert.throws(
      () => build({ arm_ca_path: file('empty.pem', 'nothing\n') }),
      (e) =>
        isMwiError(e, 'BAD_CONFIG') && e.field === 'azure.arm_ca_path' && /holds no PEM certificate/.test(e.message),
    );
  });
});
