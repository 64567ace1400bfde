import type { AddressInfo } from 'node:net';
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { HlsLiveStream } from '../../src/hls/live-stream.ts';
import { originPlugin } from '../../src/origin/origin-plugin.ts';
import { fragment } from '../unit/hls/fragments.ts';

const ID = 'fedcba9876543210fedcba9876543210';
const CLIENTS = 500;
const PARTS_EACH = 8;

/**
 * 500 LL-HLS players on one stream, each following the live edge the way hls.js does — a blocking
 * reload for the preload-hinted part, then that part — for 8 consecutive parts across segment
 * boundaries. Every client must get every part, and nothing may answer 5xx.
 */
describe('LL-HLS origin: 500 blocking-reload clients each get every part', () => {
  it('delivers every part to every client', async () => {
    const stream = new HlsLiveStream({ prefix: 'cd34ef56', segmentTarget: 2, partTarget: 0.25, windowSegments: 20 });
    stream.addRendition('source');
    stream.pushInit('source', { data: Buffer.from('init'), tracks: [] });
    let t = 0;
    let n = 0;
    const pushPart = () => {
      // A keyframe every 4 parts (1 s GOP), 20 kB parts.
      stream.pushFragment('source', fragment(0.25, n++ % 4 === 0, 20_000, 0, t));
      t += 0.25;
    };
    for (let i = 0; i < 10; i++) pushPart();

    const app = Fastify();
    await app.register(originPlugin, { live: { stream: (id) => (id === ID ? stream : undefined) } });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/${ID}/manifest/source/`;

    const statuses = new Map<number, number>();
    const count = (status: number) => statuses.set(status, (statuses.get(status) ?? 0) + 1);
    const hint = (text: string) => /#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part-[0-9a-z]+-(\d+)-(\d+)\.m4s"/.exec(text);

    async function follow(): Promise<number> {
      let res = await fetch(`${base}index.m3u8`);
      count(res.status);
      let text = await res.text();
      let got = 0;
      while (got < PARTS_EACH) {
        const next = hint(text);
        if (!next) throw new Error(`no preload hint in:\n${text}`);
        res = await fetch(`${base}index.m3u8?_HLS_msn=${next[1]}&_HLS_part=${next[2]}`);
        count(res.status);
        if (res.status !== 200) throw new Error(`blocking reload answered ${res.status}`);
        text = await res.text();
        const part = await fetch(`${base}part-cd34ef56-${next[1]}-${next[2]}.m4s`);
        count(part.status);
        if (part.status !== 200 || (await part.arrayBuffer()).byteLength !== 20_000) throw new Error(`part answered ${part.status}`);
        got++;
      }
      return got;
    }

    // The stream produces a part every 250 ms (real time) until every client is done.
    const producer = setInterval(pushPart, 250);
    try {
      const results = await Promise.all(Array.from({ length: CLIENTS }, () => follow()));
      expect(results.every((r) => r === PARTS_EACH)).toBe(true);
      expect([...statuses.keys()].filter((s) => s >= 500)).toEqual([]);
      expect(statuses.get(200)).toBe(CLIENTS * (1 + 2 * PARTS_EACH));
      expect(stream.waiterCount).toBe(0);
    } finally {
      clearInterval(producer);
      await app.close();
    }
  });
});
