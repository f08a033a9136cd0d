import type { z } from 'zod';

/** Method-private state tbot keeps in its storage across runs. */
export interface ClientStateStore {
  read(): Record<string, unknown>;
  write(state: Record<string, unknown>): Promise<void>;
}

export interface ClientJoinContext {
  token: string;
  /** The method's options as its `resolve` made them (see ClientOptions). Never logged. */
  options: Readonly<Record<string, unknown>>;
  state: ClientStateStore;
  /** The cluster name (the audience platform tokens must carry), asked of the Auth Service. */
  clusterName(): Promise<string>;
  /** POST /v1/join/challenge with this method-specific payload. */
  challenge(payload: unknown): Promise<Record<string, unknown>>;
  log: {
    info(msg: string, fields?: Record<string, unknown>): void;
    warn(msg: string, fields?: Record<string, unknown>): void;
  };
}

/** What resolving a method's options may read besides its `onboarding.<method>` block. */
export interface ClientOptionsContext {
  env: NodeJS.ProcessEnv;
  /**
   * A secret given inline, or as an absolute path to a file holding it: tbot's one rule for
   * secrets in tbot.yaml and flags. `field` names the setting in errors. A plain function.
   */
  secret: (value: string | undefined, field: string) => string | undefined;
  /**
   * The file a secret setting names under the same rule (an absolute path; never a join URI's
   * value), for a method that reads it only when needed; undefined when the value is the secret.
   */
  secretPath: (value: string | undefined, field: string) => string | undefined;
  /** Logged as a warning when tbot starts (never with a secret in it). */
  warn?: (message: string) => void;
}

/**
 * `onboarding.<method>` of tbot.yaml, for a method that takes options: validated by `schema`,
 * then resolved once at startup into what `payload` gets as `ctx.options`.
 */
export interface ClientOptions<B = unknown> {
  schema: z.ZodType<B, z.ZodTypeDef, unknown>;
  /** tbot flags that set a key of the block: flag name -> key. */
  flags?: Readonly<Record<string, string>>;
  /**
   * The key of the block a join URI's parameter sets (`tbot+proxy+METHOD://TOKEN:PARAMETER@...`,
   * as in Teleport), and keys of the block that may not be given with it. Without it, a parameter
   * is ignored with a warning.
   */
  uriParameter?: { key: string; conflicts?: readonly string[] };
  /**
   * Reads the secrets the block points to (files) or the environment holds. `block` is undefined
   * when tbot.yaml has none. Without `resolve`, the block is passed as it is.
   */
  resolve?(block: B | undefined, ctx: ClientOptionsContext): Record<string, unknown>;
}

/** Client half: builds the method's payload, and takes what the server returned. */
export interface ClientJoinMethod {
  readonly name: string;
  readonly options?: ClientOptions;
  /**
   * For a method that recovers an identity that expired by joining again: what that does (logged
   * as a warning). Other methods either join afresh for every identity or need a new token.
   */
  readonly expiredRecovery?: string;
  payload(ctx: ClientJoinContext): Promise<unknown>;
  afterJoin?(ctx: ClientJoinContext, methodData: Record<string, unknown> | undefined): Promise<void>;
}
