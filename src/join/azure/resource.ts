/**
 * An Azure resource id a managed identity token names, parsed. Only the two shapes a VM's managed
 * identity carries are accepted, segment names in any case (Azure treats them so), nothing before,
 * between or after them:
 * - a VM (the system-assigned identity's `xms_mirid`, and `xms_az_rid`):
 *   `/subscriptions/S/resourceGroups/RG/providers/Microsoft.Compute/virtualMachines/NAME`
 * - a user-assigned identity (its `xms_mirid`):
 *   `/subscriptions/S/resourceGroups/RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/NAME`
 */
export interface ResourceId {
  kind: 'vm' | 'identity';
  /** Lowercase GUID. */
  subscription: string;
  /** As written (Azure compares resource group names without regard to case). */
  resourceGroup: string;
  name: string;
  /** The id as written. */
  id: string;
}

const GUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
// Azure's names: resource groups up to 90 characters, VMs and identities fewer; nothing that would
// change a URL's path or query when the id is sent back to Azure Resource Manager
// (whole code points, `u`: a lone surrogate, which encodeURIComponent throws on, is not one of them)
const NAME = '[A-Za-z0-9_.()\\-\\u{00C0}-\\u{D7FF}\\u{E000}-\\u{10FFFF}]{1,90}';
const SHAPE = new RegExp(
  `^/subscriptions/(${GUID})/resourcegroups/(${NAME})/providers/` +
    '(microsoft\\.compute/virtualmachines|microsoft\\.managedidentity/userassignedidentities)' +
    `/(${NAME})$`,
  'iu',
);

/** The resource `id` names, or undefined if it is not exactly one of the two shapes. */
export function parseResourceId(id: unknown): ResourceId | undefined {
  if (typeof id !== 'string' || id.length > 512) return undefined;
  const m = SHAPE.exec(id);
  if (!m) return undefined;
  const [, subscription, resourceGroup, type, name] = m as unknown as [string, string, string, string, string];
  // a name of dots only would be a path segment ('.', '..') once sent to ARM
  if (/^\.+$/.test(resourceGroup) || /^\.+$/.test(name)) return undefined;
  return {
    kind: type.toLowerCase().startsWith('microsoft.compute') ? 'vm' : 'identity',
    subscription: subscription.toLowerCase(),
    resourceGroup,
    name,
    id,
  };
}

/** Two resource ids name the same resource (Azure compares them without regard to case). */
export function sameResource(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}
