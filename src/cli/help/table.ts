// The shape of a program's command table (tctl, tbot, mwi): every command with its summary,
// arguments, flags and examples. Parsing (parse.ts), --help (render.ts), "did you mean"
// (suggest.ts) and shell completion (completion.ts) are all read from it, so help cannot list a
// flag that parsing does not know, nor miss one that it does.

/** One flag as a program knows it; a command may restate its description, default or values. */
export interface FlagDef {
  type: 'string' | 'boolean';
  /** One letter: `-i` for `--identity`. */
  short?: string;
  /** May be given several times (`--ca-pin A --ca-pin B`). */
  multiple?: boolean;
  /** The value's name in help: `--ttl D`. */
  value?: string;
  description: string;
  /** Shown as `(default X)`; the code applies it. */
  default?: string;
  /** The environment variable the code reads when the flag is absent. */
  env?: string;
  /** The only values accepted (checked when parsed; completion offers them). */
  choices?: readonly string[];
  /** Said after the list of choices when a value is not one of them. */
  choiceHint?: string;
  /** Values help and completion offer, which the command checks itself (with a message of its own). */
  values?: readonly string[];
  /** A duration above zero (`90s`, `1h30m`), checked when parsed. */
  duration?: boolean;
  /** A whole number of at least 1, checked when parsed. */
  count?: boolean;
  /** Any other check made when parsed: what is wrong with the value, or undefined. */
  check?: (value: string) => string | undefined;
  /** What completion offers for the value. */
  complete?: 'file' | 'dir';
  /** Teleport's flag that mwi takes only to refuse it saying why: help lists it apart. */
  teleport?: boolean;
}

/** A flag of a command: its name in the program's registry, optionally restated for this command. */
export type FlagUse<N extends string = string> = N | readonly [N, Partial<FlagDef>];

export interface CommandDef<N extends string = string> {
  /** The words that name it, canonical: `bots instances ls`. */
  path: string;
  /** Other names for the last word (`list` for `ls`). */
  aliases?: readonly string[];
  /** Its arguments, as help shows them: `NAME`, `[BOT]`, `[MODE]`; `...` after one repeats it. */
  args?: string;
  /** The line in the program's command list, when more than the path and arguments (its main flags). */
  usage?: string;
  /** One line, lowercase. */
  summary: string;
  /** More, for its own --help. */
  details?: string;
  flags?: readonly FlagUse<N>[];
  examples?: readonly string[];
  /** Its --help lists the join methods. */
  joinMethods?: boolean;
  /** What completion offers for its arguments: these words, or file names. */
  complete?: readonly string[] | 'file';
}

export interface ProgramDef<R extends Record<string, FlagDef> = Record<string, FlagDef>> {
  name: 'tctl' | 'tbot' | 'mwi';
  summary: string;
  /** Every flag the program knows: one type per name, whatever the command. */
  flags: R;
  /** Flags every command takes. */
  globals: readonly (keyof R & string)[];
  /** Commands, in the order help lists them; a path that begins others is a group of commands. */
  commands: readonly CommandDef<keyof R & string>[];
  /** Commands whose flags the program's own --help lists too (tbot: start and configure). */
  featured?: readonly string[];
  /** Said at the end of the program's --help (signals, URIs, ...). */
  footer?: string;
}

/** What a flag of a registry holds once parsed. */
export type FlagValue<F extends FlagDef> = F['type'] extends 'boolean'
  ? boolean
  : F['multiple'] extends true
    ? string[]
    : string;

/** The parsed flags of a program: any of its flags, each with its type. */
export type FlagValues<R extends Record<string, FlagDef>> = { [K in keyof R]?: FlagValue<R[K]> };

/** A flag of a command, resolved: the program's definition with the command's restatement. */
export interface ResolvedFlag extends FlagDef {
  name: string;
}

/** The commands that are groups: a path that begins another command's path. */
export function isGroup(program: ProgramDef, command: CommandDef): boolean {
  return program.commands.some((c) => c.path.startsWith(`${command.path} `));
}

/** The commands one word below `path` ('' for the top level). */
export function childrenOf(program: ProgramDef, path: string): CommandDef[] {
  const depth = path === '' ? 1 : path.split(' ').length + 1;
  return program.commands.filter(
    (c) => c.path.split(' ').length === depth && (path === '' || c.path.startsWith(`${path} `)),
  );
}

/** The last word of a command's path and its aliases. */
export function namesOf(command: CommandDef): string[] {
  return [command.path.split(' ').pop()!, ...(command.aliases ?? [])];
}

function resolveFlag(program: ProgramDef, use: FlagUse): ResolvedFlag {
  const [name, over] = typeof use === 'string' ? [use, {}] : use;
  const def = program.flags[name];
  if (!def) throw new TypeError(`${program.name}: command table names unknown flag --${name}`);
  return { ...def, ...over, name };
}

/** A command's own flags (without the global ones), in table order. */
export function ownFlags(program: ProgramDef, command: CommandDef | undefined): ResolvedFlag[] {
  return (command?.flags ?? []).map((u) => resolveFlag(program, u));
}

/** The program's global flags. */
export function globalFlags(program: ProgramDef): ResolvedFlag[] {
  return program.globals.map((n) => resolveFlag(program, n));
}

/** Every flag a command takes: its own, then the global ones it does not restate. */
export function flagsOf(program: ProgramDef, command: CommandDef | undefined): ResolvedFlag[] {
  const own = ownFlags(program, command);
  return [...own, ...globalFlags(program).filter((g) => !own.some((f) => f.name === g.name))];
}

/** The node:util parseArgs options for these flags. */
export function parseOptions(
  flags: readonly ResolvedFlag[],
): Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> {
  return Object.fromEntries(
    flags.map((f) => [
      f.name,
      { type: f.type, ...(f.short ? { short: f.short } : {}), ...(f.multiple ? { multiple: true } : {}) },
    ]),
  );
}

/** A command's arguments: how many it needs and how many it takes. */
export function argCounts(command: CommandDef): { min: number; max: number } {
  const words = (command.args ?? '').split(' ').filter(Boolean);
  const min = words.filter((w) => !w.startsWith('[')).length;
  return { min, max: words.some((w) => w.endsWith('...')) ? Infinity : words.length };
}

/** The default a command gives one of its flags, as the table says (e.g. `--format`). */
export function defaultOf(program: ProgramDef, command: CommandDef | undefined, name: string): string | undefined {
  return flagsOf(program, command).find((f) => f.name === name)?.default;
}

type FlagMore = Omit<Partial<FlagDef>, 'type' | 'value' | 'description'>;

/** A flag that takes a value, named `value` in help; `more` keeps its literal types (multiple). */
export function stringFlag<const M extends FlagMore = object>(
  value: string,
  description: string,
  more?: M,
): { type: 'string'; value: string; description: string } & M {
  return { type: 'string', value, description, ...(more as M) };
}

/** A flag without a value. */
export function booleanFlag<const M extends FlagMore = object>(
  description: string,
  more?: M,
): { type: 'boolean'; description: string } & M {
  return { type: 'boolean', description, ...(more as M) };
}

/** The `completion SHELL` command every program has, with the same help. */
export function completionCommand(name: ProgramDef['name']): CommandDef<never> {
  return {
    path: 'completion',
    args: 'SHELL',
    summary: 'print a shell completion script (bash or zsh)',
    complete: ['bash', 'zsh'],
    details:
      `bash: source <(${name} completion bash), or write it to /etc/bash_completion.d/${name}. zsh: source ` +
      `<(${name} completion zsh) after compinit, or write it as _${name} into a directory of $fpath.`,
    examples: [`source <(${name} completion bash)`],
  };
}

/** The flags of `install systemd` (tbot and mwi), with the program's default service name, user and group. */
export function systemdFlags(name: 'tbot' | 'mwi') {
  return {
    name: stringFlag('NAME', '(install systemd) the service name: NAME.service', { default: name }),
    user: stringFlag('USER', "(install systemd) the service's user", { default: name }),
    group: stringFlag('GROUP', "(install systemd) the service's group", { default: name }),
    'systemd-directory': stringFlag('DIR', '(install systemd) where --write puts the unit', {
      default: '/etc/systemd/system',
      complete: 'dir',
    }),
    write: booleanFlag('(install systemd) write DIR/NAME.service (0644) instead of printing the unit'),
    force: booleanFlag('(install systemd) replace an existing unit with other content'),
  } as const;
}
