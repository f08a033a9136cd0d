import { parseArgs, type ParseArgsConfig } from 'node:util';
import { exitCodeFor, isMwiError, MwiError } from '../errors.js';

type Options = NonNullable<ParseArgsConfig['options']>;
type Parsed<O extends Options> = ReturnType<
  typeof parseArgs<{ args: string[]; options: O; allowPositionals: boolean; strict: true }>
>;

/** parseArgs with errors that name the flag and exit 2. */
export function parseFlags<O extends Options>(args: string[], options: O, allowPositionals = true): Parsed<O> {
  try {
    return parseArgs({ args, options, allowPositionals, strict: true });
  } catch (err) {
    const msg = err instanceof Error ? err.message.replace(/\. To specify a positional argument.*$/s, '') : String(err);
    throw new MwiError('BAD_CONFIG', msg.charAt(0).toLowerCase() + msg.slice(1).replace(/\.$/, ''));
  }
}

/** Runs a CLI main: prints `ERROR: message` and exits 2 for user errors, 1 for runtime failures. */
export function runMain(name: string, main: () => Promise<number | void>): void {
  main().then(
    (code) => {
      if (typeof code === 'number') process.exitCode = code;
    },
    (err: unknown) => {
      if (isMwiError(err)) process.stderr.write(`ERROR: ${err.message}\n`);
      else {
        process.stderr.write(`ERROR: ${name}: ${err instanceof Error ? err.message : String(err)}\n`);
        if (process.env.MWI_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
      }
      process.exitCode = exitCodeFor(err);
    },
  );
}

/** Fixed-width table for people; `--format json` callers skip this. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join(' ')
      .trimEnd();
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n') + '\n';
}

export function usageError(message: string, field?: string): MwiError {
  return new MwiError('BAD_CONFIG', message, field ? { field } : {});
}
