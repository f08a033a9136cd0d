import assert from 'node:assert/strict';
import { createPublicKey } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { JWTPayload } from 'jose';
import { handleJoin } from '../../src/auth/join.js';
import { tokenKey } from '../../src/auth/tokens.js';
import { generateKeys } from '../../src/crypto/keys.js';
import { isMwiError } from '../../src/errors.js';
import { globMatch } from '../../src/join/jwt/allow.js';
import { checkFetchUrl, JwksCache } from '../../src/join/jwt/jwks.js';
import { testContext } from '../helpers/auth-context.js';
import { startIssuer, type TestIssuer } from '../helpers/oidc-issuer.js';

// Token specs in Teleport's shapes: where `allow` lives, the deprecated place, and the fields
// mwi lacked (gitlab rule fields, spacelift enable_glob_matching, kubernetes
// insecure_allow_http_issuer, bound_keypair's unset values), hostile values included.

type T = Awaited<ReturnType<typeof testContext>>;

/** Each platform method: its block's options, a rule that names the workload, one that names nothing. */
const METHODS: Array<{ method: string; options: Record<string, unknown>; rule: object; broad: object }> = [
  { method: 'github', options: {}, rule: { repository: 'octo/app' }, broad: { ref: 'refs/heads/main' } },
  {
    method: 'gitlab',
    options: { domain: 'gitlab.example.com' },
    rule: { project_path: 'grp/app' },
    broad: { ref: 'main' },
  },
  { method: 'kubernetes', options: { type: 'in_cluster' }, rule: { service_account: 'ns:sa' }, broad: {} },
  { method: 'circleci', options: { organization_id: 'org-1' }, rule: { project_id: 'p-1' }, broad: {} },
  { method: 'gcp', options: {}, rule: { project_ids: ['p-1'] }, broad: { locations: ['us-west1'] } },
  {
    method: 'terraform_cloud',
    options: { hostname: 'tfe.example.com' },
    rule: { organization_name: 'acme', workspace_name: 'prod' },
    broad: { run_phase: 'apply' },
  },
  {
    method: 'spacelift',
    options: { hostname: 'acme.app.spacelift.io' },
    rule: { space_id: 'root' },
    broad: { scope: 'write' },
  },
  {
    method: 'bitbucket',
    options: { identity_provider_url: 'https://bb.example.com/oidc', audience: 'ari:ws' },
    rule: { repository_uuid: '{r}' },
    broad: { branch_name: 'main' },
  },
  {
    method: 'azure_devops',
    options: { organization_id: 'org-guid' },
    rule: { project_name: 'web' },
    broad: { pipeline_name: 'deploy' },
  },
];

describe("token specs in Teleport's shapes", () => {
  let t: T;
  let n = 0;
  const create = (spec: Record<string, unknown>, name = `tok-${n++}`, upsert = false) =>
    t.admin.create({ kind: 'token', metadata: { name }, spec: { bot_name: 'b', ...spec } }, upsert, 'admin');
  const stored = async (name: string) =>
    JSON.parse((await t.ctx.backend.get(tokenKey(name)))!.value) as { spec: Record<string, any> };
  const refused = (p: Promise<unknown>, field: RegExp, message?: RegExp) =>
    assert.rejects(
      p,
      (e) => isMwiError(e, 'BAD_REQUEST') && field.test(e.field ?? '') && (!message || message.test(e.message)),
    );

  before(async () => {
    t = await testContext();
    await t.admin.create({ kind: 'role', metadata: { name: 'r' }, spec: {} }, false, 'admin');
    await t.admin.create({ kind: 'bot', metadata: { name: 'b' }, spec: { roles: ['r'] } }, false, 'admin');
  });

  for (const m of METHODS) {
    it(`${m.method}: the rules under spec.${m.method}.allow (Teleport's place) are stored and printed there`, async () => {
      const name = `new-${m.method}`;
      const reply = await create({ join_method: m.method, [m.method]: { ...m.options, allow: [m.rule] } }, name);
      assert.equal(reply.notes, undefined);
      const s = (await stored(name)).spec;
      assert.deepEqual(s[m.method], { ...m.options, allow: [m.rule] });
      assert.equal(s.allow, undefined);
      assert.deepEqual(((await t.admin.get('token', name)) as any).spec[m.method].allow, [m.rule]);
    });

    it(`${m.method}: spec.allow (deprecated) is accepted with a warning and stored in Teleport's place`, async () => {
      const name = `old-${m.method}`;
      const reply = await create({ join_method: m.method, allow: [m.rule], [m.method]: m.options }, name);
      assert.deepEqual(reply.notes, [
        `token "${name}": spec.allow is deprecated for join method ${m.method}: ` +
          `the rules were stored as spec.${m.method}.allow, where Teleport keeps them`,
      ]);
      const s = (await stored(name)).spec;
      assert.deepEqual(s[m.method], { ...m.options, allow: [m.rule] });
      assert.equal('allow' in s, false);
    });

    it(`${m.method}: rules in both places, or rules that name nothing, are refused naming where they were written`, async () => {
      const both = { join_method: m.method, allow: [m.rule], [m.method]: { ...m.options, allow: [m.rule] } };
      await refused(create(both), /^spec\.allow$/, new RegExp(`give the rules once, in spec\\.${m.method}\\.allow`));
      const block = (allow: unknown) => ({ join_method: m.method, [m.method]: { ...m.options, allow } });
      await refused(create(block([m.broad])), new RegExp(`^spec\\.${m.method}\\.allow\\[0\\]$`));
      await refused(create(block([m.rule, m.broad])), new RegExp(`^spec\\.${m.method}\\.allow\\[1\\]$`));
      await refused(create(block([])), new RegExp(`^spec\\.${m.method}\\.allow$`), /at least one allow rule/);
      await refused(
        create({ join_method: m.method, [m.method]: m.options }),
        new RegExp(`^spec\\.${m.method}\\.allow$`),
      );
      for (const hostile of [null, 42, 'x', { a: 1 }, [[m.rule]], [{ ...m.rule, unknown_field: 'x' }]])
        await refused(create(block(hostile)), new RegExp(`^spec\\.${m.method}\\.allow`), undefined);
      // the block itself is still checked by the method (no mapping, or an unknown option)
      await refused(
        create({ join_method: m.method, allow: [m.rule], [m.method]: 'x' }),
        new RegExp(`^spec\\.${m.method}$`),
      );
      const bogus = { join_method: m.method, [m.method]: { ...m.options, allow: [m.rule], bogus: 1 } };
      await refused(create(bogus), new RegExp(`^spec\\.${m.method}\\.bogus$`));
    });
  }

  it("a token stored with spec.allow (before mwi followed Teleport) is printed in Teleport's place", async () => {
    const spec = { roles: ['Bot'], join_method: 'github', bot_name: 'b', allow: [{ repository: 'octo/app' }] };
    await t.ctx.backend.create(
      tokenKey('legacy'),
      JSON.stringify({ kind: 'token', version: 'v2', metadata: { name: 'legacy' }, spec }),
    );
    const got = (await t.admin.get('token', 'legacy')) as any;
    assert.deepEqual(got.spec, {
      roles: ['Bot'],
      join_method: 'github',
      bot_name: 'b',
      github: { allow: [{ repository: 'octo/app' }] },
    });
    const listed = (await t.admin.list('token')).items.find((i) => i.metadata.name === 'legacy') as any;
    assert.deepEqual(listed.spec.github, { allow: [{ repository: 'octo/app' }] });
  });

  it('token and bound_keypair take no allow rules: refused saying why; an empty list is only noted', async () => {
    await refused(
      create({ join_method: 'token', allow: [{ repository: 'octo/app' }] }, '0123456789abcdef0123'),
      /^spec\.allow$/,
      /join method token takes no allow rules, in Teleport as in mwi: the join proves the secret/,
    );
    await refused(
      create({ join_method: 'bound_keypair', allow: [{}] }),
      /^spec\.allow$/,
      /join method bound_keypair takes no allow rules.*registered key/,
    );
    const reply = await create({ join_method: 'bound_keypair', allow: [] }, 'bk-empty-allow');
    assert.ok(
      reply.notes?.includes('token "bk-empty-allow": spec.allow is not used by join method bound_keypair (ignored)'),
    );
  });

  it("spec keys no method reads are kept and noted; a secret token's note names its id, never the secret", async () => {
    const secret = 'fedcba98765432100123456789abcdef';
    const reply = await create({ join_method: 'token', suggested_labels: { a: ['b'] }, github: {} }, secret);
    assert.match(reply.name, /^h-[0-9a-f]{16}$/);
    assert.deepEqual(reply.notes, [
      `token "${reply.name}": spec.suggested_labels is not used by join method token (ignored)`,
      `token "${reply.name}": spec.github is not used by join method token (ignored)`,
    ]);
    assert.ok(!JSON.stringify(reply).includes(secret));
    assert.deepEqual((await stored(reply.name)).spec.suggested_labels, { a: ['b'] });
  });

  it('gitlab: user_id, ci_config_sha, ci_config_ref_uri, deployment_tier, project_visibility; ci_config_ref_uri names the workload', async () => {
    const gl = (rule: Record<string, unknown>) => create({ join_method: 'gitlab', gitlab: { allow: [rule] } });
    const fields = {
      user_id: '13',
      ci_config_sha: '714a629c0b401fdce83e847fc9589983fc6f46bc',
      ci_config_ref_uri: 'gitlab.example.com/grp/app//.gitlab-ci.yml@refs/heads/main',
      deployment_tier: 'production',
      project_visibility: 'private',
    };
    await gl({ project_path: 'grp/app', ...fields });
    await gl({ ci_config_ref_uri: fields.ci_config_ref_uri });
    for (const f of ['user_id', 'ci_config_sha', 'deployment_tier', 'project_visibility']) {
      await refused(
        gl({ [f]: 'x' }),
        /^spec\.gitlab\.allow\[0\]$/,
        /at least one of: sub, project_path, namespace_path, ci_config_ref_uri/,
      );
      for (const hostile of [42, true, null, '', ['x'], { a: 1 }])
        await refused(
          gl({ project_path: 'grp/app', [f]: hostile }),
          new RegExp(`^spec\\.gitlab\\.allow\\[0\\]\\.${f}$`),
        );
    }
  });

  it('spacelift: enable_glob_matching must be a boolean; with it, rules of wildcards only are refused', async () => {
    const sl = (options: Record<string, unknown>, rule: Record<string, unknown>) =>
      create({ join_method: 'spacelift', spacelift: { hostname: 'acme.app.spacelift.io', ...options, allow: [rule] } });
    for (const hostile of ['true', 1, null, []])
      await refused(
        sl({ enable_glob_matching: hostile }, { space_id: 'root' }),
        /^spec\.spacelift\.enable_glob_matching$/,
      );
    await refused(
      sl({ enable_glob_matching: true }, { space_id: '*' }),
      /^spec\.spacelift\.allow\[0\]$/,
      /glob fields need more than wildcards/,
    );
    await refused(
      sl({ enable_glob_matching: true }, { space_id: '?*?', caller_id: '**' }),
      /^spec\.spacelift\.allow\[0\]$/,
    );
    await sl({ enable_glob_matching: true }, { space_id: 'ro??', caller_id: 'machineid-*' });
    // without the switch a star is a character like any other
    await sl({}, { space_id: '*' });
  });

  it("kubernetes oidc: an http:// issuer only with insecure_allow_http_issuer (Teleport's meaning)", async () => {
    const k8s = (oidc: Record<string, unknown>) =>
      create({ join_method: 'kubernetes', kubernetes: { type: 'oidc', oidc, allow: [{ service_account: 'ns:sa' }] } });
    await refused(
      k8s({ issuer: 'http://oidc.example.com' }),
      /^spec\.kubernetes\.oidc\.issuer$/,
      /must be https:\/\/ unless insecure_allow_http_issuer is set/,
    );
    await refused(
      k8s({ issuer: 'http://oidc.example.com', insecure_allow_http_issuer: false }),
      /^spec\.kubernetes\.oidc\.issuer$/,
    );
    await refused(
      k8s({ issuer: 'ftp://oidc.example.com', insecure_allow_http_issuer: true }),
      /^spec\.kubernetes\.oidc\.issuer$/,
    );
    await refused(
      k8s({ issuer: 'http://oidc.example.com', insecure_allow_http_issuer: 'yes' }),
      /insecure_allow_http_issuer$/,
    );
    await k8s({ issuer: 'http://oidc.example.com', insecure_allow_http_issuer: true });
    await k8s({ issuer: 'https://oidc.example.com', insecure_allow_http_issuer: false });
  });

  it('bound_keypair: "" and null read as unset (as Teleport prints them), limit 0 as 1, mode "" as standard', async () => {
    const bk = (bound_keypair: Record<string, unknown>, name?: string) =>
      create({ join_method: 'bound_keypair', bound_keypair }, name);
    const reply = await bk(
      {
        onboarding: { initial_public_key: '', registration_secret: '', must_register_before: null },
        recovery: { limit: 0, mode: '' },
        rotate_after: '',
      },
      'bk-unset',
    );
    // neither a secret nor a key: one was generated, shown once
    assert.match(reply.shown_once?.registration_secret ?? '', /^[0-9a-f]{32}$/);
    const s = (await stored('bk-unset')).spec.bound_keypair;
    assert.deepEqual(Object.keys(s.onboarding), ['registration_secret_hash']);
    assert.deepEqual(s.recovery, { limit: 1, mode: 'standard' });
    assert.equal(s.rotate_after, undefined);
    await bk({
      onboarding: { registration_secret: 'a-secret-of-16-chars' },
      recovery: { limit: 3, mode: 'relaxed' },
      rotate_after: null,
    });
    await bk({ onboarding: { registration_secret: 'a-secret-of-16-chars' }, recovery: { mode: 'insecure' } });
    const secret = { registration_secret: 'a-secret-of-16-chars' };
    for (const limit of [-1, 1.5, 2 ** 32, '1', null])
      await refused(bk({ onboarding: secret, recovery: { limit } }), /^spec\.bound_keypair\.recovery\.limit$/);
    await refused(
      bk({ onboarding: secret, recovery: { mode: 'lenient' } }),
      /^spec\.bound_keypair\.recovery\.mode$/,
      /standard.*relaxed.*insecure/,
    );
    await refused(bk({ onboarding: { ...secret, must_register_before: 'tomorrow' } }), /must_register_before$/);
    await refused(bk({ onboarding: secret, rotate_after: 42 }), /^spec\.bound_keypair\.rotate_after$/);
    await refused(bk({ onboarding: { registration_secret: 'short' } }), /registration_secret$/);
  });

  it('a token named by its secret re-applies by the id tctl get prints: the secret is kept; an unknown id is refused', async () => {
    const secret = '00112233445566778899aabbccddeeff';
    const { name: id } = await create({ join_method: 'token' }, secret);
    const before = (await t.ctx.backend.get(tokenKey(id)))!;
    const printed = (await t.admin.get('token', id)) as any;
    await assert.rejects(t.admin.create(printed, false, 'admin'), (e) => isMwiError(e, 'ALREADY_EXISTS'));
    const labelled = { ...printed, metadata: { ...printed.metadata, labels: { team: 'a' } } };
    assert.equal((await t.admin.create(labelled, true, 'admin')).name, id);
    const after = JSON.parse((await t.ctx.backend.get(tokenKey(id)))!.value);
    assert.equal(after.secret_hash, JSON.parse(before.value).secret_hash);
    assert.deepEqual(after.metadata.labels, { team: 'a' });
    await assert.rejects(
      t.admin.create({ ...printed, metadata: { name: 'h-0000000000000000' } }, true, 'admin'),
      (e) =>
        isMwiError(e, 'NOT_FOUND') && e.field === 'metadata.name' && /keeps only a hash of the secret/.test(e.message),
    );
  });

  it('a token replaced while a join changes it is not written over: the replace fails and can be retried', async () => {
    await create({ join_method: 'github', github: { allow: [{ repository: 'octo/app' }] } }, 'raced');
    const backend = t.ctx.backend;
    const get = backend.get.bind(backend);
    backend.get = async (k) => {
      const item = await get(k);
      // a join writes the token between this read and the replace
      if (item && k === tokenKey('raced')) await backend.put(k, item.value);
      return item;
    };
    try {
      await assert.rejects(
        create({ join_method: 'github', github: { allow: [{ repository: 'octo/other' }] } }, 'raced', true),
        (e) => isMwiError(e, 'COMPARE_FAILED') && /changed concurrently/.test(e.message),
      );
    } finally {
      backend.get = get;
    }
    await create({ join_method: 'github', github: { allow: [{ repository: 'octo/other' }] } }, 'raced', true);
    assert.deepEqual((await stored('raced')).spec.github.allow, [{ repository: 'octo/other' }]);
  });
});

describe("joins with tokens in Teleport's shapes (real issuers on 127.0.0.1)", () => {
  let t: T;
  let gl: TestIssuer;
  let sl: TestIssuer;
  let k8s: TestIssuer;
  let pub: string;
  let n = 0;
  const HTTP_ISSUER = 'http://oidc.k8s.example';
  const token = async (spec: Record<string, unknown>) => {
    const name = `j-${n++}`;
    await t.admin.create({ kind: 'token', metadata: { name }, spec: { bot_name: 'b', ...spec } }, false, 'admin');
    return name;
  };
  const join = async (name: string, method: string, iss: TestIssuer, claims: JWTPayload) =>
    handleJoin(
      t.ctx,
      {
        token: name,
        join_method: method,
        public_key: pub,
        payload: { id_token: await iss.sign({ jti: `${n++}`, ...claims }) },
      },
      '-',
    );
  const denied = (p: Promise<unknown>) => assert.rejects(p, (e) => isMwiError(e, 'JOIN_DENIED'));

  before(async () => {
    gl = await startIssuer({ issuer: 'https://gitlab.com' });
    sl = await startIssuer({ issuer: 'https://acme.app.spacelift.io' });
    k8s = await startIssuer({ issuer: HTTP_ISSUER, alg: 'ES256' });
    t = await testContext({
      endpointOverrides: {
        'https://gitlab.com': gl.url,
        'https://acme.app.spacelift.io': sl.url,
        [HTTP_ISSUER]: k8s.url,
      },
    });
    pub = (await generateKeys('ec-p256')).publicKeyPem;
    await t.admin.create({ kind: 'role', metadata: { name: 'r' }, spec: {} }, false, 'admin');
    await t.admin.create({ kind: 'bot', metadata: { name: 'b' }, spec: { roles: ['r'] } }, false, 'admin');
  });
  after(async () => {
    await gl?.close();
    await sl?.close();
    await k8s?.close();
  });

  it('gitlab: each new rule field matches the ID token claim of the same name, exactly', async () => {
    const base = { sub: 'project_path:grp/app:ref_type:branch:ref:main', project_path: 'grp/app', aud: 'unit' };
    const values: Record<string, string> = {
      user_id: '13',
      ci_config_sha: '714a629c0b401fdce83e847fc9589983fc6f46bc',
      ci_config_ref_uri: 'gitlab.com/grp/app//.gitlab-ci.yml@refs/heads/main',
      deployment_tier: 'production',
      project_visibility: 'private',
    };
    for (const [field, value] of Object.entries(values)) {
      const name = await token({
        join_method: 'gitlab',
        gitlab: { allow: [{ project_path: 'grp/app', [field]: value }] },
      });
      await join(name, 'gitlab', gl, { ...base, [field]: value });
      await denied(join(name, 'gitlab', gl, { ...base, [field]: `${value}x` }));
      await denied(join(name, 'gitlab', gl, { ...base, [field]: value.slice(1) }));
      await denied(join(name, 'gitlab', gl, base));
    }
    // a rule naming only the pipeline definition
    const byConfig = await token({
      join_method: 'gitlab',
      gitlab: { allow: [{ ci_config_ref_uri: values.ci_config_ref_uri }] },
    });
    await join(byConfig, 'gitlab', gl, { ...base, ci_config_ref_uri: values.ci_config_ref_uri });
  });

  it('spacelift: enable_glob_matching makes space_id and caller_id globs (anchored); other fields stay exact', async () => {
    const claims = {
      sub: 'space:root:stack:machineid-x',
      aud: 'acme.app.spacelift.io',
      spaceId: 'root',
      callerId: 'machineid-x',
      callerType: 'stack',
    };
    const glob = await token({
      join_method: 'spacelift',
      spacelift: {
        hostname: 'acme.app.spacelift.io',
        enable_glob_matching: true,
        allow: [{ space_id: 'ro??', caller_id: 'machineid-*' }],
      },
    });
    await join(glob, 'spacelift', sl, claims);
    await denied(join(glob, 'spacelift', sl, { ...claims, spaceId: 'roots' }));
    await denied(join(glob, 'spacelift', sl, { ...claims, spaceId: 'xroot' }));
    await denied(join(glob, 'spacelift', sl, { ...claims, callerId: 'other-machineid-x' }));
    const exactType = await token({
      join_method: 'spacelift',
      spacelift: {
        hostname: 'acme.app.spacelift.io',
        enable_glob_matching: true,
        allow: [{ space_id: 'root', caller_type: 'st*' }],
      },
    });
    await denied(join(exactType, 'spacelift', sl, claims));
    const literal = await token({
      join_method: 'spacelift',
      spacelift: { hostname: 'acme.app.spacelift.io', allow: [{ space_id: 'ro??' }] },
    });
    await denied(join(literal, 'spacelift', sl, claims));
    await join(literal, 'spacelift', sl, { ...claims, spaceId: 'ro??' });
  });

  it('kubernetes oidc with an http:// issuer joins when insecure_allow_http_issuer allows it', async () => {
    const name = await token({
      join_method: 'kubernetes',
      kubernetes: {
        type: 'oidc',
        oidc: { issuer: HTTP_ISSUER, insecure_allow_http_issuer: true },
        allow: [{ service_account: 'ns:sa' }],
      },
    });
    await join(name, 'kubernetes', k8s, {
      sub: 'system:serviceaccount:ns:sa',
      aud: ['unit'],
      'kubernetes.io': { namespace: 'ns', serviceaccount: { name: 'sa' }, pod: { name: 'p' } },
    });
  });
});

describe('glob matching and http issuers', () => {
  it('globMatch: * any run, ? one character (a code point), anchored, everything else literal', () => {
    assert.ok(globMatch('ro??', 'root'));
    assert.ok(!globMatch('ro??', 'roo'));
    assert.ok(!globMatch('ro??', 'roots'));
    assert.ok(globMatch('a*b*c', 'aXXbYYc'));
    assert.ok(!globMatch('a*b*c', 'aXXbYYcd'));
    assert.ok(globMatch('*', ''));
    assert.ok(!globMatch('', 'x'));
    assert.ok(globMatch('?', '😀'));
    assert.ok(!globMatch('a.b', 'axb'));
    assert.ok(globMatch('a[b]+(c)|$^\\', 'a[b]+(c)|$^\\'));
    assert.ok(globMatch('*x', 'a*x'));
    assert.ok(globMatch('**a**', 'bab'));
  });

  it('globMatch: a pattern of many stars against a long claim answers at once (no backtracking blow-up)', () => {
    const start = performance.now();
    assert.ok(!globMatch(`${'*a'.repeat(40)}*b`, 'a'.repeat(20_000)));
    assert.ok(!globMatch(`${'?*'.repeat(200)}x`, 'y'.repeat(5_000)));
    assert.ok(performance.now() - start < 2_000, `${performance.now() - start} ms`);
  });

  it('an http:// issuer is fetched only when its token allows it, discovery and keys alike', async () => {
    assert.throws(() => checkFetchUrl('http://oidc.example.com/x', 'f'), /must be an https:\/\/ URL/);
    assert.equal(checkFetchUrl('http://oidc.example.com/x', 'f', true).host, 'oidc.example.com');
    assert.throws(() => checkFetchUrl('ftp://oidc.example.com/x', 'f', true), /must be an https:\/\/ URL/);
    const issuer = 'http://oidc.example.com';
    const calls: Array<[string, boolean]> = [];
    const jwk = {
      ...createPublicKey((await generateKeys('ec-p256')).publicKeyPem).export({ format: 'jwk' }),
      kid: 'k1',
    };
    const cache = new JwksCache({
      async fetchJson(url, opts) {
        calls.push([url, opts?.allowHttp === true]);
        // what the Auth Service's fetch does first
        checkFetchUrl(url, 'issuer', opts?.allowHttp === true);
        return url.endsWith('/openid-configuration') ? { issuer, jwks_uri: `${issuer}/keys` } : { keys: [jwk] };
      },
    });
    await assert.rejects(cache.keysFor(issuer, 'k1'), /must be an https:\/\/ URL/);
    await cache.keysFor(issuer, 'k1', true);
    assert.deepEqual(calls.slice(1), [
      [`${issuer}/.well-known/openid-configuration`, true],
      [`${issuer}/keys`, true],
    ]);
  });
});
