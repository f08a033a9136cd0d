// Worker thread for f06-audit-growth.test.ts: one Auth Service process's audit writer, appending
// numbered events to a shared log as fast as it can, rotating it when full.
// (The test runner also loads this file on its own, on the main thread: then it does nothing.)
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { FileAuditLog } from '../../src/auth/audit.js';

interface Job {
  path: string;
  from: number;
  count: number;
  maxSize: number;
}

async function write({ path, from, count, maxSize }: Job): Promise<void> {
  const log = new FileAuditLog(path, Date.now, { maxSize, maxFiles: 1000 });
  for (let n = from; n < from + count; n++) {
    log.emit({ event: 'bot.renew', success: true, n });
    if (n % 23 === 0) await new Promise((r) => setImmediate(r));
  }
  await log.close();
  parentPort!.postMessage('done');
}

if (!isMainThread) await write(workerData as Job);
