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
export function unionOf(entries: readonly Typed[], what: string) {
  const [first, ...rest] = entries.map((e) => z.object({ type: z.literal(e.type), ...e.fields }).strict());
  if (!first) throw new TypeError('a registry with no entries');
  const union = rest.length === 0 ? first : z.discriminatedUnion('type', [first, ...rest]);
  const types = entries.map((e) => e.type);
  // a type mwi does not have (often one of Teleport's: database, kubernetes_secret, ...) is named
  // as such, before the schema's own message about the literal it expected
  return z
    .unknown()
    .superRefine((v, ctx) => {
      const type = (v as { type?: unknown } | null)?.type;
      if (typeof type === 'string' && !types.includes(type))
        ctx.addIssue({
          code: 'custom',
          path: ['type'],
          message:
            `mwi has no ${what} type "${type}" (it has: ${types.join(', ')}; ` +
            'docs/teleport.md lists what is planned)',
        });
    })
    .pipe(union);
}

/** The entry for a `type` the schema accepted (anything else is a programming error). */
export function entryOf<E extends Typed>(entries: readonly E[], type: string): E {
  const entry = entries.find((e) => e.type === type);
  if (!entry) throw new TypeError(`no registered type ${type}`);
  return entry;
}
