import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { MemoryBackend } from '../../src/storage/memory.js';
import { SqliteBackend } from '../../src/storage/sqlite.js';
import { backendConformance } from '../helpers/backend-conformance.js';

const dir = mkdtempSync(join(tmpdir(), 'mwi-storage-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

backendConformance('memory', async (clock) => new MemoryBackend(clock.now));
backendConformance('sqlite', async (clock) => new SqliteBackend(join(dir, `t${n++}.db`), clock.now));
