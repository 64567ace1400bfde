import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';

import { parseMaster, parseMedia } from './probe.ts';
const ROOT = path.resolve(import.meta.dirname, '..', '..');

export interface TestServer {
  httpUrl: string;
  rtmpPort: number;
  /** Set when the server runs RTMPS (certificate configured) / SRT. */
  rtmpsPort: number | undefined;
  srtPort: number | undefined;
  rtmpBase: string;
  apiKey: string;
  dataDir: string;
  process: ChildProcess;
  /** Every log line (parsed JSON) the server printed so far. */
  logs: Array<Record<string, unknown>>;
  /** The raw stdout/stderr text, for diagnostics. */
  output(): string;
  api<T = unknown>(method: string, urlPath: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; body: T; headers: Headers }>;
  /** Resolves with the first log line matching the predicate (already printed or future). */
  waitForLog(predicate: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** SIGTERM (graceful) and wait for exit. */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILL and wait for exit. */
  kill(): Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Removes the data directory (after stop). */
  cleanup(): Promise<void>;
}

export interface StartServerOptions {
  dataDir?: string;
  apiKey?: string;
  env?: Record<string, string>;
  startTimeoutMs?: number;
}

/** Starts the real server (`node src/main.ts`) on 127.0.0.1 with ports picked by the OS. */
export async function startServer(opts: StartServerOptions = {}): Promise<TestServer> {
  const dataDir = opts.dataDir ?? mkdtempSync(path.join(os.tmpdir(), 'trib-srv-'));
  const apiKey = opts.apiKey ?? `test_${randomBytes(16).toString('hex')}`;
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/tmp',
    TRIBUTARY_HOST: '127.0.0.1',
    TRIBUTARY_HTTP_PORT: '0',
    TRIBUTARY_RTMP_PORT: '0',
    TRIBUTARY_RTMPS_PORT: '0',
    TRIBUTARY_SRT_PORT: '0',
    TRIBUTARY_DATA_DIR: dataDir,
    TRIBUTARY_API_KEY: apiKey,
    TRIBUTARY_LOG_LEVEL: 'info',
    TRIBUTARY_RTMP_AUTH_FAILURE_DELAY_MS: '200',
    ...opts.env,
  };
  const child = spawn(process.execPath, [path.join(ROOT, 'src/main.ts')], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Array<Record<string, unknown>> = [];
  let text = '';
  const waiters: Array<{ predicate: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }> = [];
  let pending = '';
  const onLine = (line: string) => {
    text += `${line}\n`;
    if (!line.startsWith('{')) return;
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    logs.push(parsed);
    for (const w of [...waiters]) {
      if (w.predicate(parsed)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(parsed);
      }
    }
  };
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const l of lines) onLine(l);
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    text += chunk;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });

  const waitForLog: TestServer['waitForLog'] = (predicate, timeoutMs = 30_000) => {
    const found = logs.find(predicate);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(entry), 1);
        reject(new Error(`timed out waiting for a log line; output so far:\n${text.slice(-4000)}`));
      }, timeoutMs);
      const entry = {
        predicate,
        resolve: (l: Record<string, unknown>) => {
          clearTimeout(timer);
          resolve(l);
        },
      };
      waiters.push(entry);
      void exited.then(() => {
        if (waiters.includes(entry)) {
          clearTimeout(timer);
          waiters.splice(waiters.indexOf(entry), 1);
          reject(new Error(`server exited while waiting for a log line; output:\n${text.slice(-4000)}`));
        }
      });
    });
  };

  const ready = await waitForLog((l) => l.msg === 'tributary ready', opts.startTimeoutMs ?? 30_000);
  const httpUrl = String(ready.http);
  const rtmpPort = Number(ready.rtmpPort);
  const rtmpsPort = typeof ready.rtmpsPort === 'number' ? ready.rtmpsPort : undefined;
  const srtPort = typeof ready.srtPort === 'number' ? ready.srtPort : undefined;

  const server: TestServer = {
    httpUrl,
    rtmpPort,
    rtmpsPort,
    srtPort,
    rtmpBase: `rtmp://127.0.0.1:${rtmpPort}/live`,
    apiKey,
    dataDir,
    process: child,
    logs,
    output: () => text,
    async api(method, urlPath, body, headers = {}) {
      const res = await fetch(`${httpUrl}${urlPath}`, {
        method,
        headers: {
          authorization: `Bearer ${apiKey}`,
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
          ...headers,
        },
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      });
      const raw = await res.text();
      let parsed: unknown = raw;
      try {
        parsed = raw ? JSON.parse(raw) : undefined;
      } catch {
        // not JSON: keep the text
      }
      return { status: res.status, body: parsed as never, headers: res.headers };
    },
    waitForLog,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    exited,
    async cleanup() {
      await rm(dataDir, { recursive: true, force: true });
    },
  };
  return server;
}

/** Creates a live input through the API and returns its uid and stream key. */
export async function createLiveInput(
  server: TestServer,
  body: Record<string, unknown> = { meta: { name: 'test' } },
): Promise<{ uid: string; streamKey: string; raw: Record<string, unknown> }> {
  const res = await server.api<{ result: { uid: string; rtmp: { streamKey: string } } }>('POST', '/v1/live_inputs', body);
  if (res.status !== 201) throw new Error(`create live input: ${res.status} ${JSON.stringify(res.body)}`);
  return { uid: res.body.result.uid, streamKey: res.body.result.rtmp.streamKey, raw: res.body.result as never };
}

/** Polls a URL until it answers 200 (the stream has become playable). Event-free by nature. */
export async function waitForHttp200(url: string, timeoutMs = 30_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    const res = await fetch(url).catch((e: unknown) => ({ status: 0, text: async () => String(e) }));
    if (res.status === 200) return res.text();
    last = `${res.status}`;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} did not become available (last status ${last})`);
}

/** The media sequence + segment count of a live stream's first rendition: a number that only grows while live. */
export async function liveProgress(masterUrl: string): Promise<number> {
  const variant = parseMaster(await waitForHttp200(masterUrl))[0]!;
  const media = parseMedia(await waitForHttp200(new URL(variant.uri, masterUrl).toString()));
  return media.mediaSequence + media.segments.length;
}

/** Resolves with the progress once it passes `after`; throws if the live playlist stops advancing. */
export async function waitForProgress(masterUrl: string, after: number, timeoutMs = 20_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const now = await liveProgress(masterUrl);
    if (now > after) return now;
    if (Date.now() > deadline) throw new Error(`the live playlist stopped advancing at ${now}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
