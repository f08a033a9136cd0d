import { JoinRefusal } from '../types.js';
import type { ArmClient, ArmVm } from './arm.js';
import type { AzureIdentity } from './token.js';

/**
 * Binds the access token to the attested document: the VM the token names (`xms_mirid` for a
 * system-assigned identity, `xms_az_rid` for a user-assigned one) is looked up in Azure Resource
 * Manager with that very token, and its `vmId` must be the one IMDS signed into the document; a
 * user-assigned identity must also be one the VM holds. Without this, a token read from another VM
 * of the subscription would lend that VM's resource group to this one (the review's M1).
 */
export async function bindVm(arm: ArmClient, id: AzureIdentity, accessToken: string, vmId: string): Promise<ArmVm> {
  const vm = await arm.getVm(id.vm, accessToken);
  if (vm.vmId !== vmId)
    throw new JoinRefusal(
      `the access token's VM ${vm.vm.id} is vmId ${vm.vmId} in Azure Resource Manager, not the attested ` +
        `document's ${vmId}: the token was not issued on the VM that signed the document`,
      "the join was refused: the access token's virtual machine is not the one that signed the attested document",
    );
  if (id.identity.kind === 'identity' && !vm.userAssignedIdentities.includes(id.identity.id.toLowerCase()))
    throw new JoinRefusal(
      `the access token's user-assigned identity ${id.identity.id} is not one VM ${vm.vm.id} holds ` +
        'in Azure Resource Manager',
      "the join was refused: the access token's managed identity is not assigned to the virtual machine",
    );
  return vm;
}
