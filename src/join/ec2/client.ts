import type { ClientJoinMethod } from '../client-types.js';
import { imdsGet } from './imds.js';
import { IID_PATH, type Ec2JoinPayload } from './wire.js';

/**
 * Client half of ec2: the signed instance identity document, read through IMDSv2. It only
 * bootstraps: the identity then renews over mTLS, and the document (valid aws_iid_ttl from the
 * instance's start) is not needed again.
 */
export const ec2Client: ClientJoinMethod = {
  name: 'ec2',
  async payload(ctx): Promise<Ec2JoinPayload> {
    const document = await imdsGet(IID_PATH, process.env);
    ctx.log.info('read the EC2 instance identity document (rsa2048) from IMDSv2');
    return { document };
  },
};
