import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { z } from 'zod';
import { loadAuthConfig } from '../../src/auth/config.js';
import { isMwiError } from '../../src/errors.js';
import { oidcSection } from '../../src/join/jwt/jwks.js';
import { ec2Section } from '../../src/join/ec2/server.js';
import { iamSection } from '../../src/join/iam/server.js';
import { kubernetesSection } from '../../src/join/kubernetes/server.js';
import { azureSection } from '../../src/join/azure/config.js';
import { createJoinHandlers, SERVER_METHODS, SERVER_SECTIONS } from '../../src/join/servers.js';
import type { ServerDeps, ServerJoinMethod, ServerSection } from '../../src/join/types.js';
import { tempDir } from '../helpers/procs.js';

const deps: ServerDeps = {
  now: () => 0,
  markUsed: async () => true,
  fetchJson: async () => ({}),
  postJson: async () => ({ status: 500, body: null }),
  env: {},
};

it("mwi.yaml's join method sections come from the server halves that read them", () => {
  assert.deepEqual(SERVER_SECTIONS, [oidcSection, kubernetesSection, azureSection, iamSection, ec2Section]);
  // every method that verifies a JWT reads the oidc section; the AWS methods read their own
  for (const m of SERVER_METHODS.values()) {
    if (!['token', 'bound_keypair', 'iam', 'ec2'].includes(m.name))
      assert.ok(m.sections?.includes(oidcSection), m.name);
  }
  assert.deepEqual(SERVER_METHODS.get('iam')?.sections, [iamSection]);
  assert.deepEqual(SERVER_METHODS.get('ec2')?.sections, [ec2Section]);
  const handlers = createJoinHandlers(deps, {});
  assert.deepEqual([...handlers.keys()], [...SERVER_METHODS.keys()]);
});

it('mwi.yaml oidc and kubernetes: parsed by their sections, defaults when absent, the field named on failure', () => {
  const tmp = tempDir('join-sections');
  try {
    const file = join(tmp.path, 'mwi.yaml');
    writeFileSync(
      file,
      [
        'oidc:',
        '  endpoint_overrides: { "https://issuer.example": "http://127.0.0.1:9" }',
        '  min_refresh: 1m',
        'kubernetes: { api_server: "https://10.0.0.1", token_path: /tmp/t }',
        '',
      ].join('\n'),
    );
    assert.deepEqual(loadAuthConfig(file, {}).joinMethods, {
      oidc: { endpointOverrides: { 'https://issuer.example': 'http://127.0.0.1:9' }, minRefreshMs: 60_000 },
      kubernetes: { apiServer: 'https://10.0.0.1', caPath: undefined, tokenPath: '/tmp/t' },
      azure: {},
      iam: { fips: false },
      ec2: {},
    });
    const defaults = {
      oidc: {},
      kubernetes: { apiServer: undefined, caPath: undefined, tokenPath: undefined },
      azure: {},
      iam: { fips: false },
      ec2: {},
    };
    assert.deepEqual(loadAuthConfig(undefined, {}).joinMethods, defaults);
    writeFileSync(file, 'listen: 127.0.0.1:0\n');
    assert.deepEqual(loadAuthConfig(file, {}).joinMethods, defaults);
    for (const [body, message] of [
      ['oidc:\n  min_refresh: soon\n', 'oidc.min_refresh: expected a duration'],
      ['oidc:\n  endpoint_override: {}\n', 'oidc.endpoint_override: unknown key (expected one of the documented keys)'],
      ['kubernetes:\n  api_server: not a url\n', 'kubernetes.api_server: Invalid url'],
      [
        'kubernetess: {}\n',
        'kubernetess: unknown key ' +
          '(expected cluster_name, data_dir, listen, storage, tls_sans, https_keypairs, ' +
          'https_keypairs_reload_interval, oidc, kubernetes, azure, iam, ec2, connection_limits, audit, ' +
          'workload_identity)',
      ],
    ] as const) {
      writeFileSync(file, body);
      const named = (e: unknown) => isMwiError(e, 'BAD_CONFIG') && e.message === `${file}: ${message}`;
      assert.throws(() => loadAuthConfig(file, {}), named);
    }
  } finally {
    tmp.cleanup();
  }
});

it('a section is built once per process and shared; a method may read only the sections it declares', () => {
  let builds = 0;
  const shared: ServerSection<{ n: number }, { n: number }> = {
    key: 'shared',
    schema: z.object({ n: z.number() }).default({ n: 1 }),
    build: (options) => {
      builds++;
      return { n: options.n };
    },
  };
  const seen: unknown[] = [];
  const reader = (name: string): ServerJoinMethod => ({
    name,
    sections: [shared],
    create: (_deps, section) => {
      seen.push(section(shared));
      return { verify: async () => ({}) };
    },
  });
  createJoinHandlers(
    deps,
    { shared: { n: 7 } },
    new Map([
      ['a', reader('a')],
      ['b', reader('b')],
    ]),
  );
  assert.equal(builds, 1);
  assert.deepEqual(seen, [{ n: 7 }, { n: 7 }]);
  assert.strictEqual(seen[0], seen[1]);
  // absent from mwi.yaml: the section's defaults
  seen.length = 0;
  createJoinHandlers(deps, {}, new Map([['a', reader('a')]]));
  assert.deepEqual(seen, [{ n: 1 }]);
  const undeclared: ServerJoinMethod = { ...reader('c'), sections: [] };
  const methods = new Map([['c', undeclared]]);
  assert.throws(() => createJoinHandlers(deps, {}, methods), /c reads mwi.yaml section shared without declaring it/);
});
