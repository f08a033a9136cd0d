import { escapeUnsafe } from './text.js';

/** Minimal leveled logger to stderr. Callers pass structured fields; secrets are never passed. */
export type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** `text`: one readable line per entry; `json`: one JSON object per line (tbot's `--log-format`, as Teleport's). */
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

export function createLogger(
  component: string,
  level: Level = (process.env.MWI_LOG_LEVEL as Level) || 'info',
  format: LogFormat = 'text',
): Logger {
  const min = ORDER[level] ?? ORDER.info;
  const line = format === 'json' ? jsonLine : textLine;
  const write = (lvl: Level, msg: string, fields?: Record<string, unknown>): void => {
    if (ORDER[lvl] < min) return;
    const given = Object.entries(fields ?? {}).filter(([, v]) => v !== undefined);
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
