// The CircleCI configuration (ci/circleci/config.yml, shown in docs/deploy/circleci.md) run as
// CircleCI runs a job: its `run` steps in order, each in `bash -eo pipefail` reading $BASH_ENV,
// later steps skipped after a failure unless `when: always`, with CircleCI's environment (CIRCLE_*,
// the job's `environment:`, the project's variables) and CIRCLE_OIDC_TOKEN / CIRCLE_OIDC_TOKEN_V2
// of CircleCI's shape, signed by a test issuer the Auth Service trusts as the organization's issuer.
// tbot comes as the operator publishes it: a file served over HTTP (here on 127.0.0.1), which the
// Install step must check against the config's SHA-256 before it runs.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import { addDeployerBot, clusterFile, oidcOverride, startCluster, type TestCluster } from '../helpers/cluster.js';
import { CLI_DIR, REPO_ROOT, run, tempDir, withoutHostEnv, type RunResult } from '../helpers/procs.js';
import { guideFile } from '../helpers/docs-blocks.js';
import { startIssuer, type TestIssuer } from '../helpers/oidc-issuer.js';
import { startSshd, type Sshd } from '../helpers/sshd.js';

const CONFIG = join(REPO_ROOT, 'ci/circleci/config.yml');
const GUIDE = join(REPO_ROOT, 'docs/deploy/circleci.md');

type Step = string | { run: string | { name?: string; command: string; when?: string } };
interface CircleJob {
  environment?: Record<string, string>;
  steps: Step[];
}

/** One step's name and result, in the order CircleCI ran them. */
type StepLog = Array<{ name: string; result: RunResult | 'skipped' }>;

/** Programs that install by a name some registry resolves: the job must call none of them. */
const BY_NAME = ['npm', 'npx', 'yarn', 'pnpm', 'pip', 'pip3', 'pipx', 'gem', 'go', 'apt-get', 'apt', 'apk'];

/**
 * What in a step's command installs or runs code chosen by a name or an unchecked download: a
 * package manager's install, or a fetch with no `sha256sum --check` after it in the same step.
 */
function unpinned(command: string): string[] {
  const found: string[] = [];
  const byName =
    /\b(?:(?:npm|pnpm|yarn)\s+(?:install|i|add|exec|dlx)\b|npx\b|(?:pip3?|pipx|gem)\s+install\b|go\s+(?:install|get)\b|(?:apt-get|apt|apk|yum|dnf)\s+(?:install|add)\b)/;
  for (const line of command.split('\n')) {
    if (byName.test(line)) found.push(`installs by name: ${line.trim()}`);
    if (/\b(?:curl|wget)\b[^\n]*\|\s*(?:sudo\s+)?(?:ba|z)?sh\b/.test(line))
      found.push(`pipes a download to a shell: ${line.trim()}`);
  }
  const fetch = command.search(/\b(?:curl|wget)\b/);
  if (fetch >= 0) {
    const check = command.slice(fetch).search(/sha256sum\s+(?:--check|-c)\b/);
    const use = command.slice(fetch).search(/\b(?:install|chmod|mv|cp)\b|\$HOME\/\.local\/bin/);
    if (check < 0 || (use >= 0 && use < check)) found.push('a download used before sha256sum --check');
  }
  return found;
}

describe('the CircleCI config: the job run step by step with the environment CircleCI gives', () => {
  const tmp = tempDir('circleci');
  const bin = join(tmp.path, 'bin');
  /** Who ran the served tbot (its $0), one line a run. */
  const tbotRuns = join(tmp.path, 'tbot-runs');
  /** Calls to the package managers on the job's PATH (none is allowed). */
  const byNameCalls = join(tmp.path, 'by-name-calls');
  /** The operator's download server: the tbot "binary" they published, by URL. */
  let downloads: Server;
  let tbotUrl: string;
  let tbotSha256: string;
  let c: TestCluster;
  let circle: TestIssuer;
  let sshd: Sshd;
  let job: CircleJob;
  let org: string;
  let project: string;
  let context: string;
  const me = userInfo().username;
  let jobs = 0;

  /** CircleCI's claims for a job of `proj` with the context (v1 subject, or v2 with the VCS origin and ref). */
  const claims = (proj: string, v2: boolean) => ({
    sub: `org/${org}/project/${proj}/user/5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9${
      v2 ? '/vcs-origin/github.com/octo/app/vcs-ref/refs/heads/main' : ''
    }`,
    aud: org,
    exp: Math.floor(Date.now() / 1000) + 3600,
    'oidc.circleci.com/project-id': proj,
    'oidc.circleci.com/context-ids': [context],
    'oidc.circleci.com/vcs-origin': 'github.com/octo/app',
    'oidc.circleci.com/vcs-ref': 'refs/heads/main',
    'oidc.circleci.com/ssh-rerun': false,
  });

  /**
   * Runs the job's steps. `replace` gives other commands for steps by name (Deploy: the test's ssh
   * login); `env` adds to or blanks CircleCI's variables.
   */
  async function runJob(
    opts: {
      env?: Record<string, string>;
      replace?: Record<string, string>;
      project?: string;
      asShipped?: boolean;
    } = {},
  ): Promise<{ steps: StepLog; home: string }> {
    const home = join(tmp.path, `job-${++jobs}`);
    mkdirSync(home, { mode: 0o700 });
    writeFileSync(join(home, '.bash_env'), '');
    const proj = opts.project ?? project;
    const env: Record<string, string> = {
      PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}`,
      HOME: home,
      BASH_ENV: join(home, '.bash_env'),
      CI: 'true',
      CIRCLECI: 'true',
      CIRCLE_BRANCH: 'main',
      CIRCLE_BUILD_NUM: String(100 + jobs),
      CIRCLE_JOB: 'deploy',
      CIRCLE_NODE_INDEX: '0',
      CIRCLE_NODE_TOTAL: '1',
      CIRCLE_PROJECT_REPONAME: 'app',
      CIRCLE_PROJECT_USERNAME: 'octo',
      CIRCLE_REPOSITORY_URL: 'git@github.com:octo/app.git',
      CIRCLE_SHA1: '0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e',
      CIRCLE_USERNAME: 'mona',
      CIRCLE_WORKFLOW_ID: '6a7b8c9d-0e1f-4a2b-8c3d-4e5f6a7b8c9d',
      CIRCLE_WORKING_DIRECTORY: '~/project',
      CIRCLE_OIDC_TOKEN: await circle.sign(claims(proj, false)),
      CIRCLE_OIDC_TOKEN_V2: await circle.sign(claims(proj, true)),
      // the project's environment variables
      MWI_CA_PIN: c.caPin,
      MWI_TBOT_URL: tbotUrl,
      ...job.environment,
      // the operator's edit of the config: the checksum of the tbot they published (asShipped: the example's)
      ...(opts.asShipped ? {} : { MWI_TBOT_SHA256: tbotSha256 }),
      ...opts.env,
    };
    for (const [k, v] of Object.entries(env)) env[k] = v.replaceAll('auth.example.com:3025', c.addr);
    // run() adds this process's environment: the job must not see it
    withoutHostEnv(env);
    const cwd = join(home, 'project');
    mkdirSync(cwd);
    const steps: StepLog = [];
    let failed = false;
    for (const step of job.steps) {
      if (step === 'checkout') continue; // the sources: this test needs none
      if (typeof step === 'string') throw new Error(`a step this test does not know: ${step}`);
      const r = typeof step.run === 'string' ? { command: step.run } : step.run;
      const name = r.name ?? r.command;
      if (failed && r.when !== 'always') {
        steps.push({ name, result: 'skipped' });
        continue;
      }
      const command = opts.replace?.[name] ?? r.command;
      const result = await run('bash', ['-eo', 'pipefail', '-c', command], { env, cwd, timeoutMs: 60_000 });
      steps.push({ name, result });
      if (result.code !== 0) failed = true;
    }
    return { steps, home };
  }
  const stepNamed = (log: StepLog, name: string) => {
    const s = log.find((x) => x.name === name);
    assert.ok(s, `no step ${name}`);
    return s.result;
  };
  const ok = (log: StepLog, name: string): RunResult => {
    const r = stepNamed(log, name);
    assert.ok(r !== 'skipped' && r.code === 0, `${name}: ${JSON.stringify(r)}`);
    return r;
  };

  before(async () => {
    assert.equal(guideFile(GUIDE, 'circleci-config.yml'), readFileSync(CONFIG, 'utf8'), 'the guide shows the file');
    const config = parse(readFileSync(CONFIG, 'utf8')) as { jobs: Record<string, CircleJob> };
    job = config.jobs.deploy!;
    const token = guideFile(GUIDE, 'circleci-token.yaml');
    const spec = parse(token) as {
      spec: { circleci: { organization_id: string; allow: Array<Record<string, string>> } };
    };
    org = spec.spec.circleci.organization_id;
    project = spec.spec.circleci.allow[0]!.project_id!;
    context = spec.spec.circleci.allow[0]!.context_id!;
    // package managers on the job's PATH only record that they were called: the job must need none
    mkdirSync(bin);
    for (const name of BY_NAME)
      writeFileSync(join(bin, name), `#!/bin/sh\necho "${name} $*" >> "${byNameCalls}"\nexit 1\n`, { mode: 0o755 });
    // the stand-in for the single-file tbot: runs this build's tbot, and says where it was run from
    const standIn = Buffer.from(
      `#!/bin/sh\necho "$0" >> "${tbotRuns}"\nexec "${process.execPath}" "${join(CLI_DIR, 'tbot.js')}" "$@"\n`,
    );
    tbotSha256 = createHash('sha256').update(standIn).digest('hex');
    downloads = createServer((req, res) => {
      if (req.url === '/mwi/v0.1.0/tbot')
        res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(standIn);
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => downloads.listen(0, '127.0.0.1', r));
    tbotUrl = `http://127.0.0.1:${(downloads.address() as AddressInfo).port}/mwi/v0.1.0/tbot`;
    const issuer = `https://oidc.circleci.com/org/${org}`;
    circle = await startIssuer({ issuer });
    c = await startCluster('example.com', oidcOverride(issuer, circle.url));
    await c.tctlOk(['create', '-f', clusterFile(c, 'circleci-token.yaml', token)]);
    // the guide's role says deploy; this one lets the test's user log in
    await addDeployerBot(c, 'circleci-deployer', me, 'circleci-deploy');
    sshd = await startSshd(c, join(tmp.path, 'sshd'));
  });
  after(async () => {
    await new Promise<void>((r) => (downloads ? downloads.close(() => r()) : r()));
    await sshd?.stop();
    await c?.stop();
    await circle?.close();
    tmp.cleanup();
  });

  const login = () =>
    `test "$(stat -c %a "$HOME/.mwi")" = 700 && ` +
    `ssh -F "$HOME/.mwi/ssh_config" -p ${sshd.port} -o BatchMode=yes ${me}@127.0.0.1 echo from-circleci`;

  const runsOfTbot = () => (existsSync(tbotRuns) ? readFileSync(tbotRuns, 'utf8').split('\n').filter(Boolean) : []);
  const byName = () => (existsSync(byNameCalls) ? readFileSync(byNameCalls, 'utf8') : '');

  it('no step installs anything by a name or runs a download before checking its SHA-256', () => {
    for (const step of job.steps) {
      if (typeof step === 'string') continue;
      const command = typeof step.run === 'string' ? step.run : step.run.command;
      assert.deepEqual(unpinned(command), [], command);
    }
    // what the check looks for (so that an empty answer above means something)
    assert.notDeepEqual(unpinned('npm install --global --prefix "$HOME/.local" mwi'), []);
    assert.notDeepEqual(unpinned('curl -fsSL https://x/tbot -o t && install -m 0755 t ~/.local/bin/tbot'), []);
    assert.notDeepEqual(unpinned('curl -fsSL https://x/install.sh | sh'), []);
    assert.deepEqual(unpinned('curl -fsSLo t "$U"\necho "$S  t" | sha256sum --check -\ninstall -m 0755 t ~/x'), []);
  });

  it('the job fetches tbot, checks it, joins with its OIDC token, logs in over ssh with the output, and removes it', async () => {
    const ran = runsOfTbot().length;
    const { steps, home } = await runJob({ replace: { Deploy: login() } });
    assert.match(ok(steps, 'Install tbot').stdout, /tbot: OK/);
    ok(steps, 'Credentials from mwi');
    // the tbot that ran is the one the step fetched and checked, and no package manager was called
    assert.deepEqual(runsOfTbot().slice(ran), [join(home, '.local/bin/tbot')]);
    assert.equal(byName(), '');
    assert.equal(ok(steps, 'Deploy').stdout.trim(), 'from-circleci');
    ok(steps, 'Remove the credentials');
    assert.equal(existsSync(join(home, '.mwi')), false);
    const joined = c.audit().filter((e) => e.event === 'bot.join' && e.join_method === 'circleci' && e.success);
    assert.equal(joined.at(-1)?.project_id, project);
    for (const s of steps)
      if (s.result !== 'skipped') assert.doesNotMatch(s.result.stdout + s.result.stderr, /eyJ[\w-]+\.eyJ/);
  });

  it('a job of another project is refused (the reason in the audit log only); Deploy is skipped, clean-up runs', async () => {
    const other = '11111111-2222-4333-8444-555555555555';
    const { steps, home } = await runJob({ project: other, replace: { Deploy: login() } });
    const creds = stepNamed(steps, 'Credentials from mwi');
    assert.ok(creds !== 'skipped');
    assert.equal(creds.code, 1, creds.stderr);
    assert.match(creds.stderr, /the join was refused/);
    assert.doesNotMatch(creds.stderr, new RegExp(other));
    assert.equal(stepNamed(steps, 'Deploy'), 'skipped');
    ok(steps, 'Remove the credentials');
    assert.equal(existsSync(join(home, '.mwi')), false);
    const refused = c.audit().filter((e) => e.event === 'bot.join' && !e.success && e.join_method === 'circleci');
    assert.match(String(refused.at(-1)?.reason), new RegExp(other));
  });

  it('a tbot whose SHA-256 is not the one in the config (the example as shipped) never runs', async () => {
    assert.match(job.environment!.MWI_TBOT_SHA256!, /^[0-9a-f]{64}$/);
    assert.notEqual(job.environment!.MWI_TBOT_SHA256, tbotSha256);
    const ran = runsOfTbot().length;
    const { steps, home } = await runJob({ asShipped: true, replace: { Deploy: login() } });
    const install = stepNamed(steps, 'Install tbot');
    assert.ok(install !== 'skipped');
    assert.equal(install.code, 1, install.stderr);
    assert.match(install.stdout + install.stderr, /tbot: FAILED/);
    assert.equal(existsSync(join(home, '.local/bin/tbot')), false, 'nothing installed');
    assert.equal(readFileSync(join(home, '.bash_env'), 'utf8'), '', 'the PATH is not changed');
    assert.equal(stepNamed(steps, 'Credentials from mwi'), 'skipped');
    assert.equal(stepNamed(steps, 'Deploy'), 'skipped');
    ok(steps, 'Remove the credentials');
    assert.equal(runsOfTbot().length, ran, 'the fetched file never ran');
    assert.equal(byName(), '');
  });

  it('without MWI_TBOT_URL, or with MWI_TBOT_SHA256 not a SHA-256, the install step stops with the reason', async () => {
    const noUrl = stepNamed((await runJob({ env: { MWI_TBOT_URL: '' } })).steps, 'Install tbot');
    assert.ok(noUrl !== 'skipped');
    assert.equal(noUrl.code, 2);
    assert.match(
      noUrl.stderr,
      /MWI_TBOT_URL is empty: .*mwi is not on the npm registry: a job never installs it by name/,
    );
    for (const sha of ['', 'sha256:abc', 'g'.repeat(64)]) {
      const r = stepNamed((await runJob({ env: { MWI_TBOT_SHA256: sha } })).steps, 'Install tbot');
      assert.ok(r !== 'skipped');
      assert.equal(r.code, 2, sha);
      assert.match(r.stderr, /MWI_TBOT_SHA256 is not a SHA-256 \(64 hex digits\): set it in this config/);
    }
    // a URL that serves nothing fails the step too
    const gone = stepNamed((await runJob({ env: { MWI_TBOT_URL: `${tbotUrl}-gone` } })).steps, 'Install tbot');
    assert.ok(gone !== 'skipped');
    assert.notEqual(gone.code, 0);
    assert.equal(byName(), '');
  });

  it('without the OIDC token or without MWI_CA_PIN the step stops with the reason', async () => {
    const noToken = await runJob({ env: { CIRCLE_OIDC_TOKEN: '', CIRCLE_OIDC_TOKEN_V2: '' } });
    const r = stepNamed(noToken.steps, 'Credentials from mwi');
    assert.ok(r !== 'skipped');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /CIRCLE_OIDC_TOKEN is not set: tbot must run inside a CircleCI job/);
    const noPin = await runJob({ env: { MWI_CA_PIN: '' } });
    const p = stepNamed(noPin.steps, 'Credentials from mwi');
    assert.ok(p !== 'skipped');
    assert.equal(p.code, 2);
    assert.match(p.stderr, /MWI_CA_PIN is empty: .*CA pin; Teleport's guide has none .*--proxy-server/);
  });
});
