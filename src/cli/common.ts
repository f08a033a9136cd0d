import { parseArgs, type ParseArgsConfig } from 'node:util';
import { exitCodeFor, isMwiError, MwiError } from '../errors.js';
import { defaultLogFormat, type LogFormat } from '../util/log.js';
import { escapeUnsafe } from '../util/text.js';

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

/**
 * The fatal error line of a CLI: `ERROR: message` (a runtime failure names the program), or with
 * `--log-format json` one JSON object in the logger's keys. Its text may quote what a server
 * answered (the Auth Service, a Kubernetes API server): as in every log line, nothing in it may
 * break the line or reach the terminal as a control (issue #9, finding 9), so unsafe characters
 * are shown as `\uXXXX` escapes (in JSON, the escape of the same character). `stack` (MWI_DEBUG)
 * keeps its own line breaks.
 */
export function fatalLines(name: string, err: unknown, format: LogFormat, stack = false): string {
  const message = isMwiError(err) ? err.message : `${name}: ${err instanceof Error ? err.message : String(err)}`;
  const trace = stack && !isMwiError(err) && err instanceof Error ? err.stack : undefined;
  if (format === 'json') {
    const entry = {
      timestamp: new Date().toISOString(),
      level: 'error',
      component: name,
      message,
      ...(isMwiError(err) ? { error_code: err.code, ...(err.field ? { field: err.field } : {}) } : {}),
      ...(trace ? { stack: trace } : {}),
    };
    return `${escapeUnsafe(JSON.stringify(entry))}\n`;
  }
  return `ERROR: ${escapeUnsafe(message)}\n${trace ? `${escapeUnsafe(trace, { keepNewlines: true })}\n` : ''}`;
}

/**
 * Runs a CLI main: prints the fatal error line (see fatalLines; JSON when the program set its log
 * format so, with setLogDefaults) and exits 2 for user errors, 1 for runtime failures.
 */
export function runMain(name: string, main: () => Promise<number | void>): void {
  main().then(
    (code) => {
      if (typeof code === 'number') process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(fatalLines(name, err, defaultLogFormat(), Boolean(process.env.MWI_DEBUG)));
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
