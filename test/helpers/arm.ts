// Azure Resource Manager on 127.0.0.1 (HTTPS, a test CA): the one call the `azure` join makes,
// Virtual Machines - Get. What it reproduces of the real service: the path shape and its
// case-insensitive segment names, the required api-version (400 MissingApiVersionParameter), the
// bearer token checked as ARM checks it (signature by the tenant's keys, audience
// https://management.azure.com/, expiry: 401 AuthenticationFailed / InvalidAuthenticationToken),
// role-based access (the token's identity must have been granted read on the VM, else 403
// AuthorizationFailed), 404 ResourceNotFound for an unknown VM, and the answer's shape (`id` in
// ARM's own spelling, `properties.vmId`, `identity` with the system-assigned principal and the
// user-assigned identities keyed by resource id). Knobs make it slow, broken or wrong.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { makePublicPki } from './public-pki.js';

/** A VM ARM knows. */
export interface ArmTestVm {
  /** Its resource id in ARM's spelling (`/subscriptions/S/resourceGroups/RG/providers/Microsoft.Compute/...`). */
  id: string;
  vmId: string;
  /** Whether it has a system-assigned identity (default true). */
  systemAssigned?: boolean;
  /** Resource ids of the user-assigned identities it holds. */
  userAssigned?: string[];
  /**
   * Identities (their `xms_mirid`) granted read on it; default: its own ones (the VM for its
   * system-assigned identity, and each user-assigned one).
   */
  readers?: string[];
}

/** How the stand-in answers a request that passed its checks. */
export type ArmMode = 'ok' | 'slow' | 'garbage' | '500' | 'huge' | 'other-vm';

export interface TestArm {
  /** https://127.0.0.1:PORT: mwi.yaml `azure.arm_endpoint`. */
  url: string;
  /** The CA file to trust for it: `azure.arm_ca_path`. */
  caFile: string;
  vms: Map<string, ArmTestVm>;
  addVm(vm: ArmTestVm): void;
  mode: ArmMode;
  /** Requests served: path, the Authorization header's token (if any) and the status answered. */
  requests: Array<{ path: string; token?: string; status: number }>;
  close(): Promise<void>;
}

const VM_PATH =
  /^\/subscriptions\/([^/]+)\/resourcegroups\/([^/]+)\/providers\/microsoft\.compute\/virtualmachines\/([^/]+)$/i;

/** Starts the stand-in, trusting tokens signed with the keys of `jwks()` for `issuer`. */
export async function startArm(dir: string, issuer: string, jwks: () => string): Promise<TestArm> {
  const pki = await makePublicPki(dir);
  const { cert, key } = await pki.issue('arm', 'IP:127.0.0.1,DNS:localhost');
  const vms = new Map<string, ArmTestVm>();
  const requests: TestArm['requests'] = [];
  const self = { mode: 'ok' as ArmMode };
  const sockets = new Set<{ destroy(): void; on(e: 'close', f: () => void): unknown }>();
  const server: Server = createServer({ cert: readFileSync(cert), key: readFileSync(key) }, (req, res) => {
    const u = new URL(req.url ?? '/', 'https://x');
    const bearer = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1];
    const answer = (status: number, body: unknown) => {
      requests.push({ path: u.pathname, ...(bearer ? { token: bearer } : {}), status });
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
      res.end(typeof body === 'string' ? body : JSON.stringify(body));
    };
    const error = (status: number, code: string, message: string) => answer(status, { error: { code, message } });
    void (async () => {
      const m = VM_PATH.exec(u.pathname);
      if (req.method !== 'GET' || !m) return error(404, 'InvalidResourceType', 'not a virtual machine path');
      if (!u.searchParams.get('api-version'))
        return error(400, 'MissingApiVersionParameter', 'The api-version query parameter (?api-version=) is required');
      if (!bearer)
        return error(401, 'AuthenticationFailed', "Authentication failed. The 'Authorization' header is missing.");
      let identity: string;
      try {
        const { payload } = await jwtVerify(bearer, createLocalJWKSet(JSON.parse(jwks())), {
          issuer,
          audience: 'https://management.azure.com/',
        });
        identity = typeof payload.xms_mirid === 'string' ? payload.xms_mirid.toLowerCase() : '';
      } catch (err) {
        return error(401, 'InvalidAuthenticationToken', `The access token is invalid: ${(err as Error).message}`);
      }
      const vm = vms.get(decodeURIComponent(u.pathname).toLowerCase());
      const readers = (
        vm?.readers ?? (vm ? [...(vm.systemAssigned === false ? [] : [vm.id]), ...(vm.userAssigned ?? [])] : [])
      ).map((r) => r.toLowerCase());
      // ARM says 403 before 404 when the caller may not read the scope at all
      if (vm && !readers.includes(identity))
        return error(
          403,
          'AuthorizationFailed',
          `The client with object id '${randomUUID()}' does not have authorization to perform action ` +
            `'Microsoft.Compute/virtualMachines/read' over scope '${u.pathname}'`,
        );
      if (!vm) return error(404, 'ResourceNotFound', `The Resource '${m[3]}' was not found`);
      if (self.mode === 'slow') return; // never answers (the socket stays open until close)
      if (self.mode === '500') return error(500, 'InternalServerError', 'Encountered internal server error');
      if (self.mode === 'garbage') return answer(200, '<html>not json</html>');
      if (self.mode === 'huge') return answer(200, JSON.stringify({ id: vm.id, pad: 'x'.repeat(1024 * 1024) }));
      const id = self.mode === 'other-vm' ? vm.id.replace(/[^/]+$/, 'someone-else') : vm.id;
      answer(200, {
        name: id.split('/').at(-1),
        id,
        type: 'Microsoft.Compute/virtualMachines',
        location: 'westeurope',
        identity: {
          type: [vm.systemAssigned === false ? '' : 'SystemAssigned', vm.userAssigned?.length ? 'UserAssigned' : '']
            .filter(Boolean)
            .join(', '),
          ...(vm.systemAssigned === false ? {} : { principalId: randomUUID(), tenantId: randomUUID() }),
          ...(vm.userAssigned?.length
            ? {
                userAssignedIdentities: Object.fromEntries(
                  vm.userAssigned.map((i) => [i, { principalId: randomUUID(), clientId: randomUUID() }]),
                ),
              }
            : {}),
        },
        properties: { vmId: vm.vmId, provisioningState: 'Succeeded', hardwareProfile: { vmSize: 'Standard_B2s' } },
      });
    })();
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return Object.assign(self, {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    caFile: pki.root,
    vms,
    addVm(vm: ArmTestVm) {
      vms.set(vm.id.toLowerCase(), vm);
    },
    requests,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  });
}
