import { parseArgs } from 'node:util';
import { parseDuration } from '../../util/duration.js';
import { parseFlags, usageError } from '../common.js';
import { didYouMean } from './suggest.js';
import {
  argCounts,
  childrenOf,
  flagsOf,
  isGroup,
  namesOf,
  parseOptions,
  type CommandDef,
  type FlagDef,
  type FlagValues,
  type ProgramDef,
  type ResolvedFlag,
} from './table.js';

/** A command line, read against its program's table. */
export interface CommandLine<R extends Record<string, FlagDef>> {
  /** The command named; undefined when none is (the program alone, or `help`). */
  command: CommandDef | undefined;
  /** The command's canonical path (aliases replaced); '' for none. */
  path: string;
  /** The arguments after the command's words. */
  args: string[];
  values: FlagValues<R>;
  /** -h, --help, or `help` as the first word: show help for `command` (or the program). */
  help: boolean;
}

interface Resolution {
  command: CommandDef | undefined;
  /** How many words named it. */
  used: number;
  /** The words name no command (`unknown`), or a group of commands and none of them (`group`). */
  error?: { kind: 'unknown' | 'group'; error: Error };
}

/** The quoted command a user meant, for a message. */
const quoted = (program: ProgramDef, path: string) => `"${program.name} ${path}"`;

/** Walks the words down the command tree: each word names a child of the command before it. */
function resolve(program: ProgramDef, words: string[]): Resolution {
  let command: CommandDef | undefined;
  let used = 0;
  while (used < words.length && (command === undefined || isGroup(program, command))) {
    const word = words[used]!;
    const kids = childrenOf(program, command?.path ?? '');
    const next = kids.find((c) => namesOf(c).includes(word));
    if (!next) {
      const here = command ? `${command.path} ${word}` : word;
      const names = kids.flatMap((c) => namesOf(c));
      const canonical = (name: string) => {
        const c = kids.find((k) => namesOf(k).includes(name))!;
        return JSON.stringify(c.path);
      };
      const spaced =
        word.trim() !== word && names.includes(word.trim())
          ? ` (it has spaces around it: did you mean ${canonical(word.trim())}?)`
          : didYouMean(word, names, canonical);
      const where = command ? `${program.name} ${command.path} --help` : `${program.name} --help`;
      const error = usageError(`unknown command ${JSON.stringify(here)}${spaced}; ${where} lists the commands`);
      return { command, used, error: { kind: 'unknown', error } };
    }
    command = next;
    used++;
  }
  if (command && isGroup(program, command)) {
    const kids = childrenOf(program, command.path).map((c) => namesOf(c)[0]);
    const error = usageError(
      `${quoted(program, command.path)} needs a command: ${kids.join(', ')} ` +
        `(${program.name} ${command.path} --help describes each)`,
    );
    return { command, used, error: { kind: 'group', error } };
  }
  return { command, used };
}

/** The error for a flag the command does not take, with the closest ones it does. */
function unknownFlag(program: ProgramDef, command: CommandDef | undefined, raw: string, allowed: ResolvedFlag[]) {
  const name = raw.replace(/^--?/, '').replace(/=.*$/s, '');
  const longs = allowed.map((f) => f.name);
  const hint = raw.startsWith('--') ? didYouMean(name, longs, (s) => `--${s}`) : '';
  const which = command ? `${program.name} ${command.path}` : program.name;
  return usageError(
    `unknown option '${raw.replace(/=.*$/s, '')}' for ${which}${hint}; ${which} --help lists its flags`,
  );
}

/** Checks a value against what its flag takes: one of its choices, a duration above zero, a count. */
export function checkValue(flag: ResolvedFlag, value: string): void {
  const field = `--${flag.name}`;
  const got = `(got ${JSON.stringify(value)})`;
  if (flag.choices && !flag.choices.includes(value))
    throw usageError(
      `expected ${flag.choices.length === 2 ? flag.choices.join(' or ') : `one of: ${flag.choices.join(', ')}`} ` +
        `${got}${flag.choiceHint ? `; ${flag.choiceHint}` : ''}`,
      field,
    );
  if (flag.duration) {
    const ms = parseDuration(value);
    if (ms === undefined) throw usageError(`expected a duration such as 30m, 1h or 1h30m ${got}`, field);
    if (ms <= 0) throw usageError(`must be more than 0 ${got}`, field);
  }
  if (flag.count && !/^[1-9]\d*$/.test(value)) throw usageError(`expected a whole number of at least 1 ${got}`, field);
  const wrong = flag.check?.(value);
  if (wrong !== undefined) throw usageError(wrong, field);
}

/**
 * Reads `argv` against a program's table: finds the command (aliases allowed), then parses the
 * flags that command takes (its own and the global ones, anywhere on the line) and checks their
 * values and the number of arguments. A mistake is a BAD_CONFIG error naming it, with the
 * closest command or flag the user may have meant. `--help` (or `help` first) wins over every
 * mistake but an unknown command word before it.
 */
export function parseCommandLine<R extends Record<string, FlagDef>>(
  program: ProgramDef<R>,
  argv: readonly string[],
): CommandLine<R> {
  const p = program as unknown as ProgramDef;
  const every = Object.entries(p.flags).map(([name, def]) => ({ ...def, name }));
  // a first pass knowing every flag of the program finds the words that name the command
  const { tokens } = parseArgs({
    args: [...argv],
    options: parseOptions(every),
    allowPositionals: true,
    strict: false,
    tokens: true,
  });
  const words = tokens.flatMap((t) => (t.kind === 'positional' ? [t.value] : []));
  const helpWord = words[0] === 'help';
  const help = helpWord || tokens.some((t) => t.kind === 'option' && t.name === 'help');
  const r = resolve(p, helpWord ? words.slice(1) : words);
  if (help) {
    // a group's help lists its commands; a word that names nothing is still a mistake
    if (r.error?.kind === 'unknown') throw r.error.error;
    return { command: r.command, path: r.command?.path ?? '', args: [], values: {}, help: true };
  }
  const allowed = flagsOf(p, r.command);
  const names = new Set(allowed.map((f) => f.name));
  const stray = tokens.find((t) => t.kind === 'option' && !names.has(t.name));
  // a mistyped flag comes first: its value may be what looks like an unknown command
  if (stray?.kind === 'option' && (!r.error || !Object.hasOwn(p.flags, stray.name)))
    throw unknownFlag(p, r.command, stray.rawName, allowed);
  if (r.error) throw r.error.error;
  const { values, positionals } = parseFlags([...argv], parseOptions(allowed));
  const args = positionals.slice(r.used);
  const command = r.command;
  if (command) {
    const { min, max } = argCounts(command);
    const usage = `${program.name} ${command.path}${command.args ? ` ${command.args}` : ''}`;
    if (args.length > max) throw usageError(`unexpected argument ${JSON.stringify(args[max])} (usage: ${usage})`);
    if (args.length < min) {
      const missing = (command.args ?? '').split(' ').filter((w) => w && !w.startsWith('['))[args.length]!;
      throw usageError(`is required (usage: ${usage})`, missing);
    }
  } else if (args.length > 0) {
    throw usageError(`unexpected argument ${JSON.stringify(args[0])} (${program.name} --help lists the commands)`);
  }
  for (const flag of allowed) {
    const v = (values as Record<string, string | boolean | (string | boolean)[] | undefined>)[flag.name];
    for (const one of Array.isArray(v) ? v : [v]) if (typeof one === 'string') checkValue(flag, one);
  }
  return { command, path: command?.path ?? '', args, values: values as FlagValues<R>, help: false };
}
