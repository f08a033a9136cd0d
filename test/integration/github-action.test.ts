// The GitHub Action (action.yml, src/action): its bundled entry points run as a runner runs them
// (node <runs.main>, then node <runs.post>), in a directory with no node_modules, with the
// environment a runner gives: INPUT_* from action.yml's inputs and the step's `with:`, the file
// commands (GITHUB_OUTPUT, GITHUB_ENV, GITHUB_STATE), RUNNER_TEMP, and the ID token request
// endpoint (ACTIONS_ID_TOKEN_REQUEST_URL/TOKEN) served by a test issuer with GitHub's claim shape.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import { GITHUB_ISSUER } from '../../src/join/github/wire.js';
import { addDeployerBot, clusterFile, oidcOverride, startCluster, type TestCluster } from '../helpers/cluster.js';
import { REPO_ROOT, run, tempDir, waitFor, type RunResult } from '../helpers/procs.js';
import { guideFile } from '../helpers/docs-blocks.js';
import { startIssuer, type TestIssuer } from '../helpers/oidc-issuer.js';
import { makePublicPki } from '../helpers/public-pki.js';
import { startSshd, type Sshd } from '../helpers/sshd.js';

const GUIDE = join(REPO_ROOT, 'docs/deploy/github-actions.md');

interface ActionYml {
  inputs: Record<string, { default?: string }>;
  outputs: Record<string, unknown>;
  runs: { using: string; main: string; post: string };
}

/** The claims GitHub puts in a job's ID token (push to main of octo/app). */
const GITHUB_CLAIMS = {
  sub: 'repo:octo/app:ref:refs/heads/main',
  repository: 'octo/app',
  repository_id: '123456',
  repository_owner: 'octo',
  repository_owner_id: '42',
  repository_visibility: 'private',
  ref: 'refs/heads/main',
  ref_type: 'branch',
  ref_protected: 'true',
  sha: '9f1c0a7e5b3d2c1f0e9d8c7b6a5f4e3d2c1b0a99',
  workflow: 'deploy',
  workflow_ref: 'octo/app/.github/workflows/deploy.yml@refs/heads/main',
  workflow_sha: '9f1c0a7e5b3d2c1f0e9d8c7b6a5f4e3d2c1b0a99',
  job_workflow_ref: 'octo/app/.github/workflows/deploy.yml@refs/heads/main',
  job_workflow_sha: '9f1c0a7e5b3d2c1f0e9d8c7b6a5f4e3d2c1b0a99',
  event_name: 'push',
  actor: 'mona',
  actor_id: '7',
  run_id: '5555',
  run_number: '12',
  run_attempt: '1',
  runner_environment: 'github-hosted',
  head_ref: '',
  base_ref: '',
};

/** Parses a file command file (`NAME<<DELIMITER`, the value's lines, `DELIMITER`), as the runner does. */
function fileCommands(path: string): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = existsSync(path) ? readFileSync(path, 'utf8').split('\n') : [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (!line) continue;
    const m = /^([^=<]+)<<(.+)$/.exec(line);
    if (!m) {
      const eq = line.indexOf('=');
      out[line.slice(0, eq)] = line.slice(eq + 1);
      continue;
    }
    const value: string[] = [];
    for (i++; i < lines.length && lines[i] !== m[2]; i++) value.push(lines[i]!);
    out[m[1]!] = value.join('\n');
  }
  return out;
}

/** What one step left: its exit, output, and the file commands it wrote. */
interface StepResult extends RunResult {
  outputs: Record<string, string>;
  env: Record<string, string>;
  state: Record<string, string>;
}

const JWT = /eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+/;

describe('the GitHub Action: bundled main and post steps with a runner environment', () => {
  const tmp = tempDir('gh-action');
  /** The action as a runner checks it out: action.yml and the bundle, no node_modules. */
  const actionDir = join(tmp.path, 'action-checkout');
  let action: ActionYml;
  let c: TestCluster;
  let gh: TestIssuer;
  let sshd: Sshd;
  let publicRoot: string;
  let hanging: Server;
  let hangingUrl: string;
  const me = userInfo().username;
  let jobs = 0;

  /** A fresh job: its RUNNER_TEMP, workspace and file-command files. */
  function newJob() {
    const dir = join(tmp.path, `job-${++jobs}`);
    for (const d of ['temp', 'workspace', 'files']) mkdirSync(join(dir, d), { recursive: true, mode: 0o700 });
    return {
      temp: join(dir, 'temp'),
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: dir,
        CI: 'true',
        GITHUB_ACTIONS: 'true',
        GITHUB_REPOSITORY: 'octo/app',
        GITHUB_WORKSPACE: join(dir, 'workspace'),
        RUNNER_OS: 'Linux',
        RUNNER_TEMP: join(dir, 'temp'),
        GITHUB_OUTPUT: join(dir, 'files', 'output'),
        GITHUB_ENV: join(dir, 'files', 'env'),
        GITHUB_STATE: join(dir, 'files', 'state'),
        ACTIONS_ID_TOKEN_REQUEST_URL: `${gh.url}/token?api-version=2.0`,
        ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'runner-request-token',
      } as Record<string, string>,
    };
  }

  /** Runs `node <runs.main|post>` as the runner does for a step `uses:` this action `with:` these inputs. */
  function step(
    which: 'main' | 'post',
    job: ReturnType<typeof newJob>,
    inputs: Record<string, string>,
    opts: { state?: Record<string, string>; env?: Record<string, string>; onSpawn?: (pid: number) => void } = {},
  ): Promise<StepResult> {
    for (const k of Object.keys(inputs)) assert.ok(k in action.inputs, `action.yml declares no input ${k}`);
    const env: Record<string, string> = { ...job.env, ...opts.env };
    // the runner sets every declared input: the step's value, else the default, else ''
    for (const [name, spec] of Object.entries(action.inputs))
      env[`INPUT_${name.replace(/ /g, '_').toUpperCase()}`] = inputs[name] ?? spec.default ?? '';
    for (const [k, v] of Object.entries(opts.state ?? {})) env[`STATE_${k}`] = v;
    for (const f of ['GITHUB_OUTPUT', 'GITHUB_ENV', 'GITHUB_STATE']) writeFileSync(env[f]!, '');
    return new Promise((done, fail) => {
      const child = spawn(process.execPath, [join(actionDir, action.runs[which])], {
        cwd: env.GITHUB_WORKSPACE,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      opts.onSpawn?.(child.pid!);
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      child.on('error', fail);
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        done({
          code,
          signal,
          stdout,
          stderr,
          outputs: fileCommands(env.GITHUB_OUTPUT!),
          env: fileCommands(env.GITHUB_ENV!),
          state: fileCommands(env.GITHUB_STATE!),
        });
      });
    });
  }

  const mode = (p: string) => statSync(p).mode & 0o777;

  before(async () => {
    action = parse(readFileSync(join(REPO_ROOT, 'action.yml'), 'utf8')) as ActionYml;
    assert.equal(action.runs.using, 'node20');
    // the bundle is built at release, not committed: build it fresh from the sources under test
    mkdirSync(actionDir);
    copyFileSync(join(REPO_ROOT, 'action.yml'), join(actionDir, 'action.yml'));
    const outdir = join(actionDir, dirname(action.runs.main));
    assert.equal(dirname(action.runs.post), dirname(action.runs.main));
    const built = await run(process.execPath, [join(REPO_ROOT, 'scripts/build-action.mjs'), '--outdir', outdir]);
    assert.equal(built.code, 0, built.stderr);
    // reproducible: a second build elsewhere gives the same bytes (how a release tag is checked)
    const again = join(tmp.path, 'rebuilt');
    assert.equal(
      (await run(process.execPath, [join(REPO_ROOT, 'scripts/build-action.mjs'), '--outdir', again])).code,
      0,
    );
    for (const f of ['main.cjs', 'post.cjs'])
      assert.ok(readFileSync(join(outdir, f)).equals(readFileSync(join(again, f))));
    gh = await startIssuer({ issuer: GITHUB_ISSUER });
    // the Auth Service also serves a "publicly trusted" certificate, for Teleport's proxy input
    const pki = await makePublicPki(tmp.path);
    publicRoot = pki.root;
    const leaf = await pki.issue('public', 'DNS:localhost,IP:127.0.0.1');
    c = await startCluster('actions.example', oidcOverride(GITHUB_ISSUER, gh.url), [
      '--tls-cert',
      leaf.cert,
      '--tls-key',
      leaf.key,
    ]);
    await c.addBot('ci', [me]);
    await c.tctlOk([
      'create',
      '-f',
      clusterFile(
        c,
        'gh-token.yaml',
        'kind: token\nversion: v2\nmetadata: { name: gh-deploy }\nspec:\n  join_method: github\n  bot_name: ci\n' +
          '  github:\n    allow:\n      - { repository: octo/app, ref: refs/heads/main }\n',
      ),
    ]);
    // the guide's token, as it is; its role lets this test's user log in (the guide's says deploy)
    await c.tctlOk(['create', '-f', clusterFile(c, 'github-token.yaml', guideFile(GUIDE, 'github-token.yaml'))]);
    await addDeployerBot(c, 'github-deployer', me, 'github-deploy');
    sshd = await startSshd(c, join(tmp.path, 'sshd'));
    // an ID token endpoint that never answers (a runner whose token service hangs)
    hanging = createServer(() => {});
    await new Promise<void>((r) => hanging.listen(0, '127.0.0.1', r));
    hangingUrl = `http://127.0.0.1:${(hanging.address() as AddressInfo).port}/token`;
  });
  after(async () => {
    hanging?.closeAllConnections();
    await new Promise<void>((r) => (hanging ? hanging.close(() => r()) : r()));
    await sshd?.stop();
    await c?.stop();
    await gh?.close();
    tmp.cleanup();
  });

  it('main joins with the job ID token, sets the outputs and env; ssh logs in with ssh-config; post removes them', async () => {
    gh.tokenEndpointClaims = GITHUB_CLAIMS;
    const job = newJob();
    const inputs = { 'auth-server': c.addr, 'ca-pins': c.caPin, token: 'gh-deploy', 'certificate-ttl': '10m' };
    const main = await step('main', job, inputs);
    assert.equal(main.code, 0, main.stdout + main.stderr);
    assert.deepEqual(Object.keys(main.outputs).sort(), Object.keys(action.outputs).sort());
    const dest = main.outputs['destination-dir']!;
    assert.equal(dirname(dest), job.temp);
    assert.equal(mode(dest), 0o700);
    assert.equal(main.outputs['identity-file'], join(dest, 'identity'));
    assert.equal(main.outputs['ssh-config'], join(dest, 'ssh_config'));
    assert.match(readFileSync(main.outputs['identity-file'], 'utf8'), /-----BEGIN CERTIFICATE-----/);
    // Teleport's variables for later steps; no TELEPORT_PROXY: auth-server is not a public address
    assert.deepEqual(main.env, {
      TELEPORT_AUTH_SERVER: c.addr,
      TELEPORT_IDENTITY_FILE: join(dest, 'identity'),
    });
    assert.equal(main.state['destination-dir'], dest);
    // the certificate lives as long as certificate-ttl asked
    const cert = await run('ssh-keygen', ['-L', '-f', join(dest, 'key-cert.pub')]);
    const valid = /Valid: from (\S+) to (\S+)/.exec(cert.stdout);
    assert.ok(valid, cert.stdout);
    const minutes = (Date.parse(valid[2]!) - Date.parse(valid[1]!)) / 60_000;
    assert.ok(minutes > 9 && minutes <= 11, `${minutes} minutes`);
    // nothing secret in the step's log: no ID token, no key; the key's lines are masked for later steps
    const log = main.stdout + main.stderr;
    assert.doesNotMatch(log, JWT);
    assert.doesNotMatch(log, /PRIVATE KEY/);
    const keyLines = readFileSync(join(dest, 'key'), 'utf8')
      .split('\n')
      .filter((l) => l && !l.startsWith('-----'));
    assert.ok(keyLines.length > 0);
    for (const l of keyLines) assert.ok(main.stdout.includes(`::add-mask::${l}`), 'the key lines are masked');
    // a later step: ssh with the output
    const login = await run('ssh', [
      '-F',
      main.outputs['ssh-config'],
      '-p',
      String(sshd.port),
      '-o',
      'BatchMode=yes',
      `${me}@127.0.0.1`,
      'echo from-the-action',
    ]);
    assert.equal(login.code, 0, login.stderr);
    assert.equal(login.stdout.trim(), 'from-the-action');
    const joined = c.audit().filter((e) => e.event === 'bot.join' && e.join_method === 'github' && e.success);
    assert.equal(joined.at(-1)?.repository, 'octo/app');
    // the post step, with the state the main step saved
    const post = await step('post', job, inputs, { state: main.state });
    assert.equal(post.code, 0, post.stdout + post.stderr);
    assert.equal(existsSync(dest), false);
    assert.deepEqual(readdirSync(job.temp), []);
    assert.match(post.stdout, /removed the credentials/);
  });

  it("the guide's workflow: its step's with: as written, its permissions; the Deploy step logs in", async () => {
    const workflow = parse(guideFile(GUIDE, 'deploy.yml')) as {
      permissions: Record<string, string>;
      jobs: Record<string, { steps: Array<{ uses?: string; with?: Record<string, string>; run?: string }> }>;
    };
    assert.equal(workflow.permissions['id-token'], 'write');
    const steps = workflow.jobs.deploy!.steps;
    const uses = steps.find((st) => st.uses && /\/mwi@/.test(st.uses));
    assert.ok(uses?.with, 'the workflow uses the action');
    // what the runner makes of the expressions: the repository variable, and the guide's address
    const inputs = Object.fromEntries(
      Object.entries(uses.with).map(([k, v]) => [
        k,
        String(v).replace('${{ vars.MWI_CA_PIN }}', c.caPin).replaceAll('auth.example.com:3025', c.addr),
      ]),
    );
    gh.tokenEndpointClaims = GITHUB_CLAIMS;
    const job = newJob();
    const main = await step('main', job, inputs);
    assert.equal(main.code, 0, main.stdout + main.stderr);
    // the Deploy step's command with the output, to this test's sshd
    const deploy = steps.find((st) => st.run?.includes('steps.mwi.outputs.ssh-config'));
    assert.ok(deploy, 'a later step uses the ssh-config output');
    const login = await run('ssh', [
      '-F',
      main.outputs['ssh-config']!,
      '-p',
      String(sshd.port),
      '-o',
      'BatchMode=yes',
      `${me}@127.0.0.1`,
      'echo deployed',
    ]);
    assert.equal(login.code, 0, login.stderr);
    assert.equal(login.stdout.trim(), 'deployed');
    assert.equal((await step('post', job, inputs, { state: main.state })).code, 0);
    assert.deepEqual(readdirSync(job.temp), []);
  });

  it("Teleport's inputs: proxy (public certificate, no pin), anonymous-telemetry ignored, disable-env-vars", async () => {
    gh.tokenEndpointClaims = GITHUB_CLAIMS;
    const job = newJob();
    // the runner's trust store knows the public CA (a real runner: Let's Encrypt and the like)
    const trusted = { NODE_EXTRA_CA_CERTS: publicRoot, RUNNER_DEBUG: '1' };
    const inputs = { proxy: c.addr, token: 'gh-deploy', 'anonymous-telemetry': '1' };
    const main = await step('main', job, inputs, { env: trusted });
    assert.equal(main.code, 0, main.stdout + main.stderr);
    assert.match(main.stdout, /anonymous-telemetry: ignored: mwi collects no telemetry/);
    assert.deepEqual(main.env, {
      TELEPORT_PROXY: c.addr,
      TELEPORT_AUTH_SERVER: c.addr,
      TELEPORT_IDENTITY_FILE: main.outputs['identity-file'],
    });
    // debug logging (RUNNER_DEBUG) prints no ID token either
    assert.match(main.stderr, /DEBUG/);
    assert.doesNotMatch(main.stdout + main.stderr, JWT);
    const quiet = await step('main', newJob(), { ...inputs, 'disable-env-vars': 'true' }, { env: trusted });
    assert.equal(quiet.code, 0, quiet.stdout + quiet.stderr);
    assert.deepEqual(quiet.env, {});
    assert.ok(existsSync(quiet.outputs['identity-file']!));
  });

  it('missing, empty or bad inputs: a clear ::error:: naming the input, a failed step, nothing written', async () => {
    const base = { 'auth-server': c.addr, 'ca-pins': c.caPin, token: 'gh-deploy' };
    const cases: Array<[Record<string, string>, RegExp]> = [
      [{ ...base, token: '' }, /^::error::token: required: the name of the github join token/m],
      [{ ...base, token: '   ' }, /^::error::token: required/m],
      [{ token: 'gh-deploy' }, /^::error::auth-server: required: the Auth Service address/m],
      [
        { ...base, 'ca-pins': '' },
        /^::error::ca-pins: required with auth-server: .*CA pin.*Teleport workflows leave it out.*give proxy/m,
      ],
      [{ ...base, proxy: c.addr }, /^::error::proxy: give auth-server or proxy, not both/m],
      [{ ...base, 'certificate-ttl': 'forever' }, /^::error::certificate-ttl: .*\(tbot\.yaml credential_ttl\)/m],
      [{ ...base, 'certificate-ttl': '48h' }, /^::error::certificate-ttl: at most 24h \(got 48h\)/m],
      [{ ...base, 'ca-pins': 'sha256:nothex' }, /^::error::ca-pins: .*\(tbot\.yaml onboarding\.ca_pins\[0\]\)/m],
      [{ ...base, 'disable-env-vars': 'yes' }, /^::error::disable-env-vars: expected true or false \(got "yes"\)/m],
    ];
    for (const [inputs, error] of cases) {
      const job = newJob();
      const r = await step('main', job, inputs);
      assert.equal(r.code, 2, `${JSON.stringify(inputs)}: ${r.stdout}${r.stderr}`);
      assert.match(r.stdout, error);
      assert.deepEqual(r.outputs, {});
      assert.deepEqual(r.env, {});
      assert.deepEqual(readdirSync(job.temp), [], 'nothing written under RUNNER_TEMP');
      const post = await step('post', job, inputs, { state: r.state });
      assert.equal(post.code, 0, post.stdout);
    }
    // no RUNNER_TEMP: not a runner
    const job = newJob();
    const r = await step('main', job, base, { env: { RUNNER_TEMP: '' } });
    assert.equal(r.code, 2);
    assert.match(r.stdout, /^::error::RUNNER_TEMP: not set/m);
    // a RUNNER_TEMP that does not exist: said so, with nothing saved for the post step
    const gone = await step('main', newJob(), base, { env: { RUNNER_TEMP: join(tmp.path, 'no-such-temp') } });
    assert.equal(gone.code, 2, gone.stdout);
    assert.match(gone.stdout, /^::error::RUNNER_TEMP: .*no-such-temp: no such file or directory/m);
    assert.deepEqual(gone.state, {});
  });

  it('a malformed token name exits 2 before the token endpoint or the Auth Service is asked anything', async () => {
    // a token endpoint that counts what it is asked (a malformed name must not cost a job's ID token)
    let asked = 0;
    const endpoint = createServer((_req, res) => {
      asked++;
      res.writeHead(500).end();
    });
    await new Promise<void>((r) => endpoint.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(endpoint.address() as AddressInfo).port}/token`;
    const joins = () => c.audit().filter((e) => e.event === 'bot.join').length;
    const before = joins();
    try {
      const secretFile = join(tmp.path, 'a-file');
      writeFileSync(secretFile, 'gh-deploy\n');
      // a space, a path (tbot would read an absolute one as a file), a name too long, a control character
      for (const token of ['gh deploy', '../gh-deploy', secretFile, 'x'.repeat(129), 'gh-deploy\u0007']) {
        const job = newJob();
        const inputs = { 'auth-server': c.addr, 'ca-pins': c.caPin, token };
        const r = await step('main', job, inputs, { env: { ACTIONS_ID_TOKEN_REQUEST_URL: url } });
        assert.equal(r.code, 2, `${JSON.stringify(token)}: ${r.stdout}${r.stderr}`);
        assert.match(r.stdout, /^::error::token: expected the name of a github join token: letters, digits/m);
        assert.deepEqual(r.outputs, {});
        assert.deepEqual(r.state, {}, 'no state: the post step has nothing to remove');
        assert.deepEqual(readdirSync(job.temp), [], 'nothing written under RUNNER_TEMP');
      }
      assert.equal(asked, 0, 'the ID token endpoint was not asked');
      assert.equal(joins(), before, 'the Auth Service saw no join');
    } finally {
      await new Promise<void>((r) => endpoint.close(() => r()));
    }
  });

  it('RUNNER_TEMP through a symlink (a self-hosted runner whose _work is a link): its real path is used', async () => {
    gh.tokenEndpointClaims = GITHUB_CLAIMS;
    const job = newJob();
    const link = join(dirname(job.temp), 'temp-link');
    symlinkSync(job.temp, link);
    const env = { RUNNER_TEMP: link };
    const inputs = { 'auth-server': c.addr, 'ca-pins': c.caPin, token: 'gh-deploy' };
    const main = await step('main', job, inputs, { env });
    assert.equal(main.code, 0, main.stdout + main.stderr);
    const dest = main.outputs['destination-dir']!;
    assert.equal(dirname(dest), realpathSync(job.temp));
    assert.equal(mode(dest), 0o700);
    assert.equal(main.env.TELEPORT_IDENTITY_FILE, join(dest, 'identity'));
    assert.ok(existsSync(main.outputs['ssh-config']!));
    const post = await step('post', job, inputs, { state: main.state, env });
    assert.equal(post.code, 0, post.stdout + post.stderr);
    assert.match(post.stdout, /removed the credentials/);
    assert.deepEqual(readdirSync(job.temp), []);
    // the post step still removes only RUNNER_TEMP/mwi-<uuid>: not one of that shape elsewhere
    const elsewhere = join(tmp.path, 'elsewhere', 'mwi-0b7e4f7c-2d1a-4c55-9a8e-3f1b2c3d4e5f');
    mkdirSync(elsewhere, { recursive: true });
    const guarded = await step('post', job, inputs, { state: { 'destination-dir': elsewhere }, env });
    assert.equal(guarded.code, 0);
    assert.match(guarded.stdout, /^::warning::not removing .*elsewhere/m);
    assert.ok(existsSync(elsewhere));
  });

  it('an ID token of another repository is refused by the Auth Service; the claims go to its audit log only', async () => {
    gh.tokenEndpointClaims = { ...GITHUB_CLAIMS, sub: 'repo:evil/fork:ref:refs/heads/main', repository: 'evil/fork' };
    const job = newJob();
    const inputs = { 'auth-server': c.addr, 'ca-pins': c.caPin, token: 'gh-deploy' };
    const r = await step('main', job, inputs);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /^::error::.*the identity token matches none of the token's allow rules/m);
    assert.doesNotMatch(r.stdout + r.stderr, /evil\/fork/);
    assert.deepEqual(r.outputs, {});
    const refused = c.audit().filter((e) => e.event === 'bot.join' && !e.success && e.join_method === 'github');
    assert.match(String(refused.at(-1)?.reason), /evil\/fork/);
    const post = await step('post', job, inputs, { state: r.state });
    assert.equal(post.code, 0);
    assert.deepEqual(readdirSync(job.temp), []);
  });

  it('the ID token endpoint: missing (no id-token permission), refusing, or hanging until the job is cancelled', async () => {
    gh.tokenEndpointClaims = GITHUB_CLAIMS;
    const inputs = { 'auth-server': c.addr, 'ca-pins': c.caPin, token: 'gh-deploy' };
    const noPermission = await step('main', newJob(), inputs, {
      env: { ACTIONS_ID_TOKEN_REQUEST_URL: '', ACTIONS_ID_TOKEN_REQUEST_TOKEN: '' },
    });
    assert.notEqual(noPermission.code, 0);
    assert.match(noPermission.stdout, /^::error::.*needs "permissions: id-token: write"/m);
    const refusing = await step('main', newJob(), inputs, { env: { ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'expired' } });
    assert.equal(refusing.code, 1);
    assert.match(refusing.stdout, /^::error::the GitHub Actions token endpoint answered HTTP 401/m);
    // cancelled half-way (killed while it waits for the token): post still removes what it made
    const job = newJob();
    let pid = 0;
    const pending = step('main', job, inputs, {
      env: { ACTIONS_ID_TOKEN_REQUEST_URL: hangingUrl },
      onSpawn: (p) => (pid = p),
    });
    const dest = await waitFor('the main step to save its state', () => {
      const saved = fileCommands(job.env.GITHUB_STATE!)['destination-dir'];
      return saved && existsSync(saved) ? saved : undefined;
    });
    process.kill(pid, 'SIGKILL');
    const killed = await pending;
    assert.equal(killed.signal, 'SIGKILL');
    const post = await step('post', job, inputs, { state: killed.state });
    assert.equal(post.code, 0, post.stdout);
    assert.equal(existsSync(dest), false);
    // a state that names anything else is left alone, with a warning, and the job does not fail
    const outside = join(tmp.path, 'not-ours');
    mkdirSync(outside);
    const guarded = await step('post', newJob(), inputs, { state: { 'destination-dir': outside } });
    assert.equal(guarded.code, 0);
    assert.match(guarded.stdout, /^::warning::not removing .*not-ours/m);
    assert.ok(existsSync(outside));
  });
});
