import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/observability/logger.ts';
import { JobQueues } from '../../src/jobs/job-queues.ts';
import { createRedis } from '../../src/state/redis-client.ts';
import { startTestRedis, type TestRedis } from '../helpers/redis.ts';

describe('JobQueues on a real redis-server', () => {
  let redis: TestRedis;
  const open = () =>
    new JobQueues({
      connect: () => createRedis({ path: redis.path }, silentLogger(), { maxRetriesPerRequest: null }),
      prefix: 'test:bull',
      logger: silentLogger(),
    });

  beforeEach(async () => {
    redis = await startTestRedis();
  });
  afterEach(async () => {
    await redis.stop();
  });

  it('runs a job, retries a failing one, and keeps a job queued while no worker runs', async () => {
    const first = open();
    const seen: string[] = [];
    let failures = 0;
    const done = new Promise<void>((resolve) => {
      first.worker<{ n: string }>(
        'work',
        async (job) => {
          if (job.data.n === 'flaky' && failures++ < 2) throw new Error('transient');
          seen.push(job.data.n);
          if (seen.length === 2) resolve();
        },
        { concurrency: 2 },
      );
    });
    await first.queue<{ n: string }>('work').add('x', { n: 'plain' });
    await first.queue<{ n: string }>('work').add('x', { n: 'flaky' }, { attempts: 5, backoff: { type: 'fixed', delay: 10 } });
    await done;
    expect(seen.sort()).toEqual(['flaky', 'plain']);
    expect(failures).toBe(3);
    await first.close();

    // Enqueued with no worker running: the job waits in Redis for the next process.
    const producer = open();
    await producer.queue<{ n: string }>('later').add('x', { n: 'survivor' });
    await producer.close();
    const second = open();
    const got = await new Promise<string>((resolve) => {
      second.worker<{ n: string }>('later', async (job) => resolve(job.data.n), { concurrency: 1 });
    });
    expect(got).toBe('survivor');
    await second.close();
    await second.close(); // idempotent
    expect(() => second.queue('after-close')).toThrow(/closed/);
  });
});
