import { z } from 'zod';
import { ADMIN_ROUTES } from '../api/admin.js';
import type { RouteSpec } from '../api/route.js';
import { PATHS } from '../api/wire.js';
import { VERSION } from '../version.js';
import { AdminApi } from './admin.js';
import { carryRenewal } from './connection-identity.js';
import type { AuthContext } from './context.js';
import { testToken } from './token-test.js';
import { handleChallenge, handleJoin } from './join.js';
import { handleCerts } from './certs.js';
import { handleEndInstance } from './end-instance.js';
import { handleHeartbeat } from './heartbeat.js';
import { signOperatorIdentity } from './operator-identity.js';
import { handleRenew } from './renew.js';
import { route, type Area } from './router.js';
import { jwtSvidRequestSchema, x509SvidRequestSchema } from '../api/workload-identity.js';
import { handleBundle, handleJwtSvids, handleX509Svids } from './workload-identity/handlers.js';
import { discovery, FEDERATION_PATHS, jwks, spiffeBundle } from './workload-identity/federation.js';
import { exportWorkloadCA, isWorkloadCA, rotateWorkloadCA } from './workload-identity/admin.js';

/** Join, renewal, certificate and heartbeat bodies: each handler checks its own (the join methods' schemas). */
const checkedByHandler = z.unknown();

/** tbot's routes (src/api/wire.ts has their messages). */
const TBOT_ROUTES = {
  ping: { method: 'GET', path: PATHS.ping },
  join: { method: 'POST', path: PATHS.join, body: checkedByHandler },
  challenge: { method: 'POST', path: PATHS.challenge, body: checkedByHandler },
  renew: { method: 'POST', path: PATHS.renew, body: checkedByHandler },
  certs: { method: 'POST', path: PATHS.certs, body: checkedByHandler },
  heartbeat: { method: 'POST', path: PATHS.heartbeat, body: checkedByHandler },
  endInstance: { method: 'POST', path: PATHS.endInstance, body: checkedByHandler },
  workloadX509: { method: 'POST', path: PATHS.workloadX509, body: x509SvidRequestSchema },
  workloadJwt: { method: 'POST', path: PATHS.workloadJwt, body: jwtSvidRequestSchema },
  workloadBundle: { method: 'GET', path: PATHS.workloadBundle },
} as const satisfies Record<string, RouteSpec>;

/** Workload identity federation: public (no client certificate), at Teleport's paths. */
const FEDERATION_ROUTES = {
  discovery: { method: 'GET', path: FEDERATION_PATHS.discovery },
  rootDiscovery: { method: 'GET', path: FEDERATION_PATHS.rootDiscovery },
  jwks: { method: 'GET', path: FEDERATION_PATHS.jwks },
  spiffeBundle: { method: 'GET', path: FEDERATION_PATHS.spiffeBundle },
} as const satisfies Record<string, RouteSpec>;

/**
 * Every route of the Auth Service: the admin API (an admin identity for anything under
 * /v1/admin/, matched or not), then tbot's. A new API (a web dashboard, say) is another area.
 */
export function authRoutes(ctx: AuthContext, opts: { publicAddrs?: () => string[] } = {}): Area[] {
  const admin = new AdminApi(ctx, opts.publicAddrs);
  return [
    {
      prefix: `${PATHS.admin}/`,
      access: 'admin',
      notFound: 'no admin route',
      // no resource name holds a "/", except the BOT/ID form of a bot instance's name
      // (Teleport's), which admin.get splits itself
      names: { slashAllowed: (s, i) => i === 2 && s[0] === 'resources' && s[1] === 'bot_instance' },
      routes: [
        route(ADMIN_ROUTES.status, 'admin', () => admin.status()),
        route(ADMIN_ROUTES.createResource, 'admin', ({ body, caller }) =>
          admin.create(body.resource, body.upsert, caller.user, body.expected_revision),
        ),
        route(ADMIN_ROUTES.apply, 'admin', ({ body, caller }) => admin.apply(body, caller.user)),
        route(ADMIN_ROUTES.listResources, 'admin', ({ params, query }) =>
          admin.listJson(params.kind, { bot: query.bot, startAfter: query.start_after, limit: query.limit }),
        ),
        route(ADMIN_ROUTES.getResource, 'admin', ({ params }) => admin.getJson(params.kind, params.name)),
        route(ADMIN_ROUTES.deleteResource, 'admin', async ({ params, caller }) => {
          await admin.remove(params.kind, params.name, caller.user);
          return { ok: true as const };
        }),
        route(ADMIN_ROUTES.addBot, 'admin', ({ body, caller }) => admin.addBot(body, caller.user)),
        route(ADMIN_ROUTES.updateBot, 'admin', ({ params, body, caller }) =>
          admin.updateBot(params.name, body, caller.user),
        ),
        route(ADMIN_ROUTES.addToken, 'admin', ({ body, caller }) => admin.addToken(body, caller.user)),
        route(ADMIN_ROUTES.testToken, 'admin', ({ params, body }) => testToken(ctx, params.name, body)),
        route(ADMIN_ROUTES.audit, 'admin', ({ query }) => admin.recentEvents(query)),
        route(ADMIN_ROUTES.exportCA, 'admin', async ({ params: { type } }) => ({
          type,
          text: isWorkloadCA(type) ? await exportWorkloadCA(ctx, type) : admin.exportCA(type),
        })),
        route(ADMIN_ROUTES.rotateCA, 'admin', ({ params: { type }, caller }) =>
          rotateWorkloadCA(ctx, type, caller.user),
        ),
        route(ADMIN_ROUTES.signHost, 'admin', ({ body, caller }) => admin.signHost(body, caller.user)),
        route(ADMIN_ROUTES.signAdmin, 'admin', ({ body, caller }) => signOperatorIdentity(ctx, body, caller)),
      ],
    },
    {
      prefix: '/',
      access: 'anyone',
      notFound: 'no route',
      routes: [
        route(TBOT_ROUTES.ping, 'anyone', () => ({ cluster_name: ctx.cas.clusterName, server_version: VERSION })),
        route(TBOT_ROUTES.join, 'anyone', async ({ req, caller, body, remote }) =>
          carryRenewal(req, caller, await handleJoin(ctx, body, remote, caller)),
        ),
        route(TBOT_ROUTES.challenge, 'anyone', ({ body, remote }) => handleChallenge(ctx, body, remote)),
        route(TBOT_ROUTES.renew, 'bot', async ({ req, caller, body, remote }) =>
          carryRenewal(req, caller, await handleRenew(ctx, caller, body, remote)),
        ),
        route(TBOT_ROUTES.certs, 'bot', ({ caller, body, remote }) => handleCerts(ctx, caller, body, remote)),
        route(TBOT_ROUTES.heartbeat, 'bot', ({ caller, body, remote }) => handleHeartbeat(ctx, caller, body, remote)),
        route(TBOT_ROUTES.endInstance, 'bot', ({ caller, body, remote }) =>
          handleEndInstance(ctx, caller, body, remote),
        ),
        route(TBOT_ROUTES.workloadX509, 'bot', ({ caller, body, remote }) =>
          handleX509Svids(ctx, caller, body, remote),
        ),
        route(TBOT_ROUTES.workloadJwt, 'bot', ({ caller, body, remote }) => handleJwtSvids(ctx, caller, body, remote)),
        route(TBOT_ROUTES.workloadBundle, 'bot', ({ caller }) => handleBundle(ctx, caller)),
        route(FEDERATION_ROUTES.discovery, 'anyone', () => discovery(ctx)),
        route(FEDERATION_ROUTES.rootDiscovery, 'anyone', () => discovery(ctx)),
        route(FEDERATION_ROUTES.jwks, 'anyone', () => jwks(ctx)),
        route(FEDERATION_ROUTES.spiffeBundle, 'anyone', () => spiffeBundle(ctx)),
      ],
    },
  ];
}
