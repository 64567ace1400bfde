import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { silentLogger, type Logger } from '../../src/observability/logger.ts';
import { EmbeddedRedis } from '../../src/state/embedded-redis.ts';
import { createRedis } from '../../src/state/redis-client.ts';

export interface TestRedis {
  /** A connected client (already answered PING). */
  redis: Redis;
  /** The unix socket path, for creating more clients. */
  path: string;
  /** The same as a `unix://` URL. */
  url: string;
  dataDir: string;
  server: EmbeddedRedis;
  /** Closes the client and the server, and removes the data dir unless `keepData`. */
  stop(opts?: { keepData?: boolean }): Promise<void>;
}

/** Starts a real redis-server in a fresh temp dir (or `dataDir`), for integration tests. */
export async function startTestRedis(opts: { dataDir?: string; logger?: Logger } = {}): Promise<TestRedis> {
  const logger = opts.logger ?? silentLogger();
  const dataDir = opts.dataDir ?? (await mkdtemp(join(tmpdir(), 'trib-redis-')));
  const server = new EmbeddedRedis({ dataDir, logger });
  const target = await server.start();
  const redis = createRedis({ path: target.path }, logger);
  await redis.ping();
  let stopped = false;
  return {
    redis,
    path: target.path,
    url: target.url,
    dataDir,
    server,
    async stop({ keepData = false } = {}) {
      if (stopped) return;
      stopped = true;
      redis.disconnect();
      await server.close();
      if (!keepData) await rm(dataDir, { recursive: true, force: true });
    },
  };
}
