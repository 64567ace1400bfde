import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { HlsLiveStream } from '../../src/hls/live-stream.ts';
import type { HlsStreamView } from '../../src/origin/live-playback.ts';
import { originPlugin } from '../../src/origin/origin-plugin.ts';
import { fragment } from '../unit/hls/fragments.ts';

const ID = '0123456789abcdef0123456789abcdef';
const PREFIX = 'ab12cd34';
const CLIENTS = 500;

/**
 * A load check, not a benchmark: 500 players blocked on the same next part of one stream over
 * real HTTP, all answered with that part's playlist when it arrives. The numbers are printed,
 * not asserted (they depend on the machine).
 */
describe('LL-HLS origin under 500 concurrent blocking requests', () => {
  it('answers every blocked request with the new part, no 5xx', async () => {
    let t = 0;
    const stream = new HlsLiveStream({ prefix: PREFIX, segmentTarget: 2, partTarget: 0.25, windowSegments: 6 });
    stream.addRendition('720p');
    stream.pushInit('720p', { data: Buffer.from('init'), tracks: [] });
    const parts = (n: number) => {
      for (let i = 0; i < n; i++, t += 0.25) stream.pushFragment('720p', fragment(0.25, Math.round(t * 4) % 4 === 0, 20_000, 0, t));
    };
    parts(8 * 3 + 2);

    let holds = 0;
    let allHeld: () => void = () => {};
    const everyoneHeld = new Promise<void>((resolve) => (allHeld = resolve));
    const view: HlsStreamView = {
      masterPlaylist: () => stream.masterPlaylist(),
      mediaPlaylist: (r, skip) => stream.mediaPlaylist(r, skip),
      blockingState: (r, msn, p) => stream.blockingState(r, msn, p),
      waitForPlaylist: (r, msn, p, signal) => {
        const w = stream.waitForPlaylist(r, msn, p, signal);
        if (++holds === CLIENTS) allHeld();
        return w;
      },
      waitForPart: (r, file, signal) => stream.waitForPart(r, file, signal),
      resource: (r, file) => stream.resource(r, file),
      targetDuration: stream.targetDuration,
      partTarget: stream.partTarget,
      ended: false,
    };
    const app = Fastify();
    let served = 0;
    let allServed = 0;
    app.addHook('onResponse', async () => {
      if (++served === CLIENTS) allServed = performance.now();
    });
    await app.register(originPlugin, { live: { stream: () => view } });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    try {
      const url = `${base}/${ID}/manifest/720p/index.m3u8?_HLS_msn=3&_HLS_part=2`;
      const t0 = performance.now();
      const requests = Array.from({ length: CLIENTS }, () =>
        // Node's fetch opens as many connections to one origin as there are requests.
        fetch(url, { headers: { 'accept-encoding': 'gzip' } }).then(async (res) => ({
          status: res.status,
          body: await res.text(),
          done: performance.now(),
        })),
      );
      await everyoneHeld;
      const heldAt = performance.now();
      expect(stream.waiterCount).toBe(CLIENTS);
      parts(1);
      const released = performance.now();
      const results = await Promise.all(requests);
      const statuses = new Map<number, number>();
      for (const r of results) statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      const latencies = results.map((r) => r.done - released).sort((a, b) => a - b);
      const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!.toFixed(1);
      console.log(
        `[llhls-load] ${CLIENTS} clients held after ${(heldAt - t0).toFixed(0)} ms; ` +
          `after the part: p50 ${pct(0.5)} ms, p99 ${pct(0.99)} ms, max ${pct(1)} ms; statuses ${JSON.stringify([...statuses])}; ` +
          `server sent all ${(allServed - released).toFixed(1)} ms after the part; rss ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB`,
      );
      expect(statuses.get(200)).toBe(CLIENTS);
      for (const r of results) expect(r.body).toContain(`URI="part-${PREFIX}-3-2.m4s"`);
      expect(stream.waiterCount).toBe(0);
    } finally {
      await app.close();
    }
  });
});
