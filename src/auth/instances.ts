import { key } from '../storage/backend.js';

/** Storage key of a bot instance. */
export function instanceKey(botName: string, instanceId: string): string {
  return key('bot_instances', botName, instanceId);
}
