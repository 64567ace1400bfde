/**
 * Spool drain rate: how fast many small finished files (LL-HLS segments) reach an S3-compatible
 * store through the spool, at several upload concurrencies — side by side with the same files
 * PUT straight to the store by the same client (the reference: what the store itself allows).
 *
 *   node scripts/bench/spool-drain.ts [--files 1000] [--kib 50] [--concurrency 4,16]
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { silentLogger } from '../../src/observability/logger.ts';
import { createObjectStore } from '../../src/storage/create-store.ts';
import { Spool } from '../../src/storage/spool.ts';
import { startTestS3Server } from '../../test/helpers/s3-server.ts';
import { printTable } from './bench-lib.ts';

const { values } = parseArgs({
  options: {
    files: { type: 'string', default: '1000' },
    kib: { type: 'string', default: '50' },
    concurrency: { type: 'string', default: '4,16' },
  },
});
const files = Number(values.files);
const data = randomBytes(Number(values.kib) * 1024);
const mb = (files * data.length) / 1e6;
const work = await mkdtemp(path.join(os.tmpdir(), 'trib-spool-bench-'));
const s3 = await startTestS3Server();
const rows: Array<Array<string | number>> = [];
const results: Record<string, unknown> = {};
try {
  for (const concurrency of values.concurrency.split(',').map(Number)) {
    const store = createObjectStore({ kind: 's3', ...s3.storeOptions() });
    // Reference: the same PUTs with the same concurrency, no spool.
    let next = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < files) await store.put(`direct-${concurrency}/seg-${next++}.m4s`, data);
      }),
    );
    const direct = (performance.now() - t0) / 1000;

    const dir = path.join(work, `spool-${concurrency}`);
    const spool = new Spool({ dir, store, logger: silentLogger(), concurrency });
    const a0 = performance.now();
    for (let i = 0; i < files; i++) await spool.add(`spool-${concurrency}/seg-${String(i).padStart(6, '0')}.m4s`, data);
    const added = (performance.now() - a0) / 1000;
    const d0 = performance.now();
    await spool.start();
    await spool.flush();
    const drained = (performance.now() - d0) / 1000;
    await spool.close();
    await store.close();
    rows.push([`spool → S3, concurrency ${concurrency}`, files / drained, mb / drained, files / added]);
    rows.push([`direct PUT, concurrency ${concurrency} (reference)`, files / direct, mb / direct, '-']);
    results[`c${concurrency}`] = { spoolFilesPerS: files / drained, directFilesPerS: files / direct, spoolAddFilesPerS: files / added };
  }
  printTable(`${files} × ${values.kib} KiB files to s3rver (fsync on)`, ['setup', 'files/s', 'MB/s', 'spool add files/s'], rows);
  process.stdout.write(`\n${JSON.stringify({ bench: 'spool-drain', files, kib: Number(values.kib), ...results })}\n`);
} finally {
  await s3.dispose();
  await rm(work, { recursive: true, force: true });
}
