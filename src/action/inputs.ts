import { isAbsolute, join } from 'node:path';
import { RESOURCE_NAME } from '../api/resources.js';
import { MwiError } from '../errors.js';
import { ioReason } from '../util/io-reason.js';

/** The state the main step saves for the post step: the directory to remove. */
export const STATE_DESTINATION = 'destination-dir';

/** An input as the runner gives it: `with:` value or action.yml default, '' when neither. */
export type InputReader = (name: string) => string;

/** What the action's main step does, decided from its inputs before anything runs. */
export interface ActionPlan {
  /** The tbot.yaml (v2) the one-shot run validates and runs: github join, memory storage. */
  tbotYaml: Record<string, unknown>;
  /** The identity output's directory: a fresh one under RUNNER_TEMP, removed by the post step. */
  destination: string;
  /** The step's outputs (Teleport's teleport-actions/auth names). */
  outputs: { 'destination-dir': string; 'identity-file': string; 'ssh-config': string };
  /** Variables exported to the job's later steps (none with disable-env-vars). */
  env: Record<string, string>;
  /** Lines for the step's log: inputs accepted for Teleport's workflows and not used. */
  notes: string[];
}

const bad = (input: string, message: string) => new MwiError('BAD_CONFIG', message, { field: input });

/** Teleport's boolean inputs: '' is false; true/false and 1/0 in any case; anything else is a mistake. */
function boolInput(read: InputReader, name: string): boolean {
  const v = read(name).trim();
  if (v === '' || /^(false|0)$/i.test(v)) return false;
  if (/^(true|1)$/i.test(v)) return true;
  throw bad(name, `expected true or false (got ${JSON.stringify(v)})`);
}

/** One value a line, as @actions/core's getMultilineInput; commas also separate (as tbot's --ca-pin). */
function listInput(read: InputReader, name: string): string[] {
  return read(name)
    .split(/[\n,]/)
    .map((s) => s.trim())
    .filter(Boolean);
}

/**
 * Turns the action's inputs into the tbot run and what the step hands on. Inputs are Teleport's
 * `teleport-actions/auth` (proxy, token, ca-pins, certificate-ttl, anonymous-telemetry,
 * disable-env-vars, allow-reissue) plus mwi's `auth-server`. Throws BAD_CONFIG naming the input.
 * `realpath` resolves RUNNER_TEMP (fs.realpathSync in the step): the directory is planned under
 * the path without links, which the directory destination accepts.
 */
export function planAction(
  read: InputReader,
  runnerTemp: string | undefined,
  id: string,
  realpath: (path: string) => string = (p) => p,
): ActionPlan {
  const token = read('token').trim();
  const authServer = read('auth-server').trim();
  const proxy = read('proxy').trim();
  const caPins = listInput(read, 'ca-pins');
  const ttl = read('certificate-ttl').trim();
  const disableEnv = boolInput(read, 'disable-env-vars');
  const allowReissue = boolInput(read, 'allow-reissue');
  const notes: string[] = [];
  if (read('anonymous-telemetry').trim() !== '')
    notes.push(
      'anonymous-telemetry: ignored: mwi collects no telemetry (the input is accepted for Teleport workflows)',
    );
  if (!token)
    throw bad(
      'token',
      'required: the name of the github join token the bot joins with (tctl tokens ls lists it; the name is not ' +
        'a secret: the proof is the ID token GitHub signs for this job)',
    );
  // refused here, before the runner or the Auth Service is asked anything: otherwise the Auth
  // Service refuses the name after the ID token was fetched (exit 1), and tbot would read an
  // absolute path as a file holding the token
  if (!RESOURCE_NAME.test(token))
    throw bad(
      'token',
      'expected the name of a github join token: letters, digits, ".", "_", "@" or "-", at most 128 (a name, ' +
        'never a secret or a file path: tctl tokens ls lists it)',
    );
  if (authServer && proxy)
    throw bad(
      'proxy',
      'give auth-server or proxy, not both: auth-server is the Auth Service itself, verified with ca-pins; proxy ' +
        'its public address, whose certificate the runner trusts as a public one',
    );
  if (!authServer && !proxy)
    throw bad('auth-server', 'required: the Auth Service address, HOST:PORT (or proxy, its public address)');
  if (authServer && caPins.length === 0)
    throw bad(
      'ca-pins',
      'required with auth-server: mwi trusts the Auth Service on a first join only through its CA pin ' +
        '(tctl status prints it), so that the join goes to no one else. Teleport workflows leave it out because ' +
        'they name a Teleport Proxy, trusted by its public certificate: give proxy instead of auth-server for that',
    );
  if (!runnerTemp || !isAbsolute(runnerTemp))
    throw bad(
      'RUNNER_TEMP',
      'not set (or not an absolute path): this action runs as a step of a GitHub Actions job, whose runner sets it',
    );
  // the runner owns the real path; a self-hosted runner's _work may be a symlink, which the
  // directory destination refuses anywhere on the path (symlinks: try-secure)
  let temp: string;
  try {
    temp = realpath(runnerTemp);
  } catch (err) {
    throw bad('RUNNER_TEMP', `${runnerTemp}: ${ioReason(err)} (the runner makes this directory for each job)`);
  }
  const destination = join(temp, `mwi-${id}`);
  const tbotYaml: Record<string, unknown> = {
    version: 'v2',
    ...(authServer ? { auth_server: authServer } : { proxy_server: proxy }),
    onboarding: { join_method: 'github', token, ca_pins: caPins },
    // the bot's own identity never touches the disk: the run joins, writes the output once, ends
    storage: { type: 'memory' },
    oneshot: true,
    ...(ttl ? { credential_ttl: ttl } : {}),
    outputs: [
      {
        type: 'identity',
        destination: { type: 'directory', path: destination },
        ...(allowReissue ? { allow_reissue: true } : {}),
      },
    ],
  };
  const outputs = {
    'destination-dir': destination,
    'identity-file': join(destination, 'identity'),
    'ssh-config': join(destination, 'ssh_config'),
  };
  // as teleport-actions/auth: tctl (and tbot) in later steps find the address and identity here
  const env: Record<string, string> = disableEnv
    ? {}
    : {
        ...(proxy ? { TELEPORT_PROXY: proxy } : {}),
        TELEPORT_AUTH_SERVER: authServer || proxy,
        TELEPORT_IDENTITY_FILE: outputs['identity-file'],
      };
  return { tbotYaml, destination, outputs, env, notes };
}

/** tbot.yaml keys the action sets from an input: an error about the key names the input. */
const INPUT_OF: Array<[RegExp, string]> = [
  [/^auth_server\b/, 'auth-server'],
  [/^proxy_server\b/, 'proxy'],
  [/^onboarding\.token\b/, 'token'],
  [/^onboarding\.ca_pins\b/, 'ca-pins'],
  [/^credential_ttl\b/, 'certificate-ttl'],
];

/** An error from validating the planned tbot.yaml, reworded to name the input (and the key it set). */
export function inInputTerms(err: unknown): unknown {
  if (!(err instanceof MwiError) || !err.field) return err;
  const field = err.field;
  const input = INPUT_OF.find(([re]) => re.test(field))?.[1];
  if (!input) return err;
  const message = err.message.startsWith(`${field}: `) ? err.message.slice(field.length + 2) : err.message;
  return new MwiError(err.code, `${message} (tbot.yaml ${field})`, { field: input, cause: err });
}
