import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { S3StoreOptions } from '../../src/storage/s3-store.ts';

/**
 * s3rver (an S3-compatible server on a plain directory) in a child process on 127.0.0.1. A child
 * rather than in-process: `stop()` is then a real outage (SIGKILL drops open connections too), and
 * s3rver's winston exception handlers stay out of the test worker.
 */
export interface TestS3Server {
  readonly port: number;
  readonly endpoint: string;
  readonly bucket: string;
  /** Where s3rver keeps the objects (survives stop/start). */
  readonly dir: string;
  readonly running: boolean;
  /** S3Store options pointing at this server. */
  storeOptions(): S3StoreOptions;
  /** The TRIBUTARY_STORAGE_* environment that points a Tributary server at this store. */
  serverEnv(): Record<string, string>;
  /** Kills the server (an outage). */
  stop(): Promise<void>;
  /** Starts it again on the same port and directory. */
  start(): Promise<void>;
  /** Stops it and removes its directory. */
  dispose(): Promise<void>;
}

const REPO_ROOT = resolve(import.meta.dirname, '../..');

// CommonJS, since s3rver is; argv: directory, port, bucket.
const SCRIPT = `
const S3rver = require('s3rver');
// stdin closes when the parent dies (even by SIGKILL or a worker timeout): never outlive it.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
const [dir, port, bucket] = process.argv.slice(1);
const server = new S3rver({
  address: '127.0.0.1', port: Number(port), silent: true, directory: dir,
  configureBuckets: [{ name: bucket, configs: [] }],
});
server.run().then(
  (addr) => process.stdout.write(JSON.stringify({ port: addr.port }) + '\\n'),
  (err) => { process.stderr.write(String(err && err.stack || err)); process.exit(1); },
);
`;

export async function startTestS3Server(bucket = 'tributary-test'): Promise<TestS3Server> {
  const dir = await mkdtemp(join(tmpdir(), 'trib-s3rver-'));
  let port = 0;
  let child: ChildProcess | undefined;
  const killOnExit = () => child?.kill('SIGKILL');
  process.once('exit', killOnExit);

  const launch = async (): Promise<void> => {
    const proc = spawn(process.execPath, ['-e', SCRIPT, dir, String(port), bucket], {
      cwd: REPO_ROOT,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    child = proc;
    let stderr = '';
    proc.stderr?.setEncoding('utf8');
    proc.stderr?.on('data', (t: string) => (stderr = (stderr + t).slice(-4000)));
    port = await new Promise<number>((res, rej) => {
      let out = '';
      const timer = setTimeout(() => {
        proc.kill('SIGKILL');
        rej(new Error(`s3rver did not start within 20 s: ${stderr}`));
      }, 20_000);
      proc.stdout?.setEncoding('utf8');
      proc.stdout?.on('data', (t: string) => {
        out += t;
        const line = out.split('\n')[0];
        if (out.includes('\n') && line) {
          clearTimeout(timer);
          res((JSON.parse(line) as { port: number }).port);
        }
      });
      proc.once('exit', (code, signal) => {
        clearTimeout(timer);
        rej(new Error(`s3rver exited during startup (code ${code}, signal ${signal}): ${stderr}`));
      });
    });
  };

  const stop = async (): Promise<void> => {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((res) => proc.once('exit', res));
    proc.kill('SIGKILL');
    await exited;
  };

  await launch();
  return {
    get port() {
      return port;
    },
    get endpoint() {
      return `http://127.0.0.1:${port}`;
    },
    bucket,
    dir,
    get running() {
      return child !== undefined && child.exitCode === null && child.signalCode === null;
    },
    storeOptions: () => ({
      endpoint: `http://127.0.0.1:${port}`,
      region: 'us-east-1',
      bucket,
      // s3rver's fixed development credentials.
      accessKeyId: 'S3RVER',
      secretAccessKey: 'S3RVER',
      forcePathStyle: true,
    }),
    serverEnv: () => ({
      TRIBUTARY_STORAGE_KIND: 's3',
      TRIBUTARY_STORAGE_S3_ENDPOINT: `http://127.0.0.1:${port}`,
      TRIBUTARY_STORAGE_S3_REGION: 'us-east-1',
      TRIBUTARY_STORAGE_S3_BUCKET: bucket,
      TRIBUTARY_STORAGE_S3_ACCESS_KEY_ID: 'S3RVER',
      TRIBUTARY_STORAGE_S3_SECRET_ACCESS_KEY: 'S3RVER',
      TRIBUTARY_STORAGE_S3_FORCE_PATH_STYLE: 'true',
    }),
    stop,
    start: async () => {
      if (child) return;
      await launch();
    },
    dispose: async () => {
      await stop();
      process.removeListener('exit', killOnExit);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
