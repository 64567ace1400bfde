import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser, ConsoleMessage, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publishTestStream } from '../helpers/ffmpeg-publish.ts';
import { launchChromium } from '../helpers/hlsjs-player.ts';
import { createLiveInput, startServer, waitForHttp200, type TestServer } from '../helpers/server.ts';

// The embed player as a site owner uses it: `<iframe src="…/{id}/iframe">`. Chromium resolves
// *.example.com and evil.test to 127.0.0.1, so that "other sites" can frame the player.
/** Runs in the page: the player's video has played more than 2 s. */
const videoPastTwoSeconds = () => {
  const doc = (globalThis as unknown as { document: { querySelector(s: string): { currentTime: number } | null } }).document;
  return (doc.querySelector('video')?.currentTime ?? 0) > 2;
};

describe('embed player (/{id}/iframe)', () => {
  let server: TestServer;
  let browser: Browser;
  let sites: http.Server;
  let sitePort: number;

  /** A page on `host` that frames `src`; `noReferrer` hides the framing site from the origin. */
  const siteUrl = (host: string, src: string, noReferrer = false) =>
    `http://${host}:${sitePort}/page?src=${encodeURIComponent(src)}${noReferrer ? '&noref=1' : ''}`;

  const collectCsp = (page: Page) => {
    const violations: string[] = [];
    page.on('console', (m: ConsoleMessage) => {
      if (/Content Security Policy/i.test(m.text())) violations.push(m.text());
    });
    return violations;
  };

  beforeAll(async () => {
    sites = http.createServer((req, res) => {
      const q = new URL(req.url ?? '/', 'http://x').searchParams;
      const src = (q.get('src') ?? '').replace(/[<>"&]/g, '');
      const meta = q.get('noref') ? '<meta name="referrer" content="no-referrer">' : '';
      res.writeHead(200, { 'content-type': 'text/html' }).end(
        `<!doctype html><html><head>${meta}</head><body style="margin:0"><iframe src="${src}" width="640" height="360" allow="autoplay"></iframe></body></html>`,
      );
    });
    await new Promise<void>((resolve) => sites.listen(0, '127.0.0.1', resolve));
    sitePort = (sites.address() as AddressInfo).port;
    [server, browser] = await Promise.all([
      startServer({ env: { TRIBUTARY_TRANSCODE_MAX_RENDITIONS: '1' } }),
      launchChromium(['--host-resolver-rules=MAP *.example.com 127.0.0.1, MAP evil.test 127.0.0.1']),
    ]);
  });

  afterAll(async () => {
    await browser?.close();
    await new Promise((resolve) => sites?.close(resolve));
    await server?.stop();
    await server?.cleanup();
  });

  it('shows "not live yet", then plays without a reload when the publisher starts', async () => {
    const input = await createLiveInput(server, { meta: { name: 'embed' } });
    const page = await browser.newPage({ viewport: { width: 640, height: 360 } });
    const csp = collectCsp(page);
    let loads = 0;
    page.on('load', () => loads++);
    await page.goto(`${server.httpUrl}/${input.uid}/iframe`);
    await page.waitForSelector('body[data-state="waiting"]', { state: 'attached', timeout: 15_000 });
    expect(await page.textContent('#status')).toMatch(/not live yet/);
    await page.screenshot({ path: '/tmp/embed-waiting.png' });

    const publisher = publishTestStream({ url: `${server.rtmpBase}/${input.streamKey}`, width: 640, height: 360, fps: 30, gop: 30 });
    try {
      await page.waitForSelector('body[data-state="playing"]', { state: 'attached', timeout: 60_000 });
      await page.waitForFunction(videoPastTwoSeconds, null, { timeout: 30_000 });
      await page.screenshot({ path: '/tmp/embed.png' });
      expect(loads).toBe(1);
      expect(csp).toEqual([]);
      // Every script came from the origin itself, hls.js included, with long-lived caching.
      const asset = await fetch(`${server.httpUrl}/assets/hls.min.js`);
      expect(asset.status).toBe(200);
      expect(asset.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    } finally {
      await page.close();
      await publisher.stop();
    }
  });

  it('plays a private input from a token id, framed only by the allowed sites', async () => {
    const input = await createLiveInput(server, {
      meta: { name: 'private embed' },
      recording: { requireSignedURLs: true, allowedOrigins: ['*.example.com'] },
    });
    const minted = await server.api<{ result: { token: string } }>('POST', `/v1/live_inputs/${input.uid}/token`, {});
    const token = minted.body.result.token;
    const publisher = publishTestStream({ url: `${server.rtmpBase}/${input.streamKey}`, width: 640, height: 360, fps: 30, gop: 30 });
    try {
      await waitForHttp200(`${server.httpUrl}/${token}/manifest/video.m3u8`, 30_000);
      // Without the token the embed page says so, in the page.
      const denied = await fetch(`${server.httpUrl}/${input.uid}/iframe`);
      expect(denied.status).toBe(401);
      expect(await denied.text()).toContain('TOKEN_REQUIRED');

      // An allowed site frames it and it plays (its own requests carry its own origin as Referer).
      const page = await browser.newPage({ viewport: { width: 660, height: 380 } });
      const csp = collectCsp(page);
      await page.goto(siteUrl('a.example.com', `${server.httpUrl}/${token}/iframe`));
      const frame = page.frames().find((f) => f.url().includes('/iframe'));
      expect(frame).toBeDefined();
      await frame!.waitForSelector('body[data-state="playing"]', { state: 'attached', timeout: 60_000 });
      await frame!.waitForFunction(videoPastTwoSeconds, null, { timeout: 30_000 });
      expect(csp).toEqual([]);

      // Another site: refused by the origin (its Referer) …
      const evil = await browser.newPage();
      const refused = evil.waitForResponse((r) => r.url().endsWith('/iframe'));
      await evil.goto(siteUrl('evil.test', `${server.httpUrl}/${token}/iframe`));
      expect((await refused).status()).toBe(403);
      // … and, when it hides its Referer, by the browser (frame-ancestors).
      const blocked = evil.waitForEvent('console', (m) => /frame-ancestors/.test(m.text()));
      const served = evil.waitForResponse((r) => r.url().endsWith('/iframe'));
      await evil.goto(siteUrl('evil.test', `${server.httpUrl}/${token}/iframe`, true));
      expect((await served).status()).toBe(200);
      expect((await blocked).text()).toMatch(/violates the following Content Security Policy directive: "frame-ancestors/);
      await Promise.all([page.close(), evil.close()]);
    } finally {
      await publisher.stop();
    }
  });
});
