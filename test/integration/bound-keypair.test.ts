import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { userInfo } from 'node:os';
import { after, before, describe, it } from 'node:test';
import { addJoinToken, joinFlags, startCluster, type TestCluster } from '../helpers/cluster.js';
import { cli, exited, spawnCli, waitFor } from '../helpers/procs.js';
import { sshRun, startSshd } from '../helpers/sshd.js';

describe('bound keypair joining with real tbot, tctl and mwi', () => {
  let c: TestCluster;
  let n = 0;
  const dir = (p: string) => join(c.dir, `${p}-${n}`);
  const bk = (token: string, storage: string | undefined, out: string, extra: string[] = []) => [
    'start',
    ...joinFlags(c, 'bound_keypair', token),
    ...(storage ? ['--data-dir', storage] : []),
    '--destination-dir',
    out,
    ...extra,
  ];
  const tokenFile = (name: string, bkSpec: string) => {
    const f = join(c.dir, `${name}.yaml`);
    writeFileSync(
      f,
      `kind: token\nversion: v2\nmetadata: { name: ${name} }\nspec:\n  join_method: bound_keypair\n` +
        `  bot_name: keeper\n  bound_keypair:\n${bkSpec}`,
    );
    return f;
  };
  const tokenStatus = async (name: string) =>
    JSON.parse(await c.tctlOk(['get', `token/${name}`, '--format', 'json']))[0].status?.bound_keypair ?? {};

  before(async () => {
    c = await startCluster();
    await c.addBot('keeper', [userInfo().username]);
  });
  after(async () => c?.stop());

  it('bots add --token / instances add --token: the printed line reads the registration secret from a file, and joins', async () => {
    n++;
    const secret = 'a-registration-secret-printed';
    const f = join(c.dir, `printed-${n}.yaml`);
    writeFileSync(
      f,
      `kind: token\nversion: v2\nmetadata: { name: printed-${n} }\nspec:\n  join_method: bound_keypair\n` +
        `  bot_name: printed-${n}\n  bound_keypair:\n    onboarding:\n      registration_secret: "${secret}"\n`,
    );
    await c.tctlOk(['create', f]);
    const added = await c.tctlOk(['bots', 'add', `printed-${n}`, '--roles', 'keeper-role', '--token', `printed-${n}`]);
    assert.match(added, /write the registration secret shown when the token was made [^]*\(0600\)/);
    const instance = await c.tctlOk(['bots', 'instances', 'add', `printed-${n}`, '--token', `printed-${n}`]);
    for (const text of [added, instance])
      assert.match(text, /--token=printed-\d+ \\\n\s+--registration-secret-path=\.\/registration-secret \\\n/);
    assert.doesNotMatch(added, new RegExp(secret), 'the secret is never printed again');
    // the pinned line, run as printed (with --oneshot) where the file is
    const lines = added.slice(added.lastIndexOf('> tbot start identity')).trim();
    const args = lines
      .split(/ \\\n\s+/)
      .slice(1)
      .map((a) => a.trim());
    assert.ok(args.includes('--registration-secret-path=./registration-secret'), lines);
    const cwd = dir('printed');
    mkdirSync(cwd, { recursive: true });
    // without the file, or without any secret: tbot says so itself (exit 2), naming the setting
    const noFile = await cli('tbot', ['start', 'identity', ...args, '--oneshot'], { cwd });
    assert.equal(noFile.code, 2, noFile.stderr);
    assert.match(noFile.stderr, /registration_secret_path: cannot read \.\/registration-secret: ENOENT/);
    const noSecret = args.filter((a) => !a.startsWith('--registration-secret-path'));
    const none = await cli('tbot', ['start', 'identity', ...noSecret, '--oneshot'], { cwd });
    assert.equal(none.code, 2, none.stderr);
    assert.match(none.stderr, /onboarding\.bound_keypair: nothing to register with: no registration secret/);
    writeFileSync(join(cwd, 'registration-secret'), `${secret}\n`, { mode: 0o600 });
    const r = await cli('tbot', ['start', 'identity', ...args, '--oneshot'], { cwd });
    assert.equal(r.code, 0, r.stderr);
    // the same line again once the secret is gone: the bound identity in storage is enough (M2)
    rmSync(join(cwd, 'registration-secret'));
    const again = await cli('tbot', ['start', 'identity', ...args, '--oneshot'], { cwd });
    assert.equal(again.code, 0, again.stderr);
    // bound now: the secret is no longer asked for
    const after = await c.tctlOk(['bots', 'instances', 'add', `printed-${n}`, '--token', `printed-${n}`]);
    assert.doesNotMatch(after, /registration-secret/);
  });

  it('registration secret: the first tbot binds its key; a second with the same secret is refused', async () => {
    n++;
    const out = await addJoinToken<{ token: string; registration_secret: string }>(c, 'keeper', 'bound_keypair');
    assert.match(out.registration_secret, /^[0-9a-f]{32}$/);
    const first = await cli(
      'tbot',
      bk(out.token, dir('s1'), dir('o1'), ['--registration-secret', out.registration_secret, '--oneshot']),
    );
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stderr, /bound keypair join .*recoveries_used=1/);
    const st = await tokenStatus(out.token);
    assert.match(st.bound_public_key, /^ssh-ed25519 /);
    // the key is in storage, 0600, and is the bound one
    const state = JSON.parse(readFileSync(join(dir('s1'), 'state.json'), 'utf8'));
    assert.equal(state.methods.bound_keypair.keys[0].public_key, st.bound_public_key);
    assert.equal(statSync(join(dir('s1'), 'state.json')).mode & 0o777, 0o600);
    const second = await cli('tbot', bk(out.token, dir('s2'), dir('o2'), ['--oneshot']), {
      env: { TBOT_REGISTRATION_SECRET: out.registration_secret },
    });
    assert.equal(second.code, 1);
    // refused like an unknown token (issue #9 finding 8); the administrator sees why
    assert.match(second.stderr, /the join was refused/);
    assert.ok(
      c
        .audit()
        .some(
          (e) =>
            e.event === 'bot.challenge' && /none of the offered keys is the key bound to this token/.test(e.reason),
        ),
    );
  });

  it('must_register_before: a join after it is refused', async () => {
    n++;
    const f = tokenFile(
      `late-${n}`,
      `    onboarding:\n      registration_secret: "a-registration-secret-0123"\n` +
        `      must_register_before: "${new Date(Date.now() + 1500).toISOString()}"\n`,
    );
    await c.tctlOk(['create', '-f', f]);
    await new Promise((r) => setTimeout(r, 1600));
    const r = await cli(
      'tbot',
      bk(`late-${n}`, dir('s'), dir('o'), ['--registration-secret', 'a-registration-secret-0123', '--oneshot']),
    );
    assert.equal(r.code, 1);
    assert.match(r.stderr, /the join was refused/);
    assert.ok(c.audit().some((e) => e.token_id === `late-${n}` && /registration window closed/.test(e.reason ?? '')));
  });

  it('pre-registered key from tbot keypair create joins without any secret; the SSH cert logs in to sshd', async () => {
    n++;
    const kp = await cli('tbot', ['keypair', 'create', '--storage', dir('s')]);
    assert.equal(kp.code, 0, kp.stderr);
    const pub = kp.stdout.trim();
    assert.match(pub, /^ssh-ed25519 AAAA\S+$/);
    // running it again keeps the key
    assert.equal((await cli('tbot', ['keypair', 'create', '--storage', dir('s')])).stdout.trim(), pub);
    await c.tctlOk(['create', '-f', tokenFile(`pre-${n}`, `    onboarding:\n      initial_public_key: "${pub}"\n`)]);
    const r = await cli('tbot', bk(`pre-${n}`, dir('s'), dir('o'), ['--oneshot']));
    assert.equal(r.code, 0, r.stderr);
    const sshd = await startSshd(c, join(c.dir, 'sshd-bk'));
    try {
      const login = await sshRun(dir('o'), sshd.port, userInfo().username, 'echo bound-keypair-login');
      assert.equal(login.code, 0, login.stderr);
      assert.equal(login.stdout.trim(), 'bound-keypair-login');
    } finally {
      await sshd.stop();
    }
  });

  it('recovery after the TTL within the limit; past it refused until an administrator raises recovery.limit', async () => {
    n++;
    const name = `rec-${n}`;
    const spec = (limit: number) =>
      `    onboarding:\n      registration_secret: "a-registration-secret-4567"\n    recovery:\n` +
      `      limit: ${limit}\n      mode: standard\n`;
    await c.tctlOk(['create', '-f', tokenFile(name, spec(2))]);
    const args = bk(name, dir('s'), dir('o'), [
      '--registration-secret',
      'a-registration-secret-4567',
      '--certificate-ttl',
      '2s',
      '--renewal-interval',
      '1s',
      '--oneshot',
    ]);
    assert.equal((await cli('tbot', args)).code, 0);
    await new Promise((r) => setTimeout(r, 2200));
    const rec = await cli('tbot', args);
    assert.equal(rec.code, 0, rec.stderr);
    assert.match(rec.stderr, /recovering with the bound keypair/);
    assert.match(rec.stderr, /recoveries_used=2 recoveries="0 of 2 remaining"/);
    await new Promise((r) => setTimeout(r, 2200));
    const refused = await cli('tbot', args);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /an administrator must raise recovery\.limit/);
    await c.tctlOk(['create', '-f', tokenFile(name, spec(3)), '--force']);
    const again = await cli('tbot', args);
    assert.equal(again.code, 0, again.stderr);
    const inst = await c.tctlOk(['bots', 'instances', 'ls', 'keeper']);
    assert.match(inst, /bound_keypair\s+3\/3/);
  });

  it('two tbots with the same private key at once: the second is refused', async () => {
    n++;
    const name = `stolen-${n}`;
    await c.tctlOk([
      'create',
      '-f',
      tokenFile(
        name,
        `    onboarding:\n      registration_secret: "a-registration-secret-8901"\n    recovery:\n      limit: 5\n`,
      ),
    ]);
    const first = await cli(
      'tbot',
      bk(name, dir('s'), dir('o'), ['--registration-secret', 'a-registration-secret-8901', '--oneshot']),
    );
    assert.equal(first.code, 0, first.stderr);
    // the thief copies the storage but not the live identity
    const stolen = JSON.parse(readFileSync(join(dir('s'), 'state.json'), 'utf8'));
    delete stolen.identity;
    const thief = dir('thief');
    cpSync(dir('s'), thief, { recursive: true, verbatimSymlinks: true });
    writeFileSync(join(thief, 'state.json'), JSON.stringify(stolen));
    const r = await cli('tbot', bk(name, thief, dir('o2'), ['--oneshot']));
    assert.equal(r.code, 1);
    assert.match(r.stderr, /another bot instance holds this bound keypair/);
  });

  it('rotation: tctl bound-keypair rotate; the running tbot rotates at its next renewal; the old key then fails', async () => {
    n++;
    const name = `rot-${n}`;
    await c.tctlOk([
      'create',
      '-f',
      tokenFile(
        name,
        `    onboarding:\n      registration_secret: "a-registration-secret-2345"\n    recovery:\n      limit: 5\n`,
      ),
    ]);
    const tbot = spawnCli(
      'tbot',
      bk(name, dir('s'), dir('o'), [
        '--registration-secret',
        'a-registration-secret-2345',
        '--certificate-ttl',
        '20s',
        '--renewal-interval',
        '1s',
      ]),
    );
    try {
      await waitFor('join', () => /bound keypair join/.test(tbot.out()));
      const oldKey = (await tokenStatus(name)).bound_public_key;
      const oldState = JSON.parse(readFileSync(join(dir('s'), 'state.json'), 'utf8'));
      await c.tctlOk(['bound-keypair', 'rotate', name]);
      await waitFor('rotation', () => /rotated=true/.test(tbot.out()), 15_000);
      const st = await tokenStatus(name);
      assert.notEqual(st.bound_public_key, oldKey);
      assert.equal(st.recovery_count, 1, 'a rotation is not a recovery');
      // a tbot holding only the old key fails
      const old = dir('old');
      delete oldState.identity;
      cpSync(dir('s'), old, { recursive: true, verbatimSymlinks: true });
      writeFileSync(join(old, 'state.json'), JSON.stringify(oldState));
      const r = await cli('tbot', bk(name, old, dir('o-old'), ['--oneshot']));
      assert.equal(r.code, 1);
      assert.match(r.stderr, /the join was refused/);
      assert.ok(
        c
          .audit()
          .some((e) => e.event === 'bot.challenge' && /none of the offered keys is the key bound/.test(e.reason)),
      );
    } finally {
      tbot.kill('SIGTERM');
      await exited(tbot);
    }
  });

  it('CI with a static key: --oneshot gets credentials and nothing of the key is written; misconfigured tokens say why', async () => {
    n++;
    const kp = await cli('tbot', ['keypair', 'create', '--static']);
    assert.equal(kp.code, 0, kp.stderr);
    const privateKey = /-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----\n/.exec(kp.stdout)![0];
    const pub = kp.stdout.trim().split('\n').at(-1)!;
    const keyBody = privateKey.split('\n')[1]!;
    await c.tctlOk([
      'create',
      '-f',
      tokenFile(
        `ci-${n}`,
        `    onboarding:\n      initial_public_key: "${pub}"\n    recovery:\n      mode: insecure\n`,
      ),
    ]);
    const env = { TBOT_BOUND_KEYPAIR_STATIC_KEY: privateKey };
    // three concurrent CI jobs sharing the key, memory storage (no --data-dir)
    const runs = await Promise.all(
      [1, 2, 3].map((i) => cli('tbot', bk(`ci-${n}`, undefined, dir(`ci-out-${i}`), ['--oneshot']), { env })),
    );
    for (const r of runs) assert.equal(r.code, 0, r.stderr);
    for (const i of [1, 2, 3]) {
      assert.ok(existsSync(join(dir(`ci-out-${i}`), 'tlscert')));
      for (const f of readdirSync(dir(`ci-out-${i}`), { recursive: true }) as string[]) {
        const p = join(dir(`ci-out-${i}`), f);
        if (statSync(p).isFile()) assert.ok(!readFileSync(p, 'utf8').includes(keyBody), `${p} holds the static key`);
      }
      assert.doesNotMatch(runs[i - 1]!.stderr, new RegExp(keyBody.slice(0, 20).replace(/[+/]/g, '.')));
    }
    // the same key on a standard-mode token: the second concurrent holder is told why
    await c.tctlOk(['create', '-f', tokenFile(`ci-std-${n}`, `    onboarding:\n      initial_public_key: "${pub}"\n`)]);
    assert.equal((await cli('tbot', bk(`ci-std-${n}`, undefined, dir('std-1'), ['--oneshot']), { env })).code, 0);
    const second = await cli('tbot', bk(`ci-std-${n}`, undefined, dir('std-2'), ['--oneshot']), { env });
    assert.equal(second.code, 1);
    assert.match(
      second.stderr,
      /only recovery\.mode insecure allows concurrent instances, e\.g\. for a static key shared by CI runs/,
    );
    // and a token that wants rotation
    await c.tctlOk([
      'create',
      '-f',
      tokenFile(
        `ci-rot-${n}`,
        `    onboarding:\n      initial_public_key: "${pub}"\n    recovery:\n      mode: insecure\n` +
          `    rotate_after: "${new Date(Date.now() - 1000).toISOString()}"\n`,
      ),
    ]);
    assert.equal((await cli('tbot', bk(`ci-rot-${n}`, undefined, dir('rot-1'), ['--oneshot']), { env })).code, 0);
    const rot = await cli('tbot', bk(`ci-rot-${n}`, undefined, dir('rot-2'), ['--oneshot']), { env });
    assert.equal(rot.code, 2);
    assert.match(rot.stderr, /a static key cannot rotate: remove rotate_after from the token/);
  });
});
