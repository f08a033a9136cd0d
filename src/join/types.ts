import type { JoinRequest } from '../api/wire.js';

/** What a server half sees of the token being joined with. */
export interface JoinTokenView {
  /** Storage id (for secret tokens, a hash-derived id, never the secret). */
  id: string;
  botName: string;
  spec: Readonly<Record<string, unknown>>;
  /** sha256 hex of the secret, for methods whose token name is the secret. */
  secretHash?: string | undefined;
}

export interface ServerJoinContext {
  request: JoinRequest;
  token: JoinTokenView;
  clusterName: string;
  now: number;
  /** Consumes the token with one conditional write; false if another join consumed it first. */
  consumeToken(): Promise<boolean>;
}

/** Attributes the server verified (recorded on the bot instance and in the audit log). */
export interface ServerJoinResult {
  attributes?: Record<string, unknown>;
}

/**
 * Server half of a join method: one function that either returns the verified attributes or
 * throws a JoinRefusal whose reason goes only to the audit log.
 */
export interface ServerJoinMethod {
  readonly name: string;
  verify(ctx: ServerJoinContext): Promise<ServerJoinResult>;
}

/** Client half: builds the method's payload for the join request. */
export interface ClientJoinMethod {
  readonly name: string;
  payload(ctx: { token: string }): Promise<unknown>;
}

/** A refusal with an internal reason (audit/log only) and the public message the caller gets. */
export class JoinRefusal extends Error {
  constructor(
    readonly reason: string,
    readonly publicMessage = 'the join was refused (the token is unknown, expired, already used or not valid for this request); the Auth Service audit log has the reason',
  ) {
    super(reason);
    this.name = 'JoinRefusal';
  }
}
