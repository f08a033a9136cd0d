import { z } from 'zod';

/**
 * An entry of one of tbot's registries (destinations, outputs, services): the `type:` it answers
 * to in tbot.yaml and the fields that sit next to it.
 */
export interface Typed<F extends z.ZodRawShape = z.ZodRawShape> {
  readonly type: string;
  readonly fields: F;
}

/** A validated item of a registry's type: its `type` and its fields. */
export type ConfigOf<F extends z.ZodRawShape> = { type: string } & z.output<z.ZodObject<F, 'strict'>>;

/** The schema of one item of a list in tbot.yaml: a strict object per registered type, told apart by `type`. */
export function unionOf(entries: readonly Typed[]) {
  const [first, ...rest] = entries.map((e) => z.object({ type: z.literal(e.type), ...e.fields }).strict());
  if (!first) throw new TypeError('a registry with no entries');
  // a lone type is its object, so that a wrong `type` is told the one literal expected
  return rest.length === 0 ? first : z.discriminatedUnion('type', [first, ...rest]);
}

/** The entry for a `type` the schema accepted (anything else is a programming error). */
export function entryOf<E extends Typed>(entries: readonly E[], type: string): E {
  const entry = entries.find((e) => e.type === type);
  if (!entry) throw new TypeError(`no registered type ${type}`);
  return entry;
}
