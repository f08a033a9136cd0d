import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { buildTbotFile, PROXY_ENV_VAR, readTbotFile, validateTbotConfig } from '../../src/agent/config.js';
import { isMwiError } from '../../src/errors.js';
import { cli, tempDir } from '../helpers/procs.js';

const PIN = `sha256:${'b'.repeat(64)}`;

function refused(raw: unknown, field: string, message: RegExp): void {
  assert.throws(
    () => validateTbotConfig(raw, {}),
    (e: unknown) => isMwiError(e, 'BAD_CONFIG') && e.field === field && message.test(e.message),
  );
}

/** Runs `fn` with $TELEPORT_PROXY set to `value` (tests in a file run one at a time). */
function withProxyEnv<T>(value: string | undefined, fn: () => T): T {
  const saved = process.env[PROXY_ENV_VAR];
  if (value === undefined) delete process.env[PROXY_ENV_VAR];
  else process.env[PROXY_ENV_VAR] = value;
  try {
    return fn();
  } finally {
    if (saved === undefined) delete process.env[PROXY_ENV_VAR];
    else process.env[PROXY_ENV_VAR] = saved;
  }
}

describe('tbot proxy_server (tbot.yaml), --proxy-server and $TELEPORT_PROXY', () => {
  const dir = tempDir('proxy-config');
  after(() => dir.cleanup());
  const onboarding = { join_method: 'token', token: 't' };

  it('proxy_server needs no ca_pins: it becomes the one address, marked for the system trust store', () => {
    const cfg = validateTbotConfig({ version: 'v2', proxy_server: 'mwi.example.com:443', onboarding }, {});
    assert.deepEqual(cfg.authServers, ['mwi.example.com:443']);
    assert.equal(cfg.proxyServer, 'mwi.example.com:443');
    assert.deepEqual(cfg.caPins, []);
    // and with pins, the pins stay (they win over the trust store at first contact)
    const pinned = validateTbotConfig(
      { version: 'v2', proxy_server: 'mwi.example.com:443', onboarding: { ...onboarding, ca_pins: [PIN] } },
      {},
    );
    assert.deepEqual(pinned.caPins, [PIN]);
    // auth_server alone keeps working, and still needs a pin
    const auth = validateTbotConfig(
      { version: 'v2', auth_server: '10.0.0.1:3025', onboarding: { ...onboarding, ca_pins: [PIN] } },
      {},
    );
    assert.equal(auth.proxyServer, undefined);
    refused(
      { version: 'v2', auth_server: '10.0.0.1:3025', onboarding },
      'onboarding.ca_pins',
      /required for the first join \(or onboarding\.ca_path; or proxy_server/,
    );
  });

  it('refuses auth_server with proxy_server (as Teleport does), neither, and a URL or list as proxy_server', () => {
    refused(
      { version: 'v2', auth_server: 'a:1', proxy_server: 'b:443', onboarding },
      'proxy_server',
      /cannot be set together with auth_server \(as in Teleport/,
    );
    refused({ version: 'v2', onboarding }, 'auth_server', /required: the Auth Service address.*or proxy_server/);
    refused({ version: 'v2', proxy_server: 'https://b:443', onboarding }, 'proxy_server', /expected HOST:PORT/);
    refused({ version: 'v2', proxy_server: 'a:1,b:2', onboarding }, 'proxy_server', /expected HOST:PORT/);
  });

  it('the flag, or $TELEPORT_PROXY, sets proxy_server over the file; with auth_server from anywhere it is refused', () => {
    const file = join(dir.path, 'tbot.yaml');
    writeFileSync(file, stringify({ version: 'v2', proxy_server: 'old:443', onboarding }));
    const fromFlag = withProxyEnv(undefined, () => buildTbotFile({ config: file, 'proxy-server': 'new:443' }));
    assert.equal(validateTbotConfig(fromFlag, {}).proxyServer, 'new:443');
    const fromEnv = withProxyEnv('env:443', () => buildTbotFile({ token: 't' }));
    assert.equal(validateTbotConfig(fromEnv, {}).proxyServer, 'env:443');
    assert.equal(
      withProxyEnv('env:443', () => buildTbotFile({ token: 't', 'proxy-server': 'flag:443' })).proxy_server,
      'flag:443',
    );
    const both = withProxyEnv('env:443', () => buildTbotFile({ token: 't', 'auth-server': 'a:1', 'ca-pin': [PIN] }));
    refused(both, 'proxy_server', /cannot be set together with auth_server/);
    assert.equal(validateTbotConfig(readTbotFile(file), {}).proxyServer, 'old:443');
  });

  it('tbot configure prints proxy_server and no pin', async () => {
    const r = await cli('tbot', ['configure', '--proxy-server', 'mwi.example.com:443', '--token', 'abc']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^proxy_server: mwi\.example\.com:443$/m);
    assert.doesNotMatch(r.stdout, /ca_pins|auth_server/);
    const both = await cli('tbot', ['configure', '--proxy-server', 'p:443', '--auth-server', 'a:1', '--token', 't']);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /proxy_server: cannot be set together with auth_server/);
  });
});
