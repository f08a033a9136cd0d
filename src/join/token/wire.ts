/** Method `token` sends no payload: the token name in the join request is the secret. */
export type TokenJoinPayload = undefined;
