// The GitLab CI template (ci/gitlab/tbot.gitlab-ci.yml) run as a GitLab runner runs a job: the job of
// docs/deploy/gitlab-ci.md's .gitlab-ci.yml merged with `.mwi-tbot` (extends), its variables
// expanded, GitLab's predefined CI_* variables, the project's CI/CD variables, and each id_tokens
// variable holding an ID token of GitLab's shape for its audience, signed by a test issuer the
// Auth Service trusts as https://gitlab.com; before_script + script in one bash, after_script in another.
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { userInfo } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import { addDeployerBot, clusterFile, oidcOverride, startCluster, type TestCluster } from '../helpers/cluster.js';
import { cliShim, REPO_ROOT, run, tempDir, withoutHostEnv, writeCliShims, type RunResult } from '../helpers/procs.js';
import { guideFile } from '../helpers/docs-blocks.js';
import { startIssuer, type TestIssuer } from '../helpers/oidc-issuer.js';
import { startSshd, type Sshd } from '../helpers/sshd.js';

const GUIDE = join(REPO_ROOT, 'docs/deploy/gitlab-ci.md');

type Job = {
  variables?: Record<string, string>;
  id_tokens?: Record<string, { aud: string | string[] }>;
  before_script?: string[];
  script?: string[];
  after_script?: string[];
  extends?: string;
} & Record<string, unknown>;

/** GitLab's `extends`: hashes merge deeply, the job's keys win, anything else is replaced. */
function merge(base: Record<string, unknown>, job: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(job)) {
    const b = out[k];
    const isHash = (x: unknown) => typeof x === 'object' && x !== null && !Array.isArray(x);
    out[k] = isHash(b) && isHash(v) ? merge(b as Record<string, unknown>, v as Record<string, unknown>) : v;
  }
  return out;
}

/** GitLab's variable expansion ($VAR, ${VAR}) in a value. */
const expand = (s: string, vars: Record<string, string>) =>
  s.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a: string | undefined, b: string | undefined) => vars[(a ?? b)!] ?? '');

describe('the GitLab CI template: a job extending .mwi-tbot, run with the environment GitLab gives', () => {
  const tmp = tempDir('gitlab-ci');
  const bin = join(tmp.path, 'bin');
  let c: TestCluster;
  let gitlab: TestIssuer;
  let sshd: Sshd;
  let template: Job;
  let exampleJob: Job;
  const me = userInfo().username;
  let jobs = 0;

  /** GitLab's claims for job `jobId` of a push to main of octo/app. */
  const claims = (jobId: string, aud: string | string[]) => ({
    namespace_id: '72',
    namespace_path: 'octo',
    project_id: '20',
    project_path: 'octo/app',
    user_id: '13',
    user_login: 'mona',
    user_email: 'mona@example.com',
    user_access_level: 'developer',
    pipeline_id: '1212',
    pipeline_source: 'push',
    job_id: jobId,
    ref: 'main',
    ref_type: 'branch',
    ref_path: 'refs/heads/main',
    ref_protected: 'true',
    runner_id: 7,
    runner_environment: 'self-hosted',
    sha: '4c9ae1f3b2d0e8a7c6b5a4f3e2d1c0b9a8f7e6d5',
    project_visibility: 'private',
    ci_config_ref_uri: 'gitlab.com/octo/app//.gitlab-ci.yml@refs/heads/main',
    ci_config_sha: '4c9ae1f3b2d0e8a7c6b5a4f3e2d1c0b9a8f7e6d5',
    jti: randomUUID(),
    nbf: Math.floor(Date.now() / 1000) - 5,
    sub: 'project_path:octo/app:ref_type:branch:ref:main',
    aud,
  });

  /**
   * Runs `job` as the runner: variables (predefined, then the job's expanded, then the project's,
   * which win), id_tokens, then before_script + `script` in one shell and after_script in another.
   */
  async function runJob(
    job: Job,
    opts: {
      project?: Record<string, string>;
      script?: string[];
      claims?: Record<string, unknown>;
      /** Runs before the job, with its TMPDIR and CI_JOB_ID (what another user of the runner could do). */
      prepare?: (job: { temp: string; id: string }) => void;
    } = {},
  ): Promise<{ main: RunResult; after: RunResult; temp: string; projectDir: string; env: Record<string, string> }> {
    const id = String(4000 + ++jobs);
    const dir = join(tmp.path, `job-${id}`);
    const projectDir = join(dir, 'builds/octo/app');
    mkdirSync(projectDir, { recursive: true });
    mkdirSync(join(dir, 'tmp'), { mode: 0o700 });
    opts.prepare?.({ temp: join(dir, 'tmp'), id });
    const vars: Record<string, string> = {
      PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}`,
      HOME: dir,
      TMPDIR: join(dir, 'tmp'),
      CI: 'true',
      GITLAB_CI: 'true',
      CI_SERVER_URL: 'https://gitlab.com',
      CI_SERVER_HOST: 'gitlab.com',
      CI_JOB_ID: id,
      CI_JOB_NAME: 'deploy',
      CI_JOB_STAGE: 'deploy',
      CI_PIPELINE_ID: '1212',
      CI_PIPELINE_SOURCE: 'push',
      CI_PROJECT_ID: '20',
      CI_PROJECT_PATH: 'octo/app',
      CI_PROJECT_NAMESPACE: 'octo',
      CI_PROJECT_DIR: projectDir,
      CI_BUILDS_DIR: join(dir, 'builds'),
      CI_COMMIT_REF_NAME: 'main',
      CI_COMMIT_BRANCH: 'main',
      CI_COMMIT_SHA: '4c9ae1f3b2d0e8a7c6b5a4f3e2d1c0b9a8f7e6d5',
      GITLAB_USER_LOGIN: 'mona',
    };
    for (const [k, v] of Object.entries(job.variables ?? {})) vars[k] = expand(String(v), vars);
    Object.assign(vars, opts.project ?? {});
    for (const [name, spec] of Object.entries(job.id_tokens ?? {})) {
      const aud = Array.isArray(spec.aud) ? spec.aud.map((a) => expand(a, vars)) : expand(spec.aud, vars);
      vars[name] = await gitlab.sign({ ...claims(id, aud), ...opts.claims });
    }
    const shell = (lines: string[]) =>
      run('bash', ['-eo', 'pipefail', '-c', lines.join('\n')], { env: vars, cwd: projectDir, timeoutMs: 60_000 });
    // run() adds this process's environment: the job must not see it, so give every name the runner does not
    withoutHostEnv(vars);
    const main = await shell([...(job.before_script ?? []), ...(opts.script ?? job.script ?? [])]);
    const afterScript = await shell(job.after_script ?? []);
    return { main, after: afterScript, temp: join(dir, 'tmp'), projectDir, env: vars };
  }

  /** What the test's script does with the credentials: checks the variables and logs in over ssh. */
  const loginScript = () => [
    'test "$(stat -c %a "$MWI_DESTINATION")" = 700',
    'test -s "$MWI_IDENTITY_FILE"',
    `ssh -F "$MWI_SSH_CONFIG" -p ${sshd.port} -o BatchMode=yes ${me}@127.0.0.1 echo from-gitlab-ci`,
  ];

  before(async () => {
    template = (parse(readFileSync(join(REPO_ROOT, 'ci/gitlab/tbot.gitlab-ci.yml'), 'utf8')) as Record<string, Job>)[
      '.mwi-tbot'
    ]!;
    assert.ok(template, 'the template defines .mwi-tbot');
    writeCliShims(bin, ['tbot', 'tctl']);
    gitlab = await startIssuer({ issuer: 'https://gitlab.com' });
    // the guide's cluster name (its MWI_CLUSTER) and address, as the docs convention has them
    c = await startCluster('example.com', oidcOverride('https://gitlab.com', gitlab.url));
    const pipeline = guideFile(GUIDE, '.gitlab-ci.yml').replaceAll('auth.example.com:3025', c.addr);
    const doc = parse(pipeline) as Record<string, Job>;
    exampleJob = doc.deploy!;
    assert.equal(exampleJob.extends, '.mwi-tbot');
    // the guide's token, as it is; the role lets this test's user log in (the guide's says deploy)
    await c.tctlOk(['create', '-f', clusterFile(c, 'gitlab-token.yaml', guideFile(GUIDE, 'gitlab-token.yaml'))]);
    await addDeployerBot(c, 'gitlab-deployer', me, 'gitlab-deploy');
    sshd = await startSshd(c, join(tmp.path, 'sshd'));
  });
  after(async () => {
    await sshd?.stop();
    await c?.stop();
    await gitlab?.close();
    tmp.cleanup();
  });

  const job = (): Job => merge(template, exampleJob);
  const project = () => ({ MWI_CA_PIN: c.caPin });

  it("the guide's job joins with its ID token; its script logs in with $MWI_SSH_CONFIG; after_script removes it", async () => {
    const r = await runJob(job(), { project: project(), script: loginScript() });
    assert.equal(r.main.code, 0, r.main.stdout + r.main.stderr);
    assert.equal(r.main.stdout.trim(), 'from-gitlab-ci');
    assert.equal(r.after.code, 0, r.after.stderr);
    assert.deepEqual(readdirSync(r.temp), [], 'after_script left nothing');
    assert.equal(existsSync(join(r.projectDir, '.mwi-destination')), false, 'nor the path it was given');
    const joined = c.audit().filter((e) => e.event === 'bot.join' && e.join_method === 'gitlab' && e.success);
    assert.equal(joined.at(-1)?.project_path, 'octo/app');
    // the ID token never reaches the job's log
    assert.doesNotMatch(r.main.stdout + r.main.stderr, /eyJ[\w-]+\.eyJ/);
  });

  it('MWI_DESTINATION and MWI_CERTIFICATE_TTL set by the job are used, and after_script finds that path', async () => {
    const dest = join(tmp.path, 'creds-elsewhere');
    const j = merge(job(), { variables: { MWI_DESTINATION: dest, MWI_CERTIFICATE_TTL: '5m' } }) as Job;
    const r = await runJob(j, {
      project: project(),
      script: ['ssh-keygen -L -f "$MWI_DESTINATION/key-cert.pub"', `test "$MWI_DESTINATION" = ${dest}`],
    });
    assert.equal(r.main.code, 0, r.main.stderr);
    const valid = /Valid: from (\S+) to (\S+)/.exec(r.main.stdout);
    assert.ok(valid, r.main.stdout);
    const minutes = (Date.parse(valid[2]!) - Date.parse(valid[1]!)) / 60_000;
    assert.ok(minutes > 4 && minutes <= 6, `${minutes} minutes`);
    assert.equal(existsSync(dest), false);
  });

  it('a directory mwi-<job id> made first by another user of the runner does not block the job', async () => {
    let squatted = '';
    const r = await runJob(job(), {
      project: project(),
      script: ['echo "destination=$MWI_DESTINATION"', ...loginScript()],
      prepare: ({ temp, id }) => {
        // the old default name, made by someone else (root here: given away; else open to everyone)
        squatted = join(temp, `mwi-${id}`);
        mkdirSync(squatted);
        chmodSync(squatted, 0o777);
        if (process.getuid?.() === 0) chownSync(squatted, 65534, 65534);
      },
    });
    assert.equal(r.main.code, 0, r.main.stdout + r.main.stderr);
    assert.match(r.main.stdout, /from-gitlab-ci/);
    const dest = /^destination=(.*)$/m.exec(r.main.stdout)?.[1];
    assert.ok(dest, r.main.stdout);
    assert.equal(dirname(dest), r.temp);
    assert.match(basename(dest), new RegExp(`^${basename(squatted)}\\.\\w{10}$`), 'a name made by mktemp');
    assert.equal(r.after.code, 0, r.after.stderr);
    // after_script removed the job's directory and left the other one as it was
    assert.deepEqual(readdirSync(r.temp), [basename(squatted)]);
    assert.equal(statSync(squatted).mode & 0o777, 0o777);
    assert.equal(existsSync(join(r.projectDir, '.mwi-destination')), false);
  });

  it("the guide's image fetches tbot by URL and installs it only when its SHA-256 is the one written there", async () => {
    const file = guideFile(GUIDE, 'Containerfile');
    // nothing installed by a name a registry resolves (mwi is on none): in the guide's blocks, in the template
    const blocks = [...readFileSync(GUIDE, 'utf8').matchAll(/^```\w*\n([\s\S]*?)^```/gm)].map((m) => m[1]!);
    assert.ok(blocks.includes(file));
    for (const text of [...blocks, readFileSync(join(REPO_ROOT, 'ci/gitlab/tbot.gitlab-ci.yml'), 'utf8')])
      assert.doesNotMatch(text, /\b(?:npm|pnpm|yarn)\s+(?:install|i|add)\s+(?:-g\s+|--global\s+)?mwi\b|\bnpx\s+mwi\b/);
    const args = Object.fromEntries([...file.matchAll(/^ARG (\w+)=(.*)$/gm)].map((m) => [m[1]!, m[2]!]));
    assert.match(args.MWI_TBOT_SHA256 ?? '', /^[0-9a-f]{64}$/);
    // the RUN instruction that fetches tbot, its continuation lines joined, as the builder's /bin/sh runs it
    const instructions = file.replace(/\\\n/g, ' ').split('\n');
    const fetch = instructions.find((l) => l.startsWith('RUN ') && l.includes('$MWI_TBOT_URL'));
    assert.ok(fetch, 'a RUN line fetches $MWI_TBOT_URL');
    // the stand-in for the binary, served as the operator publishes it
    const standIn = Buffer.from(cliShim('tbot'));
    const sha = createHash('sha256').update(standIn).digest('hex');
    const server: Server = createServer((_req, res) => res.writeHead(200).end(standIn));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mwi/v0.1.0/tbot`;
    try {
      // the image's file system: its paths under a directory of the test's
      const build = async (checksum: string) => {
        const root = join(tmp.path, `image-${randomUUID()}`);
        mkdirSync(join(root, 'tmp'), { recursive: true });
        mkdirSync(join(root, 'usr/local/bin'), { recursive: true });
        const command = fetch.slice('RUN '.length).replace(/(?<=[\s"])\/(?=usr\/local\/bin\/|tmp\/)/g, `${root}/`);
        const r = await run('sh', ['-c', command], { env: { MWI_TBOT_URL: url, MWI_TBOT_SHA256: checksum } });
        return { ...r, tbot: join(root, 'usr/local/bin/tbot') };
      };
      const shipped = await build(args.MWI_TBOT_SHA256!);
      assert.notEqual(shipped.code, 0, 'the example checksum matches no build');
      assert.match(shipped.stdout + shipped.stderr, /FAILED/);
      assert.equal(existsSync(shipped.tbot), false, 'nothing installed');
      const good = await build(sha);
      assert.equal(good.code, 0, good.stderr);
      assert.equal(statSync(good.tbot).mode & 0o777, 0o755);
      const version = await run(good.tbot, ['version']);
      assert.equal(version.code, 0, version.stderr);
      assert.match(version.stdout, /^tbot v/);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('a job without MWI_CA_PIN, or without its ID token, stops with the reason and writes nothing', async () => {
    const noPin = await runJob(job(), { script: ['echo never'] });
    assert.equal(noPin.main.code, 2);
    assert.match(noPin.main.stderr, /mwi: MWI_CA_PIN is required with MWI_AUTH_SERVER: .*Teleport.*set MWI_PROXY/);
    assert.doesNotMatch(noPin.main.stdout, /never/);
    const noToken = merge(job(), { id_tokens: {} }) as Job;
    noToken.id_tokens = {};
    const r = await runJob(noToken, { project: project(), script: ['echo never'] });
    assert.equal(r.main.code, 2);
    assert.match(r.main.stderr, /TBOT_GITLAB_JWT is not set: declare it in the job's id_tokens with the cluster name/);
    assert.deepEqual(readdirSync(r.temp), []);
    const unset = merge(job(), { variables: { MWI_TOKEN: '' } }) as Job;
    const r2 = await runJob(unset, { project: project(), script: ['echo never'] });
    assert.equal(r2.main.code, 2);
    assert.match(r2.main.stderr, /mwi: set MWI_TOKEN \(the join token's name\) and MWI_CLUSTER/);
  });

  it('a wrong MWI_CLUSTER (audience) or another branch is refused; the reason is in the audit log only', async () => {
    const wrongAud = merge(job(), { variables: { MWI_CLUSTER: 'other.example' } }) as Job;
    const r = await runJob(wrongAud, { project: project(), script: ['echo never'] });
    assert.equal(r.main.code, 1, r.main.stderr);
    assert.match(r.main.stderr, /the join was refused: the identity token's aud claim is not acceptable/);
    assert.match(
      String(
        c
          .audit()
          .filter((e) => e.event === 'bot.join' && !e.success)
          .at(-1)?.reason,
      ),
      /"aud"/,
    );
    assert.doesNotMatch(r.main.stdout, /never/);
    assert.equal(r.after.code, 0);
    assert.deepEqual(readdirSync(r.temp), []);
    const dev = await runJob(job(), {
      project: project(),
      script: ['echo never'],
      claims: { ref: 'dev', ref_path: 'refs/heads/dev', sub: 'project_path:octo/app:ref_type:branch:ref:dev' },
    });
    assert.equal(dev.main.code, 1);
    assert.doesNotMatch(dev.main.stderr, /"dev"/);
    const refused = c.audit().filter((e) => e.event === 'bot.join' && !e.success && e.join_method === 'gitlab');
    assert.match(String(refused.at(-1)?.reason), /dev/);
  });
});
