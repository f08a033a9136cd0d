import { currentRequest } from './http-guard.js';
import { escapeUnsafe } from './text.js';

/** Minimal leveled logger to stderr. Callers pass structured fields; secrets are never passed. */
export type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };
export const LEVELS = Object.keys(ORDER) as Level[];

/** `text`: one readable line per entry; `json`: one JSON object per line (`--log-format`, as Teleport's). */
export type LogFormat = 'text' | 'json';
export const LOG_FORMATS: readonly LogFormat[] = ['text', 'json'];

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/** A text line: `TIME LEVEL [component] message key=value ...`. */
function textLine(time: string, lvl: Level, component: string, msg: string, fields: [string, unknown][]): string {
  const extra = fields
    .map(([k, v]) => ` ${k}=${typeof v === 'string' && !/\s/.test(v) ? v : JSON.stringify(v)}`)
    .join('');
  return `${time} ${lvl.toUpperCase().padEnd(5)} [${component}] ${msg}${extra}`;
}

/**
 * A JSON line with Teleport's key names (timestamp, level, component, message), then the fields.
 * The entry's own keys win over a field of the same name.
 */
function jsonLine(time: string, lvl: Level, component: string, msg: string, fields: [string, unknown][]): string {
  return JSON.stringify({
    ...Object.fromEntries(fields),
    timestamp: time,
    level: lvl,
    component,
    message: msg,
  });
}

/**
 * `$MWI_LOG_LEVEL` as a level; undefined when unset or empty. Throws a TypeError naming the
 * variable for any other value (the CLIs turn it into a usage error).
 */
export function envLogLevel(env: NodeJS.ProcessEnv = process.env): Level | undefined {
  const v = env.MWI_LOG_LEVEL;
  if (!v) return undefined;
  if (!(LEVELS as string[]).includes(v)) throw new TypeError(`MWI_LOG_LEVEL: expected one of ${LEVELS.join(', ')}`);
  return v as Level;
}

/** What loggers created without an explicit format or level use (see setLogDefaults). */
const defaults: { format: LogFormat; level: Level | undefined } = { format: 'text', level: undefined };

/**
 * Sets the format (and level) of every logger of this process that was created without its own,
 * including those created before this call (module-level loggers): `mwi start --log-format json`.
 */
export function setLogDefaults(d: { format?: LogFormat; level?: Level }): void {
  if (d.format) defaults.format = d.format;
  if (d.level) defaults.level = d.level;
}

/** The format loggers created without one use: what `setLogDefaults` set, else text. */
export function defaultLogFormat(): LogFormat {
  return defaults.format;
}

/** $MWI_LOG_LEVEL, read once (an unknown value reads as info: the CLIs refuse it first, see envLogLevel). */
let envLevel: Level | undefined;
function defaultLevel(): Level {
  if (defaults.level) return defaults.level;
  if (!envLevel) {
    const v = process.env.MWI_LOG_LEVEL as Level | undefined;
    envLevel = v && v in ORDER ? v : 'info';
  }
  return envLevel;
}

/**
 * A logger for `component`. Without `level`, `setLogDefaults`'s, else `$MWI_LOG_LEVEL`, else info;
 * without `format`, `setLogDefaults`'s (text unless set). A line written while a request is
 * served (see guardRequests) carries its `request_id`, the id of the answer's x-request-id header
 * and of the audit events of that request.
 */
export function createLogger(component: string, level?: Level, format?: LogFormat): Logger {
  const write = (lvl: Level, msg: string, fields?: Record<string, unknown>): void => {
    if (ORDER[lvl] < ORDER[level ?? defaultLevel()]) return;
    const given = Object.entries(fields ?? {}).filter(([, v]) => v !== undefined);
    const request = currentRequest();
    if (request && !given.some(([k]) => k === 'request_id')) given.push(['request_id', request.id]);
    const line = (format ?? defaults.format) === 'json' ? jsonLine : textLine;
    // values may come from requests: one line, and nothing a terminal acts on (issue #9, finding 9);
    // in JSON, an escaped character inside a string reads back as the same value
    process.stderr.write(`${escapeUnsafe(line(new Date().toISOString(), lvl, component, msg, given))}\n`);
  };
  return {
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
  };
}
