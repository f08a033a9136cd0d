import type { AdminClient } from '../../api/admin-client.js';
import type { JoinTokenReply } from '../../api/admin.js';
import type { Format } from './format.js';
import { ago } from './format.js';
import { cell, print, toJson } from './output.js';

/** Where tbot reaches the Auth Service: the address tctl uses (with the CA pin) and a public one, if any. */
export interface JoinAddresses {
  /** The address tctl itself uses, for `--auth-server` with `--ca-pin`. */
  auth: string;
  /** HOST:PORT of a name the operator's certificate is for, for `--proxy-server` without a pin. */
  proxy?: string | undefined;
}

/**
 * The addresses a start line names. A public one comes from the Auth Service (status
 * `public_addrs`: the names of the certificate it serves from `--tls-cert`/`https_keypairs`); it
 * is asked for only when the line is printed (text output).
 */
export async function joinAddresses(admin: AdminClient, format: Format): Promise<JoinAddresses> {
  const auth = admin.addrs.join(',');
  if (format === 'json') return { auth };
  const { public_addrs: publicAddrs } = await admin.status();
  return { auth, proxy: publicAddrs?.[0] };
}

/** The tbot flags and lines after the address flag, continued with ` \` as Teleport prints them. */
function startLines(first: string, address: string, rest: string[]): string {
  return [first, address, ...rest].join(' \\\n   ') + '\n';
}

/** How tbot is told where the Auth Service is: the public address (system trust store) or the pinned one. */
function addressFlags(addrs: JoinAddresses, pin: string): { proxy?: string; pinned: [string, string] } {
  return {
    ...(addrs.proxy ? { proxy: `--proxy-server=${cell(addrs.proxy)}` } : {}),
    pinned: [`--auth-server=${cell(addrs.auth)}`, `--ca-pin=${pin}`],
  };
}

/** Said between the `--proxy-server` line and the pinned one. */
function orPinned(proxy: string): string {
  return (
    `\ntbot verifies ${cell(proxy)} with the system trust store (the certificate the Auth Service serves\n` +
    'for that name), as with a Teleport Proxy. Or, with the CA pin (no public certificate needed):\n\n'
  );
}

/** The file the printed start line reads a bound_keypair registration secret from. */
const REGISTRATION_SECRET_FILE = 'registration-secret';

/** Said before the start line of a bound_keypair token that waits for its registration secret. */
const REGISTRATION_SECRET_HELP =
  'On the machine the bot runs on, write the registration secret shown when the token was made (the token\n' +
  `waits for it) into ./${REGISTRATION_SECRET_FILE}, readable only by you (0600), then run this:\n\n` +
  `> (umask 077; echo SECRET > ${REGISTRATION_SECRET_FILE})\n`;

/**
 * Prints a join token for a bot: a new single-use secret (with the tbot line that reads it from a
 * file), or an existing token bound to the bot (`existing`: its name is no secret, it goes on the
 * command line as Teleport's output has it). When the Auth Service serves a certificate for a
 * public name, the first line joins through it (`--proxy-server`, no pin, as Teleport's tctl
 * prints it) and the pinned line follows as the alternative.
 */
export function printJoinToken(out: JoinTokenReply, addrs: JoinAddresses, format: Format, existing = false): void {
  if (format === 'json') return void print(`${toJson(out)}\n`);
  const [token, pin] = [cell(out.token), cell(out.ca_pins[0])];
  const expires = out.expires ? `${ago(out.expires)} (${cell(out.expires)})` : 'never';
  if (!existing) {
    print(
      `The bot token: ${token}\nThis token will expire ${expires}.\nCA pin: ${pin}\n\n` +
        tbotStartHelp(token, addrs, pin),
    );
    return;
  }
  const { proxy, pinned } = addressFlags(addrs, pin);
  // a bound_keypair token that waits for its secret refuses a first join without it
  const secret = out.awaits_registration_secret === true;
  const rest = [
    `--join-method=${cell(out.join_method)}`,
    `--token=${token}`,
    ...(secret ? [`--registration-secret-path=./${REGISTRATION_SECRET_FILE}`] : []),
    '--storage=./tbot-data',
    '--destination=./tbot-user',
  ];
  const flags = secret ? 3 : 2;
  const line = (address: string, more: string[] = []) =>
    startLines('> tbot start identity', address, [...rest.slice(0, flags), ...more, ...rest.slice(flags)]);
  print(
    `The bot joins with the existing token ${token} (join method ${cell(out.join_method)}; expires ${expires}).\n` +
      `CA pin: ${pin}\n\n${secret ? REGISTRATION_SECRET_HELP : 'Run this on the machine the bot runs on:\n\n'}` +
      (proxy ? `${line(proxy)}${orPinned(addrs.proxy!)}` : '') +
      line(pinned[0], [pinned[1]]) +
      guideHint(out.join_method),
  );
}

/** The deploy guide of a platform's join method: the line above is a VM's, not a CI job's or a pod's. */
const GUIDES: Readonly<Record<string, string>> = {
  github: 'github-actions.md (the action)',
  gitlab: 'gitlab-ci.md (the include: template)',
  circleci: 'circleci.md',
  kubernetes: 'kubernetes.md (deploy/kubernetes)',
  iam: 'aws.md',
  ec2: 'aws.md',
  azure: 'azure.md',
};

function guideHint(method: string): string {
  const ci = ['bitbucket', 'azure_devops', 'spacelift', 'terraform_cloud'].includes(method);
  const guide = GUIDES[method] ?? (ci ? 'other-ci.md' : undefined);
  if (!guide) return '';
  return (
    `\nIn a CI job or a pod, follow docs/deploy/${guide} instead: a job runs tbot --oneshot with ` +
    '--storage=memory:// (nothing left on the runner).\n'
  );
}

/**
 * How to start tbot with a token. The token goes into a file (written by shell builtins, in a
 * subshell with a private umask) and tbot gets the file's absolute path: argv is readable by
 * every local user through `ps` and /proc, a 0600 file is not (issue #9, finding 13).
 */
export function tbotStartHelp(token: string, addrs: JoinAddresses, pin: string): string {
  const { proxy, pinned } = addressFlags(addrs, pin);
  const rest = ['--join-method=token', '--token="$PWD/tbot-token"', '--data-dir=./tbot-data'];
  const line = (address: string, more: string[] = []) =>
    startLines('> tbot start', address, [
      ...rest.slice(0, 2),
      ...more,
      ...rest.slice(2),
      '--destination-dir=./tbot-user',
    ]);
  return (
    'Run this on the machine the bot runs on. The token goes in a file, not on the command line,\n' +
    'where ps shows it to every user (or set TELEPORT_BOT_TOKEN to the token or to the file path):\n\n' +
    `> (umask 077; echo ${token} > tbot-token)\n` +
    (proxy ? `${line(proxy)}${orPinned(addrs.proxy!)}` : '') +
    line(pinned[0], [pinned[1]])
  );
}
