import { mkdtempSync, mkdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { startServer, type TestServer } from '../helpers/server.ts';
import { publishTestStream, type TestPublisher } from '../helpers/ffmpeg-publish.ts';
import { launchChromium } from '../helpers/hlsjs-player.ts';

// The web console in a real browser (Debian's headless Chromium): sign in with an API key,
// create a live input, publish to the ingest URL and stream key the page shows, watch it go
// live and play in the preview, switch it to signed URLs, play its recording, delete it.
// Screenshots go to $CONSOLE_SCREENSHOT_DIR when set (kept), else to a temp dir removed after.

const keepShots = process.env.CONSOLE_SCREENSHOT_DIR;

/** The little of the DOM the page functions use (this Node project has no DOM types). */
interface PageElement {
  textContent: string | null;
  currentTime: number;
  readyState: number;
  getAttribute(name: string): string | null;
}
interface Doc {
  document: { querySelector(selector: string): PageElement | null; querySelectorAll(selector: string): { length: number } };
}

describe('web console', () => {
  let server: TestServer;
  let browser: Browser;
  let page: Page;
  let publisher: TestPublisher | undefined;
  let shots: string;

  beforeAll(async () => {
    server = await startServer();
    browser = await launchChromium();
    const context = await browser.newContext({
      viewport: { width: 1280, height: 900 },
      permissions: ['clipboard-read', 'clipboard-write'],
    });
    page = await context.newPage();
    page.on('dialog', (d) => void d.accept());
    shots = keepShots ?? mkdtempSync(path.join(os.tmpdir(), 'trib-console-'));
    mkdirSync(shots, { recursive: true });
  });

  afterAll(async () => {
    await publisher?.stop();
    await browser?.close();
    await server?.stop();
    await server?.cleanup();
    if (!keepShots && shots) await rm(shots, { recursive: true, force: true });
  });

  const shot = (name: string) => page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
  const text = (selector: string) => page.locator(selector).first().innerText();
  /** Media time of a <video>, once it has played this far (polled in the page). */
  const opts = (timeout = 20_000) => ({ timeout, polling: 250 });
  // Page functions are literal functions, not strings: the console's CSP forbids eval.
  const textIs = (selector: string, value: string, timeout?: number) =>
    page.waitForFunction(([sel, v]) => (globalThis as unknown as Doc).document.querySelector(sel)?.textContent === v, [selector, value] as const, opts(timeout));
  const playsPast = (selector: string, seconds: number, timeout = 45_000) =>
    page.waitForFunction(
      ([sel, t]) => {
        const v = (globalThis as unknown as Doc).document.querySelector(sel);
        return !!v && v.currentTime > t && v.readyState >= 2;
      },
      [selector, seconds] as const,
      opts(timeout),
    );
  const previewSrc = () => page.getAttribute('#preview', 'data-src');

  it('refuses a wrong API key and keeps nothing', async () => {
    const res = await page.goto(`${server.httpUrl}/console`);
    expect(res?.status()).toBe(200);
    expect(page.url()).toBe(`${server.httpUrl}/console/`);
    expect(res?.headers()['content-security-policy']).toContain("frame-ancestors 'none'");
    await page.fill('#api-key', 'not-the-key');
    await page.click('#login-form button[type=submit]');
    await page.waitForSelector('#notice:not([hidden])');
    expect(await text('#notice')).toMatch(/refused/);
    expect(await page.isVisible('#login')).toBe(true);
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
    await shot('01-refused');
  });

  it('creates a live input, shows its ingest details, goes live and plays the preview', async () => {
    await page.fill('#api-key', server.apiKey);
    await page.click('#login-form button[type=submit]');
    await page.waitForSelector('#tabs:not([hidden])');
    expect(await page.evaluate(() => sessionStorage.getItem('tributary.apiKey'))).toBe(server.apiKey);

    // A hostile name is shown as text, never run.
    const hostile = '<img src=x onerror="window.__pwned=1">';
    await page.fill('#create-form input[name=name]', hostile);
    await page.click('#create-form button[type=submit]');
    await textIs('#d-name', hostile);
    expect(await page.locator('#inputs img, #input-detail img').count()).toBe(0);
    expect(await page.evaluate(() => (globalThis as unknown as { __pwned?: number }).__pwned)).toBeUndefined();

    await page.fill('#create-form input[name=name]', 'Console demo');
    await page.click('#create-form button[type=submit]');
    await textIs('#d-name', 'Console demo');
    expect(await page.locator('#inputs li').count()).toBe(2);
    const uid = await text('#d-uid');
    expect(uid).toMatch(/^[0-9a-f]{32}$/);

    // A recording ends as soon as the publisher leaves: no reconnect window.
    await page.fill('#edit-form input[name=timeout]', '0');
    await page.click('#edit-form button[type=submit]');
    await page.waitForSelector('#notice.ok:not([hidden])');
    const stored = await server.api<{ result: { recording: { timeoutSeconds: number }; rtmp: { url: string; streamKey: string } } }>(
      'GET',
      `/v1/live_inputs/${uid}`,
    );
    expect(stored.body.result.recording.timeoutSeconds).toBe(0);

    // The ingest URL and stream key come from the page, the key through its copy button.
    const rtmpUrl = await page.inputValue('#d-rtmp-url');
    await page.click('button[data-copy="d-stream-key"]');
    const streamKey = await page.evaluate(() =>
      (globalThis as unknown as { navigator: { clipboard: { readText(): Promise<string> } } }).navigator.clipboard.readText(),
    );
    expect(rtmpUrl).toBe(stored.body.result.rtmp.url);
    expect(streamKey).toBe(stored.body.result.rtmp.streamKey);
    expect(await page.getAttribute('#d-stream-key', 'type')).toBe('password');
    await shot('02-created');

    publisher = publishTestStream({ url: `${rtmpUrl}/${streamKey}`, width: 640, height: 360, fps: 30, gop: 30 });
    await textIs('#d-state', 'live', 45_000);
    await textIs('#inputs li.selected .badge', 'live');
    await playsPast('#preview', 1);
    expect(await page.getAttribute('#preview', 'data-src')).toBe(`${server.httpUrl}/${uid}/manifest/video.m3u8`);
    expect(await page.isHidden('#preview-status')).toBe(true);
    // Health fills in from the live status.
    expect(await text('#d-health')).toMatch(/h264 640×360/);
    await shot('03-live-preview');

    // Signed URLs: the preview switches to a token the console asks the API for.
    await page.click('#tabs button[data-tab=keys]');
    await page.click('#key-form button[type=submit]');
    await page.waitForSelector('#key-created:not([hidden])');
    expect(await page.locator('#keys li').count()).toBe(1);
    await shot('04-signing-key');
    await page.click('#tabs button[data-tab=inputs]');
    await page.locator('#inputs li', { hasText: 'Console demo' }).click();
    await textIs('#d-name', 'Console demo');
    await page.check('#edit-form input[name=signed]');
    await page.click('#edit-form button[type=submit]');
    await page.waitForFunction(
      (u) => {
        const src = (globalThis as unknown as Doc).document.querySelector('#preview')?.getAttribute('data-src');
        return !!src && !src.includes(u);
      },
      uid,
      opts(),
    );
    const signedSrc = (await page.getAttribute('#preview', 'data-src'))!;
    expect(new URL(signedSrc).pathname.split('/')[1]).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    await playsPast('#preview', 1);
    // The unsigned URL no longer plays.
    expect((await fetch(`${server.httpUrl}/${uid}/manifest/video.m3u8`)).status).toBe(401);
    await shot('05-signed-preview');

    // The publisher leaves: the input is no longer live and its recording plays (with a token).
    await publisher.stop();
    await page.waitForFunction(() => (globalThis as unknown as Doc).document.querySelector('#d-state')?.textContent !== 'live', undefined, opts(30_000));
    await page.waitForFunction(() => (globalThis as unknown as Doc).document.querySelector('#preview')?.getAttribute('data-src') === null, undefined, opts());
    expect(await previewSrc()).toBeNull();
    type Recording = { uid: string; requireSignedURLs: boolean; status: { state: string } };
    let recording: Recording | undefined;
    for (let i = 0; i < 120 && !recording; i++) {
      const videos = await server.api<{ result: Recording[] }>('GET', `/v1/live_inputs/${uid}/videos`);
      recording = videos.body.result.find((v) => v.status.state === 'ready');
      if (!recording) await new Promise((r) => setTimeout(r, 250));
    }
    expect(recording).toBeDefined();
    await page.click('#tabs button[data-tab=videos]');
    await page.waitForSelector('#videos li');
    await page.locator('#videos li', { hasText: 'ready' }).first().locator('button', { hasText: 'Play' }).click();
    await playsPast('#vod', 1);
    // The broadcast began unsigned, and its recording keeps the policy it started with.
    expect(recording!.requireSignedURLs).toBe(false);
    expect(await page.getAttribute('#vod', 'data-src')).toBe(`${server.httpUrl}/${recording!.uid}/manifest/video.m3u8`);
    await shot('06-recording');

    // Webhooks: no webhook yet; a loopback target is refused (SSRF guard) with its reason shown;
    // a public one is saved and its signing secret shown; Remove deletes it.
    await page.click('#tabs button[data-tab=webhooks]');
    await page.waitForSelector('#webhook-form:not([hidden])');
    expect(await page.isHidden('#webhook-missing')).toBe(true);
    await page.fill('#webhook-form input[name=url]', 'http://127.0.0.1:9/hook');
    await page.click('#webhook-form button[type=submit]');
    await page.waitForSelector('#notice.error:not([hidden])');
    expect(await page.textContent('#notice')).toMatch(/127\.0\.0\.1 resolves to/);
    expect((await server.api('GET', '/v1/webhook')).status).toBe(404);
    await page.fill('#webhook-form input[name=url]', 'https://93.184.216.34/tributary');
    await page.click('#webhook-form button[type=submit]');
    await expect.poll(() => page.inputValue('#webhook-secret'), { timeout: 15_000 }).toHaveLength(64);
    const hook = await server.api<{ result: { notificationUrl: string; secret: string } }>('GET', '/v1/webhook');
    expect(hook.body.result.notificationUrl).toBe('https://93.184.216.34/tributary');
    expect(await page.inputValue('#webhook-secret')).toBe(hook.body.result.secret);
    await shot('07-webhooks');
    await page.click('#webhook-delete');
    await expect.poll(async () => (await server.api('GET', '/v1/webhook')).status).toBe(404);

    // Delete the input from the console.
    await page.click('#tabs button[data-tab=inputs]');
    await page.locator('#inputs li', { hasText: 'Console demo' }).click();
    await textIs('#d-name', 'Console demo');
    await page.click('#d-delete');
    await page.waitForFunction(() => (globalThis as unknown as Doc).document.querySelectorAll('#inputs li').length === 1, undefined, opts());
    expect((await server.api('GET', `/v1/live_inputs/${uid}`)).status).toBe(404);
  });

  it('serves only its own files, and the server keeps serving everyone else', async () => {
    for (const p of ['/console/nope.js', '/console/..%2fconsole-plugin.ts', '/console/index.html', '/console/%00']) {
      const res = await fetch(`${server.httpUrl}${p}`);
      expect(res.status, p).toBeGreaterThanOrEqual(400);
      expect(res.status, p).toBeLessThan(500);
    }
    const js = await fetch(`${server.httpUrl}/console/console.js`);
    expect(js.headers.get('content-type')).toMatch(/^text\/javascript/);
    expect((await server.api('GET', '/v1/live_inputs')).status).toBe(200);
  });
});
