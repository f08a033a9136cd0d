import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { MwiError } from '../errors.js';
import { writeFileAtomic } from '../util/fs.js';
import { isSingleExecutable } from '../util/native.js';
import { systemdUnit } from '../util/systemd-unit.js';
import { usageError } from './common.js';

/** The flags of `tbot install systemd` and `mwi install systemd`. */
export interface InstallFlags {
  name?: string | undefined;
  user?: string | undefined;
  group?: string | undefined;
  'systemd-directory'?: string | undefined;
  write?: boolean | undefined;
  force?: boolean | undefined;
}

export const DEFAULT_SYSTEMD_DIRECTORY = '/etc/systemd/system';

/**
 * How to run this very program again: node (absolute) and the script it runs, or the program
 * alone when it is a single executable (no script beside it).
 */
export function selfCommand(): string[] {
  // (in a single executable argv[1] is the name it was started by, `tbot` when found on PATH)
  if (isSingleExecutable()) return [process.execPath];
  const script = process.argv[1];
  if (!script || resolve(script) === process.execPath) return [process.execPath];
  return [process.execPath, resolve(script)];
}

/** Places ProtectHome=yes hides from the service. */
const HIDDEN = /^\/(home|root|run\/user)(\/|$)/;

/** Prints the unit, or writes NAME.service (0644, atomically) with --write. */
export function installSystemd(
  flags: InstallFlags,
  unit: {
    description: string;
    defaultName: string;
    defaultUser: string;
    execStart: string[];
    readWritePaths: string[];
  },
): void {
  const name = flags.name ?? unit.defaultName;
  if (!/^[A-Za-z0-9:_.\\-]+$/.test(name) || name.startsWith('.'))
    throw usageError(`${JSON.stringify(name)} cannot name a systemd service`, '--name');
  const text = systemdUnit({
    description: unit.description,
    user: flags.user ?? unit.defaultUser,
    group: flags.group ?? unit.defaultUser,
    execStart: unit.execStart,
    readWritePaths: unit.readWritePaths,
  });
  for (const p of unit.execStart.filter((a) => a.startsWith('/')))
    if (HIDDEN.test(p))
      process.stderr.write(
        `warning: ${p} is under /home, /root or /run/user, which ProtectHome=yes hides from the service\n`,
      );
  for (const p of unit.readWritePaths)
    if (!existsSync(p))
      process.stderr.write(
        `note: ${p} does not exist yet: create it, owned by the service's user, before starting the service ` +
          '(systemd refuses to start a service whose ReadWritePaths are missing)\n',
      );
  if (!flags.write) return void process.stdout.write(text);
  const dir = resolve(flags['systemd-directory'] ?? DEFAULT_SYSTEMD_DIRECTORY);
  const path = join(dir, `${name}.service`);
  let existing: string | undefined;
  try {
    existing = readFileSync(path, 'utf8');
  } catch {
    // none yet
  }
  if (existing === text) return void process.stderr.write(`${path} is unchanged\n`);
  if (existing !== undefined && !flags.force)
    throw usageError(`${path} exists with other content; --force replaces it`, '--force');
  try {
    writeFileAtomic(path, text, 0o644);
  } catch (cause) {
    throw new MwiError('BAD_CONFIG', `cannot write ${path}`, { field: '--systemd-directory', cause });
  }
  process.stderr.write(
    `Wrote ${path}. Then: systemctl daemon-reload && systemctl enable --now ${name}\n` +
      `(logs: journalctl -u ${name}; reload: systemctl reload ${name})\n`,
  );
}

/** The directory a --pid-file is written in: it must be writable too. */
export const pidDir = (pidFile: string): string => dirname(resolve(pidFile));
