import { joinMethodNames } from '../../join/catalog.js';
import {
  childrenOf,
  flagsOf,
  globalFlags,
  isGroup,
  ownFlags,
  type CommandDef,
  type ProgramDef,
  type ResolvedFlag,
} from './table.js';

const WIDTH = 118;

/** Breaks `text` into lines of at most `width` characters, at spaces. */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/ +/)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines;
}

/** Two columns: `left` padded to `col` (or alone on its line when longer), `right` wrapped beside it. */
function columns(rows: Array<[string, string]>, col: number): string {
  const out: string[] = [];
  for (const [left, right] of rows) {
    const body = wrap(right, WIDTH - col);
    if (left.length + 2 > col) {
      out.push(left);
      out.push(...body.map((l) => `${' '.repeat(col)}${l}`));
    } else {
      out.push(`${left.padEnd(col)}${body[0] ?? ''}`.trimEnd());
      out.push(...body.slice(1).map((l) => `${' '.repeat(col)}${l}`));
    }
  }
  return out.map((l) => `${l}\n`).join('');
}

/** What help says of a flag after its description: its values, default and variable. */
function flagNotes(f: ResolvedFlag): string {
  const notes: string[] = [];
  const values = f.choices ?? f.values;
  if (values) notes.push(`one of: ${values.join(', ')}`);
  if (f.default !== undefined) notes.push(`default ${f.default}`);
  if (f.env) notes.push(`$${f.env}`);
  if (f.multiple) notes.push('repeatable');
  return notes.length > 0 ? ` (${notes.join('; ')})` : '';
}

/** `-i, --identity FILE` */
function flagName(f: ResolvedFlag): string {
  return `  ${f.short ? `-${f.short}, ` : '    '}--${f.name}${f.value ? ` ${f.value}` : ''}`;
}

/** Where descriptions start beside these flags' names. */
function flagColumn(flags: ResolvedFlag[]): number {
  return Math.min(32, Math.max(...flags.filter((f) => !f.teleport).map((f) => flagName(f).length + 2), 0));
}

/** The flag lines of a section; Teleport's refused flags on one line of their own. */
function flagSection(title: string, flags: ResolvedFlag[], col = flagColumn(flags)): string {
  const shown = flags.filter((f) => !f.teleport);
  const refused = flags.filter((f) => f.teleport);
  if (shown.length === 0 && refused.length === 0) return '';
  let text = `${title}:\n${columns(
    shown.map((f) => [flagName(f), `${f.description}${flagNotes(f)}`]),
    col,
  )}`;
  if (refused.length > 0)
    text += wrap(
      `Teleport's ${refused.map((f) => `--${f.name}`).join(', ')}: ` +
        (refused.length === 1 ? 'taken only to say why mwi refuses it.' : 'taken only to say why mwi refuses them.'),
      WIDTH - 2,
    )
      .map((l) => `  ${l}\n`)
      .join('');
  return text;
}

/** How a command reads in a list of commands: its usage line, or its path and arguments. */
function usageOf(command: CommandDef): string {
  return command.usage ?? `${command.path}${command.args ? ` ${command.args}` : ''}`;
}

/** The list of commands under `path` ('' for all): leaves only, each with its aliases. */
function commandList(program: ProgramDef, under: string): string {
  const leaves = program.commands.filter(
    (c) => !isGroup(program, c) && (under === '' || c.path.startsWith(`${under} `)),
  );
  const rows = leaves.map((c): [string, string] => {
    const aliases = c.aliases?.length ? ` (also: ${c.aliases.join(', ')})` : '';
    return [`  ${usageOf(c)}`, `${c.summary}${aliases}`];
  });
  return `Commands:\n${columns(rows, 42)}`;
}

function examples(command: CommandDef): string {
  if (!command.examples?.length) return '';
  const title = command.examples.length === 1 ? 'Example' : 'Examples';
  return `\n${title}:\n${command.examples.map((e) => `  ${e}\n`).join('')}`;
}

/** `tctl bots add --help`: usage, what it does, its flags, the join methods where they matter, an example. */
export function commandHelp(program: ProgramDef, command: CommandDef): string {
  const name = `${program.name} ${command.path}`;
  if (isGroup(program, command)) {
    return (
      `Usage: ${name} <command> [flags]\n\n${command.summary}\n\n` +
      `${commandList(program, command.path)}\n${flagSection('Global flags', globalFlags(program))}\n` +
      `"${name} COMMAND --help" describes a command: its flags and an example.\n`
    );
  }
  const own = ownFlags(program, command);
  const globals = flagsOf(program, command).slice(own.length);
  const aliases = command.aliases?.length
    ? `\nAlso: ${command.aliases.map((a) => `${program.name} ${command.path.replace(/\S+$/, a)}`).join(', ')}\n`
    : '';
  const details = command.details ? `\n${wrap(command.details, WIDTH).join('\n')}\n` : '';
  let text = `Usage: ${program.name} ${usageOf(command)}${own.length + globals.length > 0 ? ' [flags]' : ''}\n\n`;
  text += `${command.summary}\n${aliases}${details}`;
  const col = flagColumn([...own, ...globals]);
  if (own.length > 0) text += `\n${flagSection('Flags', own, col)}`;
  if (globals.length > 0) text += `\n${flagSection('Global flags', globals, col)}`;
  if (command.joinMethods) text += `\n${wrap(`Join methods: ${joinMethodNames().join(', ')}`, WIDTH).join('\n  ')}\n`;
  return text + examples(command);
}

/** `tctl --help`: every command in one list, the global flags, and the featured commands' flags. */
export function programHelp(program: ProgramDef): string {
  let text = `Usage: ${program.name} [global flags] <command> [flags]\n\n${program.summary}\n\n`;
  text += commandList(program, '');
  const globals = globalFlags(program);
  if (globals.length > 0) text += `\n${flagSection('Global flags', globals)}`;
  const featured = program.commands.filter((c) => program.featured?.includes(c.path));
  if (featured.length > 0) {
    const seen = new Set<string>(globals.map((g) => g.name));
    const flags = featured.flatMap((c) => ownFlags(program, c)).filter((f) => !seen.has(f.name) && seen.add(f.name));
    text += `\n${flagSection(`Flags (${featured.map((c) => c.path).join(', ')})`, flags)}`;
  }
  if (program.footer) text += `\n${program.footer}`;
  const first = childrenOf(program, '').find((c) => !isGroup(program, c))?.path ?? 'COMMAND';
  const more = `"${program.name} COMMAND --help" (e.g. ${program.name} ${first} --help)`;
  return `${text}\n${more} describes a command: its flags and an example.\n`;
}

/** Help for what the user named: a command, a group of commands, or the whole program. */
export function helpFor(program: ProgramDef, command: CommandDef | undefined): string {
  return command ? commandHelp(program, command) : programHelp(program);
}
