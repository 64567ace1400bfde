import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { until } from './until.ts';

/** A Redis master, its replica and sentinels on 127.0.0.1, for tests of Sentinel support. */
export interface TestSentinelGroup {
  name: string;
  sentinels: Array<{ host: string; port: number }>;
  /** Port of the master at start (the replica takes over on failover). */
  masterPort: number;
  replicaPort: number;
  /** Where the sentinels say the master is now. */
  currentMasterPort(): Promise<number>;
  /** `SENTINEL FAILOVER` and wait until every sentinel names the new master and it accepts writes. */
  failover(timeoutMs?: number): Promise<number>;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

function client(port: number): Redis {
  const c = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => 100 });
  // Servers come and go in these tests; a failed command says what failed.
  c.on('error', () => {});
  return c;
}

/**
 * Starts a master, a replica synced to it, then `sentinelCount` sentinels (`redis-server
 * --sentinel`) monitoring it with quorum 2 (1 for a single sentinel), all in a temp dir; resolves
 * once every sentinel knows the replica (a failover needs one).
 */
export async function startTestSentinelGroup(opts: { sentinelCount?: number; name?: string } = {}): Promise<TestSentinelGroup> {
  const name = opts.name ?? 'mymaster';
  const count = opts.sentinelCount ?? 3;
  const dir = await mkdtemp(join(tmpdir(), 'trib-sentinel-'));
  const children: ChildProcess[] = [];
  const clients: Redis[] = [];
  const run = (args: string[]) => {
    const child = spawn('redis-server', args, { stdio: 'ignore' });
    children.push(child);
    return child;
  };
  const connect = async (port: number) => {
    const c = client(port);
    clients.push(c);
    await until(`redis on ${port}`, async () => ((await c.ping()) === 'PONG' ? true : undefined), 10_000);
    return c;
  };
  const stop = async () => {
    for (const c of clients) c.disconnect();
    await Promise.all(
      children.map((child) =>
        child.exitCode !== null || child.signalCode !== null ? undefined : new Promise((r) => child.once('exit', r).kill('SIGKILL')),
      ),
    );
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const masterPort = await freePort();
    const replicaPort = await freePort();
    const common = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir];
    run(['--port', String(masterPort), ...common, '--dbfilename', 'master.rdb']);
    const master = await connect(masterPort);
    run(['--port', String(replicaPort), ...common, '--dbfilename', 'replica.rdb', '--replicaof', '127.0.0.1', String(masterPort)]);
    const replica = await connect(replicaPort);
    await until('the replica in sync', async () => ((await replica.info('replication')).includes('master_link_status:up') ? true : undefined), 15_000);
    await master.ping();

    const sentinels: Array<{ host: string; port: number }> = [];
    for (let i = 0; i < count; i++) {
      const port = await freePort();
      const file = join(dir, `sentinel-${i}.conf`);
      // Sentinel rewrites its config file as it learns (replicas, other sentinels, epochs).
      await writeFile(
        file,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          `dir ${dir}`,
          `sentinel monitor ${name} 127.0.0.1 ${masterPort} ${count > 1 ? 2 : 1}`,
          `sentinel down-after-milliseconds ${name} 2000`,
          `sentinel failover-timeout ${name} 10000`,
          `sentinel parallel-syncs ${name} 1`,
          '',
        ].join('\n'),
      );
      run([file, '--sentinel']);
      sentinels.push({ host: '127.0.0.1', port });
    }
    const sentinelClients = await Promise.all(sentinels.map((s) => connect(s.port)));
    await until(
      'every sentinel to know the replica',
      async () => {
        for (const s of sentinelClients) {
          const replicas = (await s.call('SENTINEL', 'REPLICAS', name)) as string[][];
          if (replicas.length !== 1 || !replicas[0]!.join(' ').includes(String(replicaPort))) return undefined;
        }
        return true;
      },
      20_000,
    );

    const currentMasterPort = async () => Number(((await sentinelClients[0]!.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name)) as string[])[1]);
    return {
      name,
      sentinels,
      masterPort,
      replicaPort,
      currentMasterPort,
      async failover(timeoutMs = 20_000) {
        const before = await currentMasterPort();
        await sentinelClients[0]!.call('SENTINEL', 'FAILOVER', name);
        const after = await until(
          'every sentinel to name the new master',
          async () => {
            const ports = await Promise.all(
              sentinelClients.map(async (s) => Number(((await s.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name)) as string[])[1])),
            );
            return ports.every((p) => p === ports[0] && p !== before) ? ports[0] : undefined;
          },
          timeoutMs,
        );
        const promoted = after === masterPort ? master : replica;
        await until('the new master to take writes', async () => ((await promoted.set('trib-test:failover', '1')) === 'OK' ? true : undefined), timeoutMs);
        return after;
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
