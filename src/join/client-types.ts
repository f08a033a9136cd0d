/** The contract of a join method's client half: what tbot gives it, and what it provides. */

/** Method-private state tbot keeps in its storage across runs. */
export interface ClientStateStore {
  read(): Record<string, unknown>;
  write(state: Record<string, unknown>): Promise<void>;
}

export interface ClientJoinContext {
  token: string;
  /** The method's own onboarding options (e.g. onboarding.bound_keypair). */
  options: Readonly<Record<string, unknown>>;
  state: ClientStateStore;
  /** The cluster name (the audience platform tokens must carry), asked of the Auth Service. */
  clusterName(): Promise<string>;
  /** POST /v1/join/challenge with this method-specific payload. */
  challenge(payload: unknown): Promise<Record<string, unknown>>;
  log: { info(msg: string, fields?: Record<string, unknown>): void; warn(msg: string, fields?: Record<string, unknown>): void };
}

/** Client half: builds the method's payload, and takes what the server returned. */
export interface ClientJoinMethod {
  readonly name: string;
  payload(ctx: ClientJoinContext): Promise<unknown>;
  afterJoin?(ctx: ClientJoinContext, methodData: Record<string, unknown> | undefined): Promise<void>;
}
