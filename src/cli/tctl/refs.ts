import { KINDS, parseKind, type Kind } from '../../api/resources.js';
import { isMwiError } from '../../errors.js';
import { usageError } from '../common.js';
import { need } from './shared.js';

/** A resource reference as tctl takes it: `kind` (all of them) or `kind/name`. */
export interface Ref {
  kind: Kind;
  /** Absent for a whole kind. A bot instance is `BOT/ID` (or its ID alone), so a name may hold a "/". */
  name?: string;
}

/** The kinds `tctl get all` prints: the ones `tctl create` takes back (joins make bot instances). */
export const ALL_KINDS: readonly Kind[] = ['role', 'bot', 'token', 'lock', 'workload_identity'];

function kindOf(text: string, arg: string): Kind {
  try {
    return parseKind(text);
  } catch (err) {
    if (!isMwiError(err)) throw err;
    throw usageError(`unknown resource kind ${JSON.stringify(text)} (expected one of: ${KINDS.join(', ')})`, arg);
  }
}

/** One `kind[/name]`; kinds may be plural (`tokens`, `bot_instances`), as Teleport's tctl takes them. */
export function parseRef(text: string, arg = 'KIND/NAME'): Ref {
  const slash = text.indexOf('/');
  const kind = kindOf(slash < 0 ? text : text.slice(0, slash), arg);
  const name = slash < 0 ? '' : text.slice(slash + 1);
  return name ? { kind, name } : { kind };
}

/** A `kind/name` naming one resource (rm, edit). */
export function parseNamedRef(text: string | undefined): Required<Ref> {
  const ref = parseRef(need(text, 'KIND/NAME'));
  if (ref.name === undefined) throw usageError('names one resource: KIND/NAME', 'KIND/NAME');
  return { kind: ref.kind, name: ref.name };
}

/**
 * `tctl get`'s argument, as Teleport's: `all`, or references separated by commas (`\,` is a
 * comma inside a name), e.g. `token/a,bot/b` or `tokens,bots`.
 *
 * @example parseRefs('roles,bot/robot') // [{ kind: 'role' }, { kind: 'bot', name: 'robot' }]
 */
export function parseRefs(text: string): 'all' | Ref[] {
  if (text === 'all') return 'all';
  const parts: string[] = [''];
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '\\' && text[i + 1] === ',') {
      parts[parts.length - 1] += ',';
      i++;
    } else if (c === ',') parts.push('');
    else parts[parts.length - 1] += c;
  }
  if (parts.some((p) => p === ''))
    throw usageError('expected KIND[/NAME] references separated by commas, or all', 'RESOURCES');
  return parts.map((p) => parseRef(p, 'RESOURCES'));
}
