import { Agent, request } from 'node:https';
import { boundedRequest } from '../../util/bounded-request.js';
import { JoinRefusal } from '../types.js';
import { parseResourceId, type ResourceId } from './resource.js';

/** Azure Resource Manager of Azure's public cloud. */
export const ARM_DEFAULT = 'https://management.azure.com';
/** The Compute API version of the Virtual Machines - Get call. */
export const ARM_API_VERSION = '2024-07-01';
const TIMEOUT_MS = 10_000;
/** A VM's description is a few KiB; one with many extensions and disks stays far below this. */
const MAX_ANSWER = 256 * 1024;

/** What Azure Resource Manager says of a VM. */
export interface ArmVm {
  /** The VM's resource id, as ARM writes it (its resource group in ARM's case). */
  vm: ResourceId;
  /** The VM's unique id, which IMDS writes into the attested document (lowercase). */
  vmId: string;
  /** The resource ids of the user-assigned identities the VM holds (lowercase). */
  userAssignedIdentities: string[];
}

/** Looks VMs up in Azure Resource Manager with the caller's own access token. */
export interface ArmClient {
  /** The base URL the token is sent to, and nowhere else. */
  readonly endpoint: string;
  /** The VM `vm` names, read with `accessToken`; throws a JoinRefusal saying why it cannot. */
  getVm(vm: ResourceId, accessToken: string): Promise<ArmVm>;
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** ARM's error body (`{"error": {"code": ...}}`): its code, if it has one. */
function errorCode(body: string): string | undefined {
  try {
    const code: unknown = (JSON.parse(body) as { error?: { code?: unknown } } | null)?.error?.code;
    return typeof code === 'string' && /^[A-Za-z0-9_.]{1,64}$/.test(code) ? code : undefined;
  } catch {
    return undefined;
  }
}

/** ARM's answer to Virtual Machines - Get, checked: it must describe the VM asked for. */
export function readVm(asked: ResourceId, status: number, body: string, endpoint: string): ArmVm {
  const unavailable = (why: string) =>
    new JoinRefusal(
      `Azure Resource Manager (${endpoint}) ${why}`,
      "the join was refused: Azure Resource Manager did not confirm the access token's virtual machine",
    );
  if (status === 404)
    throw unavailable(`has no VM ${asked.id} (HTTP 404${errorCode(body) ? ` ${errorCode(body)}` : ''})`);
  if (status === 401 || status === 403) {
    const code = errorCode(body);
    throw new JoinRefusal(
      `Azure Resource Manager (${endpoint}) refused to show VM ${asked.id} to the access token's identity ` +
        `(HTTP ${status}${code ? ` ${code}` : ''}): the identity needs Microsoft.Compute/virtualMachines/read on it`,
      'the join was refused: Azure Resource Manager refused to show the virtual machine to its managed identity ' +
        '(it needs Microsoft.Compute/virtualMachines/read on the VM, e.g. the Reader role)',
    );
  }
  if (status !== 200) throw unavailable(`answered HTTP ${status}${errorCode(body) ? ` (${errorCode(body)})` : ''}`);
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch {
    throw unavailable('answered 200 with something that is not JSON');
  }
  const d = (doc ?? {}) as { id?: unknown; properties?: { vmId?: unknown }; identity?: Record<string, unknown> };
  const vm = parseResourceId(d.id);
  // the answer must be the VM asked for: the resource group used by the rules comes from it
  if (vm?.kind !== 'vm' || vm.id.toLowerCase() !== asked.id.toLowerCase()) {
    const got = typeof d.id === 'string' ? JSON.stringify(d.id.slice(0, 300)) : `an id of type ${typeof d.id}`;
    throw unavailable(`answered with another resource than ${asked.id}: ${got}`);
  }
  const vmId = d.properties?.vmId;
  if (typeof vmId !== 'string' || !GUID.test(vmId)) throw unavailable(`answered VM ${asked.id} without a vmId`);
  const assigned = d.identity?.userAssignedIdentities;
  const userAssignedIdentities =
    assigned && typeof assigned === 'object' && !Array.isArray(assigned)
      ? Object.keys(assigned).map((k) => k.toLowerCase())
      : [];
  return { vm, vmId: vmId.toLowerCase(), userAssignedIdentities };
}

/**
 * The ARM client of the Auth Service: `GET {endpoint}/subscriptions/S/resourceGroups/RG/providers/
 * Microsoft.Compute/virtualMachines/NAME` with the joining VM's own managed identity token as
 * bearer (so the Auth Service needs no Azure credentials), over HTTPS to `endpoint` only (the path
 * is built from a parsed resource id, redirects are not followed), the answer bounded in time
 * (`timeoutMs`, the whole exchange) and size. `ca` (PEM) replaces the system's trust (tests).
 */
export function httpsArmClient(o: { endpoint: URL; ca?: string | undefined; timeoutMs?: number }): ArmClient {
  if (o.endpoint.protocol !== 'https:') throw new TypeError('the ARM endpoint must be https');
  const endpoint = o.endpoint.origin;
  const timeoutMs = o.timeoutMs ?? TIMEOUT_MS;
  // one connection kept between joins (as the EC2 client does), not a TLS handshake per join
  const agent = new Agent({ keepAlive: true, maxSockets: 16, timeout: 5000 });
  return {
    endpoint,
    async getVm(vm, accessToken) {
      const e = encodeURIComponent;
      const path =
        `/subscriptions/${e(vm.subscription)}/resourceGroups/${e(vm.resourceGroup)}` +
        `/providers/Microsoft.Compute/virtualMachines/${e(vm.name)}?api-version=${ARM_API_VERSION}`;
      let answer;
      try {
        answer = await boundedRequest(
          request,
          {
            host: o.endpoint.hostname.replace(/^\[|\]$/g, ''),
            port: o.endpoint.port ? Number(o.endpoint.port) : 443,
            servername: o.endpoint.hostname,
            ...(o.ca ? { ca: o.ca } : {}),
            method: 'GET',
            path,
            headers: { authorization: `Bearer ${accessToken}`, accept: 'application/json', 'user-agent': 'mwi' },
            agent,
          },
          undefined,
          { totalMs: timeoutMs, maxBytes: MAX_ANSWER, tooLong: `an answer longer than ${MAX_ANSWER} bytes` },
        );
      } catch (err) {
        throw new JoinRefusal(
          `Azure Resource Manager (${endpoint}) could not be asked for VM ${vm.id}: ${(err as Error).message}`,
          "the join was refused: Azure Resource Manager did not confirm the access token's virtual machine",
        );
      }
      return readVm(vm, answer.status, answer.body.toString('utf8'), endpoint);
    },
  };
}
