/** The join payload of every JWT method: the platform's signed token, as tbot got it. */
export interface JwtJoinPayload {
  id_token: string;
}
