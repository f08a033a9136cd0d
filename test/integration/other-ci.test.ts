// Any other CI (docs/deploy/other-ci.md): a static bound_keypair key made on a workstation, its
// public key registered, the private key moved into the CI system's secret (an environment
// variable), then jobs as a CI runner runs them: each a fresh directory and environment, a bash
// script that joins with the key and logs in to a real sshd with the credentials.
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { addDeployerBot, clusterFile, startCluster, type TestCluster } from '../helpers/cluster.js';
import { cli, run, tempDir, withoutHostEnv, writeCliShims, type RunResult } from '../helpers/procs.js';
import { startSshd, type Sshd } from '../helpers/sshd.js';

/** Every file under `dir` (links not followed), for checking that no job left the key behind. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? filesUnder(p) : e.isFile() ? [p] : [];
  });
}

const tokenYaml = (name: string, publicKey: string, mode: string) =>
  `kind: token\nversion: v2\nmetadata: { name: ${name} }\nspec:\n  join_method: bound_keypair\n` +
  `  bot_name: static-deployer\n  bound_keypair:\n    onboarding:\n      initial_public_key: "${publicKey}"\n` +
  `    recovery:\n      mode: ${mode}\n`;

describe('any other CI: jobs join with a static key from a CI secret', () => {
  const tmp = tempDir('other-ci');
  const bin = join(tmp.path, 'bin');
  let c: TestCluster;
  let sshd: Sshd;
  /** The CI secret: base64 of the PEM file, as `base64 -w0 ci-key.pem` prints it. */
  let secret: string;
  let publicKey: string;
  const me = userInfo().username;
  let jobs = 0;

  /** A CI job: `script` in bash -eo pipefail, in a fresh home, with the secret and the pin in its environment. */
  async function job(script: string, env: Record<string, string> = {}): Promise<RunResult & { home: string }> {
    const home = join(tmp.path, `job-${++jobs}`);
    mkdirSync(home, { mode: 0o700 });
    const vars: Record<string, string> = {
      PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}`,
      HOME: home,
      TMPDIR: home,
      CI: 'true',
      TBOT_BOUND_KEYPAIR_STATIC_KEY: secret,
      MWI_CA_PIN: c.caPin,
      ...env,
    };
    // run() adds this process's environment: the job must not see it
    withoutHostEnv(vars);
    const r = await run('bash', ['-xeo', 'pipefail', '-c', script.replaceAll('auth.example.com:3025', c.addr)], {
      env: vars,
      cwd: home,
      timeoutMs: 60_000,
    });
    // traced as CI shells trace (sh -x): the key never shows in the job's log
    const key = vars.TBOT_BOUND_KEYPAIR_STATIC_KEY;
    if (key) assert.ok(!(r.stdout + r.stderr).includes(key.slice(0, 40)), 'the static key is in the job log');
    return { ...r, home };
  }

  /** The guide's job with the key from the variable, then an ssh login and the clean-up. */
  const fromVariable = (token = 'ci-static') =>
    `tbot start --oneshot --join-method bound_keypair --token ${token} \\\n` +
    '  --auth-server auth.example.com:3025 --ca-pin "$MWI_CA_PIN" \\\n' +
    '  --certificate-ttl 30m --destination-dir "$PWD/creds"\n' +
    `ssh -F creds/ssh_config -p ${sshd.port} -o BatchMode=yes ${me}@127.0.0.1 echo "job $CI_JOB"\n` +
    'rm -rf creds\n';

  /** The guide's second form: the variable written to a 0600 temporary file, given with --static-key-path. */
  const throughFile = () =>
    'KEY_FILE=$(mktemp)\n' +
    'base64 -d > "$KEY_FILE" <<EOF\n$TBOT_BOUND_KEYPAIR_STATIC_KEY\nEOF\n' +
    'stat -c "key file mode %a" "$KEY_FILE"\n' +
    'env -u TBOT_BOUND_KEYPAIR_STATIC_KEY tbot start --oneshot --join-method bound_keypair --token ci-static \\\n' +
    '  --auth-server auth.example.com:3025 --ca-pin "$MWI_CA_PIN" \\\n' +
    '  --static-key-path "$KEY_FILE" --certificate-ttl 30m --destination-dir "$PWD/creds"\n' +
    'rm -f "$KEY_FILE"\n' +
    `ssh -F creds/ssh_config -p ${sshd.port} -o BatchMode=yes ${me}@127.0.0.1 echo "job $CI_JOB"\n` +
    'rm -rf creds\n';

  const instances = async () =>
    JSON.parse(await c.tctlOk(['bots', 'instances', 'ls', 'static-deployer', '--format', 'json'])) as unknown[];
  const recoveryCount = async (token: string) =>
    (JSON.parse(await c.tctlOk(['get', `token/${token}`, '--format', 'json'])) as Array<Record<string, any>>)[0]!.status
      .bound_keypair.recovery_count as number;

  before(async () => {
    writeCliShims(bin, ['tbot']);
    c = await startCluster('example.com');
    // on a trusted workstation: the key, written 0600; its public key printed
    const ws = join(tmp.path, 'workstation');
    mkdirSync(ws, { mode: 0o700 });
    const made = await cli('tbot', ['keypair', 'create', '--static-key-path', join(ws, 'ci-key.pem')]);
    assert.equal(made.code, 0, made.stderr);
    publicKey = made.stdout.trim();
    assert.match(publicKey, /^ssh-ed25519 \S+$/);
    assert.equal(statSync(join(ws, 'ci-key.pem')).mode & 0o777, 0o600);
    for (const [name, mode] of [
      ['ci-static', 'insecure'],
      ['ci-standard', 'standard'],
      ['ci-relaxed', 'relaxed'],
    ] as const)
      await c.tctlOk(['create', '-f', clusterFile(c, `${name}.yaml`, tokenYaml(name, publicKey, mode))]);
    await addDeployerBot(c, 'static-deployer', me, 'ci-static');
    // into the CI system's secret store; the file goes away
    secret = readFileSync(join(ws, 'ci-key.pem')).toString('base64');
    rmSync(join(ws, 'ci-key.pem'));
    sshd = await startSshd(c, join(tmp.path, 'sshd'));
  });
  after(async () => {
    await sshd?.stop();
    await c?.stop();
    tmp.cleanup();
  });

  it('two consecutive jobs join with the same static key (from the variable, then a 0600 file) and log in', async () => {
    const before = (await instances()).length;
    const first = await job(fromVariable(), { CI_JOB: '1' });
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.stdout.trim(), 'job 1');
    const second = await job(throughFile(), { CI_JOB: '2' });
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.stdout.trim(), 'key file mode 600\njob 2');
    // each job is an instance of its own; every join after the first counts as a recovery, not enforced
    assert.equal((await instances()).length, before + 2);
    assert.equal(await recoveryCount('ci-static'), 2);
    assert.match(second.stderr, /recoveries_used=2 recoveries="mode insecure, no limit"/);
    // tbot wrote no key anywhere: the jobs' directories hold nothing (creds and the temp file removed)
    for (const j of [first, second]) assert.deepEqual(filesUnder(j.home), []);
    const joins = c.audit().filter((e) => e.event === 'bot.join' && e.join_method === 'bound_keypair' && e.success);
    assert.equal(joins.length, 2);
  });

  it('the recovery limit: standard and relaxed tokens refuse the second job with the reason; insecure joins', async () => {
    for (const token of ['ci-standard', 'ci-relaxed']) {
      const one = await job(fromVariable(token), { CI_JOB: token });
      assert.equal(one.code, 0, one.stderr);
      const two = await job(fromVariable(token), { CI_JOB: token });
      assert.equal(two.code, 1, two.stderr);
      assert.match(
        two.stderr,
        /another bot instance holds this bound keypair and its identity is still valid \(only recovery\.mode insecure/,
      );
    }
    const again = await job(fromVariable(), { CI_JOB: '3' });
    assert.equal(again.code, 0, again.stderr);
  });

  it('a job with another key, or after the token is locked, is refused', async () => {
    const other = await cli('tbot', ['keypair', 'create', '--static', '--format', 'json']);
    const foreign = (JSON.parse(other.stdout) as { private_key: string }).private_key;
    const wrong = await job(fromVariable(), { CI_JOB: 'x', TBOT_BOUND_KEYPAIR_STATIC_KEY: foreign });
    assert.equal(wrong.code, 1, wrong.stderr);
    // the job is told it was refused; why is for the operator
    assert.match(wrong.stderr, /the join was refused .*the Auth Service audit log has the reason/);
    const refusal = () =>
      c
        .audit()
        .filter((e) => e.event === 'bot.join' && !e.success)
        .at(-1)?.reason;
    assert.match(String(refusal()), /not the pre-registered initial_public_key|no longer the bound key/);
    await c.tctlOk(['lock', '--join-token', 'ci-static', '--message', 'static key leaked']);
    const locked = await job(fromVariable(), { CI_JOB: 'y' });
    assert.equal(locked.code, 1, locked.stderr);
    assert.match(String(refusal()), /locked: static key leaked/);
  });
});
