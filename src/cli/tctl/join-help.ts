import type { JoinTokenReply } from '../../api/admin.js';
import type { Format } from './format.js';
import { ago } from './format.js';
import { cell, print, toJson } from './output.js';

/**
 * Prints a join token for a bot: a new single-use secret (with the tbot line that reads it from a
 * file), or an existing token bound to the bot (`existing`: its name is no secret, it goes on the
 * command line as Teleport's output has it).
 */
export function printJoinToken(out: JoinTokenReply, addr: string, format: Format, existing = false): void {
  if (format === 'json') return void print(`${toJson(out)}\n`);
  const [token, pin] = [cell(out.token), cell(out.ca_pins[0])];
  const expires = out.expires ? `${ago(out.expires)} (${cell(out.expires)})` : 'never';
  if (!existing) {
    print(
      `The bot token: ${token}\nThis token will expire ${expires}.\nCA pin: ${pin}\n\n` +
        tbotStartHelp(token, addr, pin),
    );
    return;
  }
  print(
    `The bot joins with the existing token ${token} (join method ${cell(out.join_method)}; expires ${expires}).\n` +
      `CA pin: ${pin}\n\nRun this on the machine the bot runs on:\n\n` +
      `> tbot start identity \\\n   --auth-server=${addr} \\\n   --join-method=${cell(out.join_method)} \\\n` +
      `   --token=${token} \\\n   --ca-pin=${pin} \\\n   --storage=./tbot-data \\\n   --destination=./tbot-user\n`,
  );
}

/**
 * How to start tbot with a token. The token goes into a file (written by shell builtins, in a
 * subshell with a private umask) and tbot gets the file's absolute path: argv is readable by
 * every local user through `ps` and /proc, a 0600 file is not (issue #9, finding 13).
 */
export function tbotStartHelp(token: string, addr: string, pin: string): string {
  return (
    'Run this on the machine the bot runs on. The token goes in a file, not on the command line,\n' +
    'where ps shows it to every user (or set TELEPORT_BOT_TOKEN to the token or to the file path):\n\n' +
    `> (umask 077; echo ${token} > tbot-token)\n` +
    `> tbot start \\\n   --auth-server=${addr} \\\n   --join-method=token \\\n   --token="$PWD/tbot-token" \\\n` +
    `   --ca-pin=${pin} \\\n   --data-dir=./tbot-data \\\n   --destination-dir=./tbot-user\n`
  );
}
