import { randomBytes } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'vitest';
import { createLogger } from '../../src/observability/logger.ts';
import { createObjectStore } from '../../src/storage/create-store.ts';
import { Spool } from '../../src/storage/spool.ts';
import { startTestS3Server } from '../helpers/s3-server.ts';

it('debug', async () => {
  const s3 = await startTestS3Server();
  const store = createObjectStore({ kind: 's3', ...s3.storeOptions(), maxAttempts: 1, requestTimeoutMs: 5000 });
  const dir = await mkdtemp(join(tmpdir(), 'dbg-'));
  const spool = new Spool({ dir, store, logger: createLogger({ level: 'debug' }), retry: { baseMs: 100, maxMs: 1000 } });
  for (let i = 0; i < 200; i++) await spool.add(`o/seg-${i}.m4s`, randomBytes(20000));
  await spool.start();
  while (spool.uploadedTotal < 50) await new Promise((r) => setTimeout(r, 5));
  console.log('stopping at', spool.uploadedTotal);
  await s3.stop();
  console.log('stopped');
  while (spool.failedAttempts < 12) { await new Promise((r) => setTimeout(r, 200)); console.log('failed', spool.failedAttempts, spool.uploadedTotal); }
  await s3.start();
  console.log('restarted', s3.port);
  const t = setInterval(() => console.log('up', spool.uploadedTotal, spool.failedAttempts), 1000);
  await spool.flush();
  clearInterval(t);
  await spool.close(); await store.close(); await s3.dispose();
}, 60000);
