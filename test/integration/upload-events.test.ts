import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { App } from '../../src/app.ts';
import { loadConfig } from '../../src/config/load-config.ts';
import type { VideoEvent } from '../../src/events/event-bus.ts';
import { silentLogger } from '../../src/observability/logger.ts';

const run = promisify(execFile);

// The App in this process, so that its event bus can be watched: every state change of an
// uploaded video is a `video.state` event, in order.
describe('upload state events', () => {
  let app: App;
  let dir: string;
  let base = '';
  const apiKey = 'test_upload_events_0123456789';
  const events: VideoEvent[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'trib-upl-ev-'));
    const config = loadConfig({
      cwd: dir,
      env: {
        TRIBUTARY_HOST: '127.0.0.1',
        TRIBUTARY_HTTP_PORT: '0',
        TRIBUTARY_RTMP_ENABLED: 'false',
        TRIBUTARY_DATA_DIR: path.join(dir, 'data'),
        TRIBUTARY_API_KEY: apiKey,
        TRIBUTARY_TRANSCODE_LADDER: JSON.stringify([{ name: '240p', height: 240, videoBitrateKbps: 300, audioBitrateKbps: 64 }]),
      },
    });
    app = new App({ config, logger: silentLogger() });
    app.events.on((event) => {
      if (event.type === 'video.state') events.push(event);
    });
    base = (await app.start()).httpUrl;
  });

  afterAll(async () => {
    await app?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const upload = async (url: string, data: Buffer, key = true) => {
    const body = new FormData();
    body.append('file', new Blob([new Uint8Array(data)]), 'clip.mp4');
    const res = await fetch(url, { method: 'POST', body, headers: key ? { authorization: `Bearer ${apiKey}` } : {} });
    return { status: res.status, body: (await res.json()) as { result: { uid: string } } };
  };

  it('queued → inprogress → ready for a good upload; error with its reason for a bad one', async () => {
    const file = path.join(dir, 'clip.mp4');
    await run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc=size=320x240:rate=25', '-t', '3', '-c:v', 'libx264', '-pix_fmt', 'yuv420p', file]);
    const good = await upload(`${base}/v1/videos`, await readFile(file));
    expect(good.status).toBe(200);
    const uid = good.body.result.uid;
    await expect.poll(() => events.some((e) => e.videoUid === uid && e.state === 'ready'), { timeout: 60_000 }).toBe(true);
    expect(events.filter((e) => e.videoUid === uid).map((e) => e.state)).toEqual(['queued', 'inprogress', 'ready']);

    const direct = await fetch(`${base}/v1/videos/direct_upload`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      body: '{}',
    });
    const { uploadURL, uid: badUid } = ((await direct.json()) as { result: { uploadURL: string; uid: string } }).result;
    expect((await upload(uploadURL, Buffer.from('plain text, not a video'), false)).status).toBe(415);
    expect(events.filter((e) => e.videoUid === badUid)).toEqual([
      { type: 'video.state', videoUid: badUid, state: 'error', errorReasonCode: 'ERR_NON_VIDEO' },
    ]);
  });
});
