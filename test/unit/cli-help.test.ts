import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MWI } from '../../src/cli/help/mwi-table.js';
import { parseCommandLine } from '../../src/cli/help/parse.js';
import { commandHelp, helpFor, programHelp } from '../../src/cli/help/render.js';
import { editDistance, suggest } from '../../src/cli/help/suggest.js';
import { flagsOf, isGroup, parseOptions, type CommandDef, type ProgramDef } from '../../src/cli/help/table.js';
import { TBOT } from '../../src/cli/help/tbot-table.js';
import { TCTL } from '../../src/cli/help/tctl-table.js';
import { inFlagTerms } from '../../src/cli/tbot-fields.js';
import { isMwiError, MwiError } from '../../src/errors.js';
import { CLIENT_METHODS } from '../../src/join/clients.js';

const PROGRAMS = [TCTL, TBOT, MWI] as unknown as ProgramDef[];

/** Refused as a user error (exit 2) whose message matches. */
const usage = (fn: () => unknown, message: RegExp) =>
  assert.throws(fn, (e: unknown) => isMwiError(e, 'BAD_CONFIG') && message.test(e.message));

/** The flags a help text lists: its flag lines (`  -i, --identity FILE  ...`) and its line of Teleport's flags. */
function listedFlags(help: string): Set<string> {
  const out = new Set<string>();
  for (const m of help.matchAll(/^ {2}(?:-\w, | {4})--([a-z][a-z0-9-]*)/gm)) out.add(m[1]!);
  for (const m of help.matchAll(/^ {2}Teleport's ((?:--[a-z-]+(?:, )?)+):/gm))
    for (const f of m[1]!.split(', ')) out.add(f.slice(2));
  return out;
}

/** A value each flag accepts, to show that parsing takes it. */
function sampleValue(program: ProgramDef, command: CommandDef | undefined, name: string): string[] {
  const f = flagsOf(program, command).find((x) => x.name === name)!;
  if (f.type === 'boolean') return [`--${name}`];
  const v = f.choices?.[0] ?? f.values?.[0] ?? (f.duration ? '1h' : f.count ? '3' : 'x');
  return [`--${name}`, v];
}

describe('command tables: help lists exactly the flags parsing knows', () => {
  for (const program of PROGRAMS) {
    it(`${program.name}: each command's --help lists every flag it parses, and parsing takes every flag listed`, () => {
      const commands: Array<CommandDef | undefined> = [undefined, ...program.commands];
      for (const command of commands) {
        const where = `${program.name} ${command?.path ?? ''}`;
        const parsed = new Set(Object.keys(parseOptions(flagsOf(program, command))));
        const help = helpFor(program, command);
        // a group's help lists its commands and the global flags, which are what it parses; the
        // program's own lists its featured commands' flags too, in a section of their own
        const sections = command ? help : help.replace(/\nFlags \([^)]*\):\n[\s\S]*?\n\n/, '\n\n');
        assert.deepEqual([...listedFlags(sections)].sort(), [...parsed].sort(), where);
        if (!command && program.featured) {
          const featured = /\nFlags \([^)]*\):\n[\s\S]*?\n\n/.exec(help)?.[0] ?? '';
          const own = program.commands
            .filter((c) => program.featured!.includes(c.path))
            .flatMap((c) => flagsOf(program, c).map((f) => f.name))
            .filter((n) => !program.globals.includes(n));
          assert.deepEqual([...listedFlags(featured)].sort(), [...new Set(own)].sort(), `${where} featured`);
        }
        if (command && isGroup(program, command)) continue;
        // each listed flag is really taken on this command's line (the global ones anywhere on it)
        const words = command ? command.path.split(' ') : [];
        const args = (command?.args ?? '').split(' ').filter((w) => w && !w.startsWith('['));
        for (const name of parsed) {
          if (name === 'help') continue;
          const line = parseCommandLine(program, [
            ...words,
            ...args.map(() => 'bash'),
            ...sampleValue(program, command, name),
          ]);
          assert.equal(line.path, command?.path ?? '', `${where} --${name}`);
          assert.ok((line.values as Record<string, unknown>)[name] !== undefined, `${where} --${name}`);
        }
      }
    });

    it(`${program.name}: every flag of the table belongs to a command, and each command says what it does with an example`, () => {
      const used = new Set<string>(program.globals);
      for (const c of program.commands) for (const f of flagsOf(program, c)) used.add(f.name);
      assert.deepEqual(
        Object.keys(program.flags).filter((f) => !used.has(f)),
        [],
        'flags no command takes',
      );
      for (const c of program.commands) {
        assert.ok(c.summary, c.path);
        if (!isGroup(program, c) && c.path !== 'version') assert.ok(c.examples?.length, `${c.path}: an example`);
      }
      // one name, one type: a flag parses the same on every command
      const shorts = Object.values(program.flags).flatMap((f) => (f.short ? [f.short] : []));
      assert.equal(new Set(shorts).size, shorts.length, 'short flags are unique');
    });
  }

  it("tbot start and configure take each join method's own flags (the methods' client halves declare them)", () => {
    for (const path of ['start', 'configure']) {
      const command = TBOT.commands.find((c) => c.path === path) as CommandDef;
      const names = flagsOf(TBOT as unknown as ProgramDef, command).map((f) => f.name);
      for (const m of CLIENT_METHODS.values())
        for (const flag of Object.keys(m.options?.flags ?? {})) assert.ok(names.includes(flag), `${path} --${flag}`);
    }
  });

  it('help lists defaults, environment variables, join methods and an example', () => {
    const add = commandHelp(
      TCTL,
      TCTL.commands.find((c) => c.path === 'bots add')!,
    );
    assert.match(add, /^Usage: tctl bots add NAME --roles R1,R2/);
    assert.match(add, /--ttl D +the join token's lifetime \(default 1h\)/);
    assert.match(add, /-i, --identity FILE +admin identity file .*\$TELEPORT_IDENTITY_FILE/);
    assert.match(add, /Join methods: token, bound_keypair, github/);
    assert.match(add, /Example:\n {2}tctl bots add robot --roles deployer/);
    const start = commandHelp(
      TBOT,
      TBOT.commands.find((c) => c.path === 'start')!,
    );
    assert.match(start, /--certificate-ttl D +credential lifetime \(at most 24h\) \(default 1h\)/);
    assert.match(start, /--token TOKEN .*\n? *.*\$TELEPORT_BOT_TOKEN/);
    assert.match(start, /Teleport's --fips: taken only to say why mwi refuses it/);
    const tctl = programHelp(TCTL);
    for (const line of tctl.split('\n')) assert.ok(line.length <= 120, line);
  });
});

describe('did you mean', () => {
  it('editDistance counts insertions, deletions, substitutions and swaps', () => {
    assert.equal(editDistance('role', 'roles'), 1);
    assert.equal(editDistance('rloes', 'roles'), 1);
    assert.equal(editDistance('bots', 'bots'), 0);
    assert.equal(editDistance('', 'ls'), 2);
  });

  it('suggest: the closest, prefixes count, far words none', () => {
    assert.deepEqual(suggest('role', ['roles', 'logins', 'token']), ['roles']);
    assert.deepEqual(suggest('bot', ['bots', 'tokens', 'locks']), ['bots']);
    assert.deepEqual(suggest('lss', ['add', 'ls', 'rm']), ['ls']);
    assert.deepEqual(suggest('max-session', ['max-session-ttl', 'ttl']), ['max-session-ttl']);
    assert.deepEqual(suggest('frobnicate', ['add', 'ls', 'rm']), []);
    assert.deepEqual(suggest('lock', ['locks', 'lock']), ['lock']);
  });
});

describe('parseCommandLine (tctl, tbot, mwi)', () => {
  const tctl = (...argv: string[]) => parseCommandLine(TCTL, argv);
  const tbot = (...argv: string[]) => parseCommandLine(TBOT, argv);

  it('finds the command through aliases; global flags stand anywhere', () => {
    assert.equal(tctl('bots', 'list').path, 'bots ls');
    assert.equal(tctl('bot', 'ls').path, 'bots ls');
    assert.equal(tctl('bots', 'instance', 'describe', 'a/b').path, 'bots instances show');
    const line = tctl('bots', 'add', 'robot', '--data-dir', '/d', '--roles', 'dev');
    assert.deepEqual(
      [line.path, line.args, line.values['data-dir'], line.values.roles],
      ['bots add', ['robot'], '/d', 'dev'],
    );
    assert.equal(tctl('--data-dir', '/d', 'status').path, 'status');
    assert.equal(tctl().command, undefined);
  });

  it('--help, -h and help COMMAND ask for help, even on a group or with other mistakes', () => {
    assert.deepEqual([tctl('bots', 'add', '--help').help, tctl('bots', 'add', '--help').path], [true, 'bots add']);
    assert.equal(tctl('help', 'tokens', 'add').path, 'tokens add');
    assert.equal(tctl('bots', '-h').path, 'bots');
    assert.equal(tctl('bots', 'add', '--role', 'x', '-h').help, true);
    usage(() => tctl('bts', '--help'), /unknown command "bts" \(did you mean "bots"\?\)/);
  });

  it('unknown commands and flags say what was probably meant', () => {
    usage(() => tctl('bots'), /^"tctl bots" needs a command: add, ls, rm, update, instances/);
    usage(() => tctl('bts', 'ls'), /^unknown command "bts" \(did you mean "bots"\?\); tctl --help lists the commands/);
    usage(() => tctl('tokens', 'lss'), /^unknown command "tokens lss" \(did you mean "tokens ls"\?\)/);
    usage(
      () => tctl('tokens ', 'ls'),
      /^unknown command "tokens " \(it has spaces around it: did you mean "tokens"\?\)/,
    );
    usage(
      () => tctl('bots', 'add', 'x', '--role', 'dev'),
      /^unknown option '--role' for tctl bots add \(did you mean --roles\?\); tctl bots add --help lists its flags/,
    );
    // a flag of another command is not this one's
    usage(() => tctl('bots', 'ls', '--roles', 'dev'), /^unknown option '--roles' for tctl bots ls;/);
    // a mistyped global flag before the command: the flag is named, not its value as a command
    usage(
      () => tctl('--dat-dir', '/x', 'status'),
      /^unknown option '--dat-dir' for tctl \(did you mean --data-dir\?\)/,
    );
    usage(
      () => tbot('start', '--auth-servr', 'x'),
      /^unknown option '--auth-servr' for tbot start \(did you mean --auth-server\?\)/,
    );
    usage(() => parseCommandLine(MWI, ['strat']), /^unknown command "strat" \(did you mean "start"\?\)/);
  });

  it('arguments: too few and too many are named', () => {
    usage(() => tctl('rm'), /^KIND\/NAME: is required \(usage: tctl rm KIND\/NAME\)/);
    usage(() => tctl('bots', 'rm', 'a', 'b'), /^unexpected argument "b" \(usage: tctl bots rm NAME\)/);
    usage(() => tctl('status', 'now'), /^unexpected argument "now" \(usage: tctl status\)/);
    assert.deepEqual(tctl('bots', 'instances', 'ls').args, []);
  });

  it('values: durations above zero, choices, counts; checked before anything is sent', () => {
    usage(() => tctl('tokens', 'add', '--type=bot', '--ttl', '5x'), /^--ttl: expected a duration such as 30m/);
    usage(() => tctl('tokens', 'add', '--type=bot', '--ttl', '0s'), /^--ttl: must be more than 0 \(got "0s"\)/);
    usage(() => tctl('status', '--format', 'yaml'), /^--format: expected text or json \(got "yaml"\)/);
    usage(() => tctl('get', 'all', '--format', 'xml'), /^--format: expected one of: yaml, json, text \(got "xml"\)/);
    usage(() => tctl('audit', 'ls', '--limit', 'many'), /^--limit: expected a whole number of at least 1/);
    usage(() => tbot('start', '--certificate-ttl', '5x'), /^--certificate-ttl: expected a duration/);
    usage(
      () => tbot('start', '--join-method', 'tokn'),
      /^--join-method: unknown join method "tokn" \(expected one of: token/,
    );
    usage(
      () => tctl('tokens', 'add', '--join-method', 'tpm'),
      /^--join-method: join method "tpm" is Teleport's and not in mwi/,
    );
    assert.deepEqual(tbot('start', '--ca-pin', 'a', '--ca-pin', 'b').values['ca-pin'], ['a', 'b']);
  });
});

describe('tbot: a configuration error names the flag that gave the value', () => {
  it('inFlagTerms: the key a given flag set becomes the flag; other errors stay', () => {
    const err = new MwiError('BAD_CONFIG', 'at most 24h (got 25h)', { field: 'credential_ttl' });
    const mapped = inFlagTerms(err, { 'certificate-ttl': '25h' }) as MwiError;
    assert.equal(mapped.message, '--certificate-ttl: at most 24h (got 25h) (tbot.yaml credential_ttl)');
    assert.equal(mapped.code, 'BAD_CONFIG');
    // from the file, not a flag: named as the file's key
    assert.equal(inFlagTerms(err, {}), err);
    const pin = new MwiError('BAD_CONFIG', 'expected sha256:<64 hex digits>', { field: 'onboarding.ca_pins[0]' });
    assert.match((inFlagTerms(pin, { 'ca-pin': ['x'] }) as Error).message, /^--ca-pin: expected sha256/);
    const other = new MwiError('JOIN_DENIED', 'x');
    assert.equal(inFlagTerms(other, { token: 'x' }), other);
  });
});
