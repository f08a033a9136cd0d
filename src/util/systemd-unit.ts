// The systemd unit that `tbot install systemd` and `mwi install systemd` print or write: one
// pure function, so both programs harden their service the same way.
import { isAbsolute } from 'node:path';
import { MwiError } from '../errors.js';

export interface UnitSpec {
  /** The [Unit] Description= line. */
  description: string;
  user: string;
  group: string;
  /** The command line: an absolute program, then its arguments. */
  execStart: readonly string[];
  /** The only places the service may write (ProtectSystem=strict makes the rest read-only). */
  readWritePaths: readonly string[];
}

/** Refused anywhere in a unit: systemd reads a line per setting and has no way to escape these. */
function checkText(s: string, field: string): void {
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(s))
    throw new MwiError('BAD_CONFIG', `${JSON.stringify(s)}: a control character cannot go in a systemd unit`, {
      field,
    });
}

/**
 * One word of a systemd command line or path list: `%` is a specifier (`%%` is one percent sign),
 * `$` (command lines only) expands a variable (`$$` is one dollar sign), and a word with blanks,
 * quotes or backslashes is double-quoted with C-style escapes inside.
 */
export function systemdWord(s: string, field: string, commandLine: boolean): string {
  checkText(s, field);
  if (s === '') return '""';
  let w = s.replace(/%/g, '%%');
  if (commandLine) w = w.replace(/\$/g, '$$$$');
  if (!/[\s"'\\;]/.test(w)) return w;
  return `"${w.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** A name systemd takes for User= and Group=. */
function checkName(s: string, field: string): void {
  if (!/^[A-Za-z_][A-Za-z0-9_.-]{0,31}$/.test(s))
    throw new MwiError('BAD_CONFIG', `${JSON.stringify(s)} is not a user or group name systemd accepts`, { field });
}

/** The unit file's text. */
export function systemdUnit(spec: UnitSpec): string {
  checkText(spec.description, 'description');
  checkName(spec.user, '--user');
  checkName(spec.group, '--group');
  const [program] = spec.execStart;
  if (!program || !isAbsolute(program))
    throw new MwiError('BAD_CONFIG', `the service's program must be an absolute path (got ${program ?? 'none'})`);
  for (const p of spec.readWritePaths)
    if (!isAbsolute(p)) throw new MwiError('BAD_CONFIG', `${p}: a writable path must be absolute`);
  const paths = [...new Set(spec.readWritePaths)];
  const exec = spec.execStart.map((a) => systemdWord(a, 'ExecStart', true)).join(' ');
  const lines = [
    '[Unit]',
    `Description=${spec.description}`,
    'After=network-online.target',
    'Wants=network-online.target',
    '',
    '[Service]',
    'Type=simple',
    `User=${spec.user}`,
    `Group=${spec.group}`,
    'Restart=always',
    'RestartSec=5',
    `ExecStart=${exec}`,
    'ExecReload=/bin/kill -HUP $MAINPID',
    'LimitNOFILE=524288',
    '# Hardening. Not MemoryDenyWriteExecute=yes: Node.js (V8) compiles code into memory that is',
    '# writable and executable, and would be killed.',
    'NoNewPrivileges=yes',
    'ProtectSystem=strict',
    ...(paths.length > 0
      ? [`ReadWritePaths=${paths.map((p) => systemdWord(p, 'ReadWritePaths', false)).join(' ')}`]
      : []),
    'ProtectHome=yes',
    'PrivateTmp=yes',
    'PrivateDevices=yes',
    'CapabilityBoundingSet=',
    'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX',
    'SystemCallFilter=@system-service',
    '# a system call outside the filter fails (EPERM) instead of killing the process',
    'SystemCallErrorNumber=EPERM',
    'UMask=0077',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ];
  return lines.join('\n');
}
