import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startCluster, tbotFlags, type TestCluster } from '../helpers/cluster.js';
import { cli, exited, spawnCli, waitFor, type CliProcess } from '../helpers/procs.js';
import { freePort } from '../helpers/sshd.js';

/** GET `path` on a tbot's diagnostics port: status and parsed body, or undefined while it is not listening. */
async function diag(port: number, path: string): Promise<{ status: number; body: any } | undefined> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`).catch(() => undefined);
  return res && { status: res.status, body: await res.json() };
}

/** Stops a daemon with `signal` and expects exit code 0. */
async function stop(tbot: CliProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  tbot.kill(signal);
  assert.equal(await exited(tbot), 0, tbot.out());
}

/** Issue #12, "tbot must not strand its user": each test is one item, with real mwi, tctl and tbot. */
describe('tbot must not strand its user', () => {
  let c: TestCluster;
  let n = 0;
  const paths = () => {
    n++;
    return { storage: join(c.dir, `st-${n}`), out: join(c.dir, `out-${n}`) };
  };
  /** tbotFlags without --token: what a restart from storage runs with. */
  const noToken = (token: string, storage: string, out?: string) => {
    const f = tbotFlags(c, token, storage, out);
    f.splice(f.indexOf('--token'), 2);
    return f;
  };
  const joins = (bot: string) => c.audit().filter((e) => e.event === 'bot.join' && e.success && e.bot_name === bot);
  before(async () => {
    c = await startCluster();
  });
  after(async () => c?.stop());

  it('1, 5: ready right after a join (no SIGHUP); a restart resumes from storage without the token, ready too', async () => {
    const token = await c.addBot('ready', ['deploy']);
    const p = paths();
    const port = await freePort();
    const daemon = (flags: string[]) =>
      spawnCli('tbot', ['start', ...flags, '--diag-addr', `127.0.0.1:${port}`, '--renewal-interval', '20m']);
    let tbot = daemon(tbotFlags(c, token, p.storage, p.out));
    try {
      const ready = await waitFor('/readyz 200', async () => ((await diag(port, '/readyz'))?.status === 200 ? 1 : 0));
      assert.ok(ready);
      const all = (await diag(port, '/readyz'))!;
      assert.deepEqual(Object.keys(all.body.services).sort(), ['heartbeat', 'identity', 'output-0']);
      for (const s of Object.values<{ status: string }>(all.body.services)) assert.equal(s.status, 'healthy');
      assert.equal((await diag(port, '/readyz/output-0'))!.status, 200);
      assert.equal((await diag(port, '/readyz/identity'))!.status, 200);
      assert.ok(existsSync(join(p.out, 'key-cert.pub')));
      assert.doesNotMatch(tbot.out(), /renewed identity/, 'ready without a renewal');
      assert.equal(all.body.warnings, undefined, 'a bot with logins has nothing to warn about');
    } finally {
      await stop(tbot);
    }
    // no --token: the identity in storage is enough
    tbot = daemon(noToken(token, p.storage, p.out));
    try {
      await waitFor('/readyz 200 after a restart', async () => (await diag(port, '/readyz'))?.status === 200);
      assert.match(tbot.out(), /resumed identity from storage/);
      assert.doesNotMatch(tbot.out(), /onboarding\.token/);
    } finally {
      await stop(tbot);
    }
    // one-shot, no token either
    const once = await cli('tbot', ['start', '--oneshot', ...noToken(token, p.storage, p.out)]);
    assert.equal(once.code, 0, once.stderr);
    assert.equal(joins('ready').length, 1, 'one join: every later run continued its instance');
  });

  it('5: no identity in storage and no token: says a first join needs one (exit 2), before anything is written', async () => {
    const p = paths();
    const r = await cli('tbot', ['start', '--oneshot', ...noToken('x', p.storage, p.out)]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(`ERROR: no identity in storage ${p.storage} and no onboarding\\.token: a first join needs a token`),
    );
    assert.ok(!existsSync(p.storage) && !existsSync(p.out), 'nothing left behind');
    const mem = await cli('tbot', ['start', '--oneshot', ...noToken('x', 'memory://', p.out)]);
    assert.match(mem.stderr, /no identity in storage memory:\/\/ \(memory storage keeps nothing across runs\)/);
  });

  it('5: a method whose token is a name (bound_keypair) needs it also to resume: it joins again later', async () => {
    await c.addBot('keyed', ['deploy']);
    const add = ['tokens', 'add', '--type=bot', '--bot-name', 'keyed', '--join-method', 'bound_keypair'];
    const bk = JSON.parse(await c.tctlOk([...add, '--format', 'json'])) as {
      token: string;
      registration_secret: string;
    };
    const p = paths();
    const flags = ['--auth-server', c.addr, '--ca-pin', c.caPin, '--join-method', 'bound_keypair'];
    const where = ['--data-dir', p.storage, '--destination-dir', p.out, '--oneshot'];
    const first = await cli('tbot', ['start', ...flags, '--token', bk.token, ...where], {
      env: { TBOT_REGISTRATION_SECRET: bk.registration_secret },
    });
    assert.equal(first.code, 0, first.stderr);
    const again = await cli('tbot', ['start', ...flags, ...where]);
    assert.equal(again.code, 2, again.stderr);
    assert.match(
      again.stderr,
      /ERROR: onboarding\.token: required for join method "bound_keypair" also when tbot resumes from its storage/,
    );
  });

  it('3: one storage, one tbot: a second refuses naming the PID (exit 2, its token unused); released on exit', async () => {
    const token = await c.addBot('single', ['deploy']);
    const p = paths();
    const lockFile = join(p.storage, 'lock');
    const first = spawnCli('tbot', ['start', ...tbotFlags(c, token, p.storage, p.out)]);
    try {
      await waitFor('the first tbot wrote its output', () => existsSync(join(p.out, 'tlscert')));
      assert.equal(readFileSync(lockFile, 'utf8').split('\n')[0], String(first.pid));
      const second = await c.tctlOk(['tokens', 'add', '--type=bot', '--bot-name', 'single', '--format', 'json']);
      const other = (JSON.parse(second) as { token: string }).token;
      const out2 = join(c.dir, `out-${n}-second`);
      for (const mode of [['--oneshot'], []]) {
        const r = await cli('tbot', ['start', ...mode, ...tbotFlags(c, other, p.storage, out2)], { timeoutMs: 15_000 });
        assert.equal(r.code, 2, r.stderr);
        assert.match(
          r.stderr,
          new RegExp(`ERROR: storage\\.path: storage in use by PID ${first.pid} \\(${lockFile}\\)`),
        );
        assert.ok(!existsSync(out2));
      }
      assert.equal(joins('single').length, 1, 'the refused tbots never joined');
      // the second token was not spent: it joins elsewhere
      const elsewhere = await cli('tbot', ['start', '--oneshot', ...tbotFlags(c, other, join(c.dir, `st-${n}-b`))]);
      assert.equal(elsewhere.code, 0, elsewhere.stderr);
    } finally {
      await stop(first);
    }
    assert.ok(!existsSync(lockFile), 'SIGTERM released the lock');
    // SIGINT releases it too; SIGKILL leaves it, and the next tbot takes it over with a note
    for (const signal of ['SIGINT', 'SIGKILL'] as const) {
      const t = spawnCli('tbot', ['start', ...noToken(token, p.storage, p.out)]);
      await waitFor('resumed', () => /resumed identity from storage/.test(t.out()));
      t.kill(signal);
      await exited(t);
      assert.equal(existsSync(lockFile), signal === 'SIGKILL', signal);
    }
    const after = await cli('tbot', ['start', '--oneshot', ...noToken(token, p.storage, p.out)]);
    assert.equal(after.code, 0, after.stderr);
    assert.match(after.stderr, /taking over a storage lock left by a tbot that no longer runs/);
    assert.ok(!existsSync(lockFile), 'a one-shot run releases it when it ends');
  });

  it('4: a daemon retries its first join until the Auth Service is up (same port), /readyz saying why', async () => {
    const token = await c.addBot('patient', ['deploy']);
    const p = paths();
    const port = await freePort();
    await c.halt();
    let tbot: CliProcess | undefined;
    try {
      // one-shot keeps failing fast
      const once = await cli('tbot', ['start', '--oneshot', ...tbotFlags(c, token, p.storage, p.out)]);
      assert.equal(once.code, 1);
      assert.match(once.stderr, /cannot reach the Auth Service/);
      tbot = spawnCli('tbot', ['start', ...tbotFlags(c, token, p.storage, p.out), '--diag-addr', `127.0.0.1:${port}`]);
      await waitFor('two failed attempts', () => /first join failed, retrying attempt=2/.test(tbot!.out()), 10_000);
      assert.match(tbot.out(), /attempt=1 retry_in=\d\.\ds error=.*cannot reach the Auth Service/);
      assert.equal((await diag(port, '/livez'))?.status, 200);
      const waiting = (await diag(port, '/readyz'))!;
      assert.equal(waiting.status, 503);
      assert.match(waiting.body.services.identity.reason, /^joining: cannot reach the Auth Service/);
      // SIGHUP (renew now) while it waits does not end it
      tbot.kill('SIGHUP');
      await waitFor('the SIGHUP handled', () => /renewing everything now \(signal\)/.test(tbot!.out()));
      assert.equal(tbot.exitCode, null);
    } finally {
      await c.resume();
    }
    try {
      await waitFor('the join', () => /\bjoined\b/.test(tbot.out()), 30_000);
      await waitFor('/readyz 200', async () => (await diag(port, '/readyz'))?.status === 200);
      assert.equal(tbot.exitCode, null);
    } finally {
      await stop(tbot);
    }
  });

  it('4: a refused join is final: the daemon stops (exit 1) and the log says it is not retried', async () => {
    const p = paths();
    const tbot = spawnCli('tbot', ['start', ...tbotFlags(c, '0123456789abcdef0123456789abcdef', p.storage, p.out)]);
    assert.equal(await exited(tbot), 1, tbot.out());
    assert.match(tbot.out(), /the Auth Service refused the join: not retried \(a refusal is final/);
    assert.doesNotMatch(tbot.out(), /first join failed, retrying/);
    assert.ok(!existsSync(p.storage) && !existsSync(p.out), 'nothing left behind');
  });

  it('6: a bot whose roles grant no logins: tctl bots add/update warn, tbot warns in its log and on /readyz', async () => {
    const role = (name: string, logins: string[]) => {
      const file = join(c.dir, `role-${name}.yaml`);
      writeFileSync(
        file,
        `kind: role\nversion: v7\nmetadata: { name: ${name} }\nspec:\n  allow:\n` +
          `    logins: ${JSON.stringify(logins)}\n`,
      );
      return c.tctlOk(['create', '-f', file]);
    };
    await role('mute', []);
    await role('templated', ['{{internal.logins}}']);
    const warning = /^warning: the roles of bot "(\w+)" \(([\w, -]+)\) grant no SSH logins and --logins gives none/m;
    const add = await c.tctl(['bots', 'add', 'mute', '--roles', 'mute', '--format', 'json']);
    assert.equal(add.code, 0, add.stderr);
    assert.equal(add.stderr.match(/^warning:/gm)?.length, 1, add.stderr);
    assert.match(add.stderr, warning);
    JSON.parse(add.stdout); // stdout stays the JSON document
    const quiet = await c.tctl(['bots', 'add', 'loud', '--roles', 'templated', '--logins', 'ci']);
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.doesNotMatch(quiet.stderr, /warning/);
    const update = await c.tctl(['bots', 'update', 'loud', '--set-roles', 'mute']);
    assert.equal(update.code, 0, update.stderr);
    assert.match(update.stderr, warning);
    assert.doesNotMatch((await c.tctl(['bots', 'update', 'loud', '--set-roles', 'templated'])).stderr, /warning/);
    // a bot for SVIDs only (no logins, workload identity labels): nothing to warn about
    const svids = join(c.dir, 'role-svids.yaml');
    writeFileSync(
      svids,
      'kind: role\nversion: v7\nmetadata: { name: svids }\n' +
        'spec:\n  allow:\n    workload_identity_labels: { team: [a] }\n',
    );
    await c.tctlOk(['create', '-f', svids]);
    const forSvids = await c.tctl(['bots', 'add', 'svid-bot', '--roles', 'svids']);
    assert.equal(forSvids.code, 0, forSvids.stderr);
    assert.doesNotMatch(forSvids.stderr, /warning/);

    const token = (JSON.parse(add.stdout) as { token: string }).token;
    const p = paths();
    const port = await freePort();
    const tbot = spawnCli('tbot', [
      'start',
      ...tbotFlags(c, token, p.storage, p.out),
      '--diag-addr',
      `127.0.0.1:${port}`,
    ]);
    try {
      const ready = await waitFor('/readyz', async () => {
        const r = await diag(port, '/readyz');
        return r?.status === 200 ? r : undefined;
      });
      assert.equal(ready.body.status, 'ready', 'a warning is not a failure');
      assert.equal(ready.body.warnings.length, 1);
      assert.match(
        ready.body.warnings[0],
        /^output-0: the bot's roles grant no SSH logins: the SSH certificate can log in nowhere/,
      );
      assert.deepEqual(ready.body.services['output-0'].warnings, [ready.body.warnings[0].slice('output-0: '.length)]);
      assert.match(tbot.out(), /WARN.*the bot's roles grant no SSH logins.*tctl bots update mute --add-logins LOGIN/);
    } finally {
      await stop(tbot);
    }
  });
});
