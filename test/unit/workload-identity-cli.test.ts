import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadAuthConfig } from '../../src/auth/config.js';
import { MWI } from '../../src/cli/help/mwi-table.js';
import { commandHelp, programHelp } from '../../src/cli/help/render.js';
import { TCTL } from '../../src/cli/help/tctl-table.js';
import { isMwiError } from '../../src/errors.js';
import { tempDir } from '../helpers/procs.js';

// A new user's walk-through of workload identity (issue #16): mwi.yaml's keys in --help, the
// issuer's trailing slash, tctl's help on auth export and auth sign --format db.

describe('workload identity: what a new user reads', () => {
  const tmp = tempDir('wi-cli');
  after(() => tmp.cleanup());
  const config = (yaml: string) => {
    const f = join(tmp.path, 'mwi.yaml');
    writeFileSync(f, `cluster_name: example\n${yaml}`);
    return () => loadAuthConfig(f, {});
  };

  it('workload_identity.issuer with a trailing slash: the error says the slash is the problem', () => {
    assert.throws(
      config('workload_identity:\n  issuer: https://auth.example.com/workload-identity/\n'),
      (e) =>
        isMwiError(e, 'BAD_CONFIG') &&
        /workload_identity\.issuer/.test(`${e.field} ${e.message}`) &&
        /remove the trailing "\/"/.test(e.message),
    );
    config('workload_identity:\n  issuer: https://auth.example.com/workload-identity\n')();
    config('workload_identity:\n  issuer: https://auth.example.com/\n')();
  });

  it("mwi start --help lists workload_identity among mwi.yaml's keys", () => {
    const start = commandHelp(
      MWI,
      MWI.commands.find((c) => c.path === 'start')!,
    );
    assert.match(start.replace(/\s+/g, ' '), /mwi\.yaml \(.*audit, workload_identity\)/);
  });

  it('tctl --help: auth export is not "the same as ca export"; auth sign --help covers --format db', () => {
    const all = programHelp(TCTL);
    assert.doesNotMatch(all, /the same as ca export/);
    assert.match(all.replace(/\s+/g, ' '), /auth export .*db-client, db, spiffe, jwt/);
    const sign = commandHelp(
      TCTL,
      TCTL.commands.find((c) => c.path === 'auth sign')!,
    ).replace(/\s+/g, ' ');
    assert.match(sign, /a database server certificate \(--format db\)/);
    assert.match(sign, /--format db: default 2190h/);
    assert.match(sign, /--out FILE .*with --format db a prefix: PREFIX\.crt, PREFIX\.key, PREFIX\.cas/);
    assert.match(sign, /tctl auth sign --format db --host db\.example\.com --out server/);
    for (const line of commandHelp(
      TCTL,
      TCTL.commands.find((c) => c.path === 'auth sign')!,
    ).split('\n'))
      assert.ok(line.length <= 120, line);
  });
});
