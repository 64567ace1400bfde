import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { silentLogger } from '../../src/observability/logger.ts';
import { readFlv } from '../../src/media/flv-reader.ts';
import type { FlvTag } from '../../src/media/flv-tag.ts';
import { FlvFanout } from '../../src/simulcast/flv-fanout.ts';
import { SimulcastOutput, type SimulcastOutputSettings } from '../../src/simulcast/simulcast-output.ts';
import { freePort, startNginxRtmp, type NginxRtmp } from '../helpers/nginx-rtmp.ts';
import { FFMPEG } from '../helpers/ffmpeg-publish.ts';

const run = promisify(execFile);
const UID = 'c'.repeat(32);

const settings = (over: Partial<SimulcastOutputSettings> = {}): SimulcastOutputSettings => ({
  ffmpegPath: FFMPEG,
  queueBytes: 1024 * 1024,
  backoff: { baseMs: 50, maxMs: 200 },
  connectTimeoutMs: 20_000,
  stallTimeoutMs: 1500,
  ...over,
});

// One output's supervisor on its own, with real FFmpeg: a missing binary, and a target that
// freezes (SIGSTOP) mid-stream — its FFmpeg blocks, the watchdog replaces it, the queue is
// dropped rather than grown, and sending resumes when the target thaws.
describe('SimulcastOutput', () => {
  const work = mkdtempSync(path.join(os.tmpdir(), 'trib-simout-'));
  let tags: FlvTag[] = [];
  let nginx: NginxRtmp | undefined;

  beforeAll(async () => {
    // 4 s of 2 Mb/s H.264 + AAC: fed in a loop faster than real time, it fills socket buffers quickly.
    const file = path.join(work, 'src.flv');
    await run(FFMPEG, [
      '-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=30', '-f', 'lavfi', '-i', 'sine=frequency=440',
      '-t', '4', '-c:v', 'libx264', '-preset', 'ultrafast', '-b:v', '2M', '-g', '30', '-c:a', 'aac', '-f', 'flv', file,
    ]);
    tags = readFlv(await readFile(file)).tags;
  });

  afterAll(async () => {
    if (nginx) {
      nginx.process.kill('SIGCONT');
      await nginx.stop();
    }
    await rm(work, { recursive: true, force: true });
  });

  it('reports a missing FFmpeg as the last error and keeps retrying with backoff until closed', async () => {
    const output = new SimulcastOutput({
      uid: UID,
      target: { url: 'rtmp://127.0.0.1:1/live', streamKey: 'secret-key' },
      headers: () => [],
      settings: settings({ ffmpegPath: path.join(work, 'no-such-ffmpeg') }),
      logger: silentLogger(),
    });
    output.start();
    await expect.poll(() => output.status.reconnects, { timeout: 10_000, interval: 20 }).toBeGreaterThanOrEqual(3);
    expect(output.status.state).toBe('reconnecting');
    expect(output.status.lastError?.message).toMatch(/cannot run ffmpeg: .*ENOENT/);
    await output.close();
    const after = output.status.reconnects;
    await new Promise((r) => setTimeout(r, 300));
    expect(output.status.reconnects).toBe(after);
    expect(output.pid).toBeUndefined();
  });

  it('restarts an output whose target stops reading, drops instead of queueing, and recovers', async () => {
    nginx = await startNginxRtmp(path.join(work, 'nginx'), await freePort());
    const fanout = new FlvFanout();
    const output = new SimulcastOutput({
      uid: UID,
      target: { url: nginx.rtmpBase, streamKey: 'frozen-secret' },
      headers: () => fanout.headers(),
      settings: settings(),
      logger: silentLogger(),
    });
    fanout.add(output);
    output.start();

    // Feed at about 4× real time, re-stamping each loop so timestamps keep rising.
    const loopMs = (tags.at(-1)?.timestamp ?? 0) + 40;
    let offset = 0;
    let i = 0;
    let feeding = true;
    const feeder = (async () => {
      while (feeding) {
        const started = Date.now();
        const until = offset + (tags[i]?.timestamp ?? 0) + 1000;
        while (feeding && offset + (tags[i]?.timestamp ?? 0) < until) {
          const t = tags[i]!;
          fanout.push({ ...t, timestamp: t.type === 18 ? 0 : offset + t.timestamp });
          i++;
          if (i === tags.length) {
            i = 0;
            offset += loopMs;
          }
        }
        await new Promise((r) => setTimeout(r, Math.max(0, 250 - (Date.now() - started))));
      }
    })();

    try {
      await expect.poll(() => output.status.state, { timeout: 30_000, interval: 50 }).toBe('connected');
      await expect.poll(() => output.status.bytesSent, { timeout: 10_000, interval: 50 }).toBeGreaterThan(500_000);

      // The target freezes: TCP stays open, nothing is read. FFmpeg blocks; the watchdog replaces it.
      nginx.process.kill('SIGSTOP');
      await expect.poll(() => output.status.lastError?.message ?? '', { timeout: 60_000, interval: 100 }).toMatch(/accepted nothing for 1500 ms/);
      expect(output.status.state).not.toBe('connected');
      await expect.poll(() => output.status.droppedTags, { timeout: 30_000, interval: 100 }).toBeGreaterThan(0);

      nginx.process.kill('SIGCONT');
      await expect.poll(() => output.status.state, { timeout: 30_000, interval: 50 }).toBe('connected');
      const resumedAt = output.status.bytesSent;
      await expect.poll(() => output.status.bytesSent, { timeout: 10_000, interval: 50 }).toBeGreaterThan(resumedAt + 200_000);
      expect(output.status.reconnects).toBeGreaterThanOrEqual(1);
      expect(output.status.lastError?.message).not.toContain('frozen-secret');
    } finally {
      feeding = false;
      await feeder;
      fanout.remove(output);
      await output.close();
    }
    expect(output.pid).toBeUndefined();
  });
});
