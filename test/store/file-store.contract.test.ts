import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileStore } from '../../src/store/file-store.js';
import { describeStateStore } from './contract.js';

describeStateStore('file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'rg-contract-'));
  return { store: await new FileStore(dir).open(), cleanup: () => rm(dir, { recursive: true, force: true }) };
});
