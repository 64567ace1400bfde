import http from 'node:http';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser, type BrowserServer, type Page } from 'playwright-core';
import { CHROMIUM_ARGS } from './hlsjs-player.ts';

const PAGE = readFileSync(path.join(import.meta.dirname, '..', 'fixtures', 'whip', 'publish.html'));

export interface WhipPageState {
  status: 'starting' | 'publishing' | 'failed' | 'stopped';
  http: number;
  location: string | null;
  etag: string | null;
  connection: string;
  error: string | null;
  postMs: number | null;
}

/**
 * A publishing browser of its own (so a test can kill it without a goodbye): Debian's Chromium
 * with the fake camera and microphone, serving the WHIP publish page from its own origin.
 */
export interface BrowserPublisher {
  page: Page;
  server: BrowserServer;
  state(): Promise<WhipPageState>;
  /** The browser process, for SIGKILL. */
  pid: number | undefined;
  close(): Promise<void>;
}

export async function publishFromBrowser(whipUrl: string, streamKey: string, codec: 'H264' | 'VP8' | 'VP9'): Promise<BrowserPublisher> {
  const pages = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(PAGE));
  await new Promise<void>((resolve) => pages.listen(0, '127.0.0.1', resolve));
  const { port } = pages.address() as AddressInfo;
  const server = await chromium.launchServer({
    executablePath: '/usr/bin/chromium',
    args: [...CHROMIUM_ARGS, '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream'],
  });
  const browser: Browser = await chromium.connect(server.wsEndpoint());
  const page = await browser.newPage();
  const q = new URLSearchParams({ url: whipUrl, key: streamKey, codec });
  await page.goto(`http://127.0.0.1:${port}/publish.html?${q}`);
  const state = () => page.evaluate(() => (globalThis as unknown as { whip: WhipPageState }).whip);
  return {
    page,
    server,
    state,
    pid: server.process().pid,
    async close() {
      await browser.close().catch(() => undefined);
      await server.close().catch(() => undefined);
      await new Promise<void>((resolve) => pages.close(() => resolve()));
    },
  };
}

/** Polls the page (event-free by nature) until the publisher is connected or has failed. */
export async function waitForPublishing(p: BrowserPublisher, timeoutMs = 30_000): Promise<WhipPageState> {
  const deadline = Date.now() + timeoutMs;
  let last: WhipPageState | undefined;
  while (Date.now() < deadline) {
    last = await p.state();
    if (last.status === 'failed') throw new Error(`browser publish failed: ${last.error}`);
    if (last.status === 'publishing' && last.connection === 'connected') return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`browser did not connect: ${JSON.stringify(last)}`);
}
