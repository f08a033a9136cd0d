import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { BotCredentialResponse } from '../api/wire.js';
import { MwiError } from '../errors.js';
import { claimsFromCert, type Claims } from './claims.js';

// Which identity a request speaks as is decided here, and only here. A connection speaks as the
// client certificate TLS verified against the user CA (a certificate from another CA ends the
// connection), until a renewal answered on it makes it speak as the identity just issued. An
// identity past its expiry is refused, except where no identity is needed (a join).

/**
 * Who may call a route. `anyone`: no identity needed, an expired one counts as none. `bot`: the
 * caller's identity, refused once expired; the handler checks it is a bot's (a renewal refuses
 * with RENEW_DENIED, certificates and heartbeats with ACCESS_DENIED). `admin`: an administrator's.
 */
export type Access = 'anyone' | 'bot' | 'admin';

export type AdminClaims = Extract<Claims, { kind: 'admin' }>;

/** Who a connection speaks as, and until when. */
interface ConnectionIdentity {
  claims: Claims;
  /** Epoch ms: the certificate's notAfter, or the carried identity's expiry. */
  notAfter: number;
}

/**
 * Per connection: the verified client certificate's claims, parsed once, or the identity a
 * renewal on this connection issued since (see carryRenewal). null: no client identity.
 */
const identityBySocket = new WeakMap<TLSSocket, ConnectionIdentity | null>();

/**
 * For the server's `secureConnection` event: a client certificate from any other CA is refused
 * at the connection, not per request (join has no client certificate, so TLS asks for one
 * without requiring it).
 */
export function refuseUnverifiedCertificate(socket: TLSSocket): void {
  if (!socket.authorized && socket.getPeerCertificate()?.raw) socket.destroy();
}

function connectionIdentity(socket: TLSSocket): ConnectionIdentity | null {
  let id = identityBySocket.get(socket);
  if (id === undefined) {
    id = null;
    if (socket.authorized) {
      // the X509Certificate view parses only what is asked for (getPeerCertificate() builds
      // every field and three fingerprints: a measurable share of a new connection's cost)
      const cert = socket.getPeerX509Certificate();
      const claims = cert ? claimsFromCert(cert.raw) : undefined;
      if (cert && claims) id = { claims, notAfter: Date.parse(cert.validTo) };
    }
    identityBySocket.set(socket, id);
  }
  return id;
}

/**
 * The identity `req` speaks as, for a route open to `access` (see Access); throws ACCESS_DENIED
 * when it may not call it. A kept-alive connection can outlive the identity it speaks as: an
 * expired one is refused, or for `anyone` treated as none.
 */
export function callerOf(req: IncomingMessage, now: number, access: 'admin'): AdminClaims;
export function callerOf(req: IncomingMessage, now: number, access: Access): Claims | undefined;
export function callerOf(req: IncomingMessage, now: number, access: Access): Claims | undefined {
  const id = connectionIdentity(req.socket as TLSSocket);
  let claims: Claims | undefined;
  if (id && !(id.notAfter > now)) {
    if (access !== 'anyone') {
      const at = new Date(id.notAfter).toISOString();
      const message = `the identity this connection presented expired at ${at}; connect again with a current one`;
      throw new MwiError('ACCESS_DENIED', message);
    }
  } else claims = id?.claims;
  if (access === 'admin' && claims?.kind !== 'admin') {
    throw new MwiError('ACCESS_DENIED', 'the admin API needs an admin identity');
  }
  return claims;
}

/**
 * After a renewal (or a refresh join) answered on this connection: when `caller`, the identity
 * the request spoke as, is the bot instance the new identity is for, the connection now speaks
 * as the new identity. Whoever holds the connection proved the previous key and received the
 * new certificate on it, so this grants nothing they do not already hold; it lets tbot finish a
 * renewal cycle (output certificates, heartbeat) without a second TLS handshake. The previous
 * generation is still refused on every other connection, as before. Returns `issued`.
 */
export function carryRenewal(req: IncomingMessage, caller: Claims | undefined, issued: BotCredentialResponse) {
  const { bot_name: bot, instance_id: instance, generation } = issued;
  if (caller?.kind !== 'bot' || caller.instance !== instance) return issued;
  const socket = req.socket as TLSSocket;
  const cur = identityBySocket.get(socket)?.claims;
  if (cur?.kind !== 'bot' || cur.bot !== bot || cur.instance !== instance) return issued;
  const claims: Claims = { kind: 'bot', bot, instance, generation };
  identityBySocket.set(socket, { claims, notAfter: Date.parse(issued.expires) });
  return issued;
}
