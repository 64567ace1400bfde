import { generateKeyPair, importPKCS8, SignJWT } from 'jose';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publishTestStream, type TestPublisher } from '../helpers/ffmpeg-publish.ts';
import { launchChromium, openPlayer, playerStats, startPlayerPageServer, waitForPlayer } from '../helpers/hlsjs-player.ts';
import { ffprobe, parseMaster, parseMedia } from '../helpers/probe.ts';
import { createLiveInput, startServer, waitForHttp200, type TestServer } from '../helpers/server.ts';

// The README's "Signed playback" section, end to end: a private live input, a real RTMP
// publisher, ffprobe and hls.js (Chromium) playing with a token in the path; every refusal a
// user could meet, with its reason code; key revocation that stops new viewers at once and
// leaves a playing viewer alone; access rules through a trusted proxy; bad tokens that never
// hurt the server; and tokens that never reach the log.
describe('signed playback end to end', () => {
  let server: TestServer;
  let browser: Browser;
  let pages: Awaited<ReturnType<typeof startPlayerPageServer>>;
  let publisher: TestPublisher;
  let viewer: Page;
  let uid: string;
  let otherUid: string;
  let token: string;
  /** Every token this test sends: none may appear in the server's output. */
  const sent: string[] = [];

  const url = (path: string) => `${server.httpUrl}${path}`;
  const nowSec = () => Math.floor(Date.now() / 1000);
  const get = async (path: string, headers: Record<string, string> = {}) => {
    const res = await fetch(url(path), { headers, redirect: 'manual' });
    const text = await res.text();
    let code: string | undefined;
    try {
      code = (JSON.parse(text) as { errors?: Array<{ code: string }> }).errors?.[0]?.code;
    } catch {
      // not JSON (a playlist)
    }
    return { status: res.status, code, text, headers: res.headers };
  };
  const mint = async (body: Record<string, unknown> = {}, forUid = uid) => {
    const res = await server.api<{ result: { token: string } }>('POST', `/v1/live_inputs/${forUid}/token`, body);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    sent.push(res.body.result.token);
    return res.body.result.token;
  };
  const master = (id: string) => `/${id}/manifest/video.m3u8`;
  /** Waits until the viewer's currentTime has advanced by `seconds` from now. */
  const keepsPlaying = async (page: Page, seconds: number) => {
    const t0 = (await playerStats(page)).currentTime ?? 0;
    const s = await waitForPlayer(page, (st) => (st.currentTime ?? 0) >= t0 + seconds, 20_000);
    expect(s.fatal).toBeNull();
  };

  beforeAll(async () => {
    [server, browser, pages] = await Promise.all([
      startServer({
        env: {
          TRIBUTARY_ACCESS_TRUSTED_PROXIES: '["127.0.0.1/32"]',
          TRIBUTARY_ACCESS_COUNTRY_HEADER: 'CF-IPCountry',
          // One copied rendition: this test is about access, not the ladder (and 2 cores are shared).
          TRIBUTARY_TRANSCODE_MAX_RENDITIONS: '1',
        },
      }),
      launchChromium(),
      startPlayerPageServer(),
    ]);
    const input = await createLiveInput(server, { meta: { name: 'private' }, recording: { requireSignedURLs: true } });
    uid = input.uid;
    expect(input.raw).toMatchObject({ recording: { requireSignedURLs: true } });
    otherUid = (await createLiveInput(server, { meta: { name: 'other' } })).uid;
    publisher = publishTestStream({ url: `${server.rtmpBase}/${input.streamKey}`, width: 640, height: 360, fps: 30, gop: 30 });
    token = await mint();
    await waitForHttp200(url(master(token)), 30_000);
  });

  afterAll(async () => {
    await publisher?.stop();
    await browser?.close();
    await pages?.close();
    await server?.stop();
    await server?.cleanup();
  });

  it('plays with the token in the path and with ?token= (ffprobe and hls.js)', async () => {
    for (const src of [url(master(token)), url(`${master(uid)}?token=${token}`)]) {
      const probe = await ffprobe(src);
      const video = probe.streams.find((s) => s.codec_type === 'video');
      expect(video, src).toMatchObject({ codec_name: 'h264', width: 640, height: 360 });
      expect(probe.streams.some((s) => s.codec_type === 'audio' && s.codec_name === 'aac')).toBe(true);
    }

    // ?token= on the uid path is moved into the path, so relative URIs inherit it.
    const redirect = await get(`${master(uid)}?token=${token}&x=1`);
    expect(redirect.status).toBe(302);
    expect(redirect.headers.get('location')).toBe(`/${token}/manifest/video.m3u8?x=1`);

    const viaQuery = await openPlayer(browser, pages.url, url(`${master(uid)}?token=${token}`));
    await waitForPlayer(viaQuery, (s) => s.state === 'playing' && (s.currentTime ?? 0) > 1, 30_000);
    await viaQuery.close();

    viewer = await openPlayer(browser, pages.url, url(master(token)));
    await waitForPlayer(viewer, (s) => s.state === 'playing' && (s.currentTime ?? 0) > 1, 30_000);
  });

  it('refuses every URL of the private input without a token, parts and segments included', async () => {
    const variants = parseMaster((await get(master(token))).text);
    const mediaPath = `/${token}/manifest/${variants[0]!.uri}`;
    const media = parseMedia((await get(mediaPath)).text);
    const segment = media.segments.at(-1)!;
    const rendition = variants[0]!.uri.split('/')[0]!;
    // Positive control: the same files with the token.
    expect((await get(`/${token}/manifest/${rendition}/${segment}`)).status).toBe(200);

    for (const path of [master(uid), `/${uid}/manifest/${variants[0]!.uri}`, `/${uid}/manifest/${rendition}/${segment}`, `/${uid}/iframe`]) {
      const res = await get(path);
      expect({ path, status: res.status }).toEqual({ path, status: 401 });
      if (!path.endsWith('/iframe')) expect(res.code).toBe('TOKEN_REQUIRED');
    }
  });

  it('accepts tokens signed client-side with a /v1/keys key, refuses expired, foreign and tampered ones, and revokes at once', async () => {
    const created = await server.api<{ result: { id: string; pem: string; algorithm: string } }>('POST', '/v1/keys', {});
    expect(created.status).toBe(201);
    const { id: kid, pem } = created.body.result;
    const privateKey = await importPKCS8(Buffer.from(pem, 'base64').toString('utf8'), 'RS256');
    const sign = async (sub: string, exp: number, iat = nowSec()) => {
      const t = await new SignJWT({}).setProtectedHeader({ alg: 'RS256', kid }).setSubject(sub).setIssuedAt(iat).setExpirationTime(exp).sign(privateKey);
      sent.push(t);
      return t;
    };

    const clientToken = await sign(uid, nowSec() + 3600);
    const ok = await get(master(clientToken));
    expect(ok.status).toBe(200);
    expect(ok.text).toContain('#EXT-X-STREAM-INF');

    const expired = await sign(uid, nowSec() - 600, nowSec() - 1200);
    expect(await get(master(expired))).toMatchObject({ status: 403, code: 'TOKEN_EXPIRED' });

    const foreign = await sign(otherUid, nowSec() + 3600);
    expect(await get(`${master(uid)}?token=${foreign}`)).toMatchObject({ status: 403, code: 'TOKEN_WRONG_SUBJECT' });

    // Tampered: the payload of one token with the signature of another.
    const [h, , sig] = clientToken.split('.');
    const tampered = `${h}.${foreign.split('.')[1]}.${sig}`;
    sent.push(tampered);
    expect(await get(master(tampered))).toMatchObject({ status: 403, code: 'TOKEN_SIGNATURE_INVALID' });
    const flipped = `${clientToken.slice(0, -6)}${clientToken.slice(-6, -5) === 'A' ? 'B' : 'A'}${clientToken.slice(-5)}`;
    sent.push(flipped);
    expect((await get(master(flipped))).status).toBe(403);

    // Revocation: the key's tokens stop at once; the viewer with the server's token plays on.
    expect((await server.api('DELETE', `/v1/keys/${kid}`)).status).toBe(200);
    expect(await get(master(clientToken))).toMatchObject({ status: 403, code: 'TOKEN_KID_UNKNOWN' });
    await keepsPlaying(viewer, 3);
  });

  it('applies access rules to the viewer behind a trusted proxy: X-Forwarded-For, CF-IPCountry, ip.src', async () => {
    const onlyNL = await mint({
      accessRules: [
        { type: 'ip.geoip.country', action: 'allow', country: ['NL'] },
        { type: 'any', action: 'block' },
      ],
    });
    // 127.0.0.1 is a trusted proxy: X-Forwarded-For names the viewer (DB-IP: 193.0.14.129 is NL).
    expect((await get(master(onlyNL), { 'x-forwarded-for': '193.0.14.129' })).status).toBe(200);
    expect(await get(master(onlyNL), { 'x-forwarded-for': '8.8.8.8' })).toMatchObject({ status: 403, code: 'ACCESS_RULE_BLOCKED' });
    // A client-written hop to the left of the real one is not believed.
    expect((await get(master(onlyNL), { 'x-forwarded-for': '193.0.14.129, 8.8.8.8' })).status).toBe(403);
    // The CDN's country header, from a trusted proxy.
    expect((await get(master(onlyNL), { 'cf-ipcountry': 'NL' })).status).toBe(200);
    expect(await get(master(onlyNL), { 'cf-ipcountry': 'US' })).toMatchObject({ status: 403, code: 'ACCESS_RULE_BLOCKED' });
    // No country at all for a loopback viewer: fail closed.
    expect(await get(master(onlyNL))).toMatchObject({ status: 403, code: 'COUNTRY_UNKNOWN' });

    const onlyLoopback = await mint({ accessRules: [{ type: 'ip.src', action: 'allow', ip: ['127.0.0.0/8'] }, { type: 'any', action: 'block' }] });
    expect((await get(master(onlyLoopback))).status).toBe(200);
    expect(await get(master(onlyLoopback), { 'x-forwarded-for': '8.8.8.8' })).toMatchObject({ status: 403, code: 'ACCESS_RULE_BLOCKED' });
    const notLoopback = await mint({ accessRules: [{ type: 'ip.src', action: 'block', ip: ['127.0.0.1/32'] }] });
    expect(await get(master(notLoopback))).toMatchObject({ status: 403, code: 'ACCESS_RULE_BLOCKED' });
    expect((await get(master(notLoopback), { 'x-forwarded-for': '193.0.14.129' })).status).toBe(200);
  });

  it('refuses malformed tokens and bad signing requests with clear errors, and keeps serving', async () => {
    const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
    const [, payload, signature] = token.split('.');
    const strayKey = await generateKeyPair('ES256');
    const unknownKid = await new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', kid: 'ab'.repeat(16) })
      .setSubject(uid)
      .setIssuedAt()
      .setExpirationTime('1h')
      .sign(strayKey.privateKey);
    const cases: Array<[string, string, string | undefined]> = [
      ['bad base64 header', `not-base64-json.${payload}.${signature}`, 'TOKEN_MALFORMED'],
      ['alg none', `${b64({ alg: 'none', kid: 'ab'.repeat(16) })}.${payload}.`, 'TOKEN_ALG_NOT_ALLOWED'],
      ['nested header', `${b64(`{"alg":"ES256","x":${'['.repeat(200)}${']'.repeat(200)}}`)}.${payload}.${signature}`, 'TOKEN_MALFORMED'],
      ['JSON bomb header', `${b64(`{"alg":"ES256","x":${'{"a":'.repeat(1200)}1${'}'.repeat(1200)}}`)}.${payload}.${signature}`, undefined],
      ['unknown kid', unknownKid, 'TOKEN_KID_UNKNOWN'],
      ['100 kB token', `${b64({ alg: 'ES256' })}.${'A'.repeat(100_000)}.${signature}`, undefined],
    ];
    for (const [name, bad, code] of cases) {
      sent.push(bad);
      const res = await get(master(bad));
      expect(res.status, name).toBeGreaterThanOrEqual(403);
      expect(res.status, name).toBeLessThan(500);
      if (code) expect({ name, code: res.code }).toEqual({ name, code });
    }

    const badRequests: Array<[Record<string, unknown>, RegExp]> = [
      [{ accessRules: [{ type: 'ip.src', action: 'allow', ip: ['10.0.0.0/33'] }] }, /accessRules\[0\]\.ip\[0\] "10\.0\.0\.0\/33" is not a valid/],
      [{ accessRules: [{ type: 'ip.geoip.country', action: 'block', country: ['uk'] }] }, /country\[0\] "uk" is not an ISO 3166-1 alpha-2/],
      [{ accessRules: Array.from({ length: 6 }, () => ({ type: 'any', action: 'allow' })) }, /(at most 5 rules|more than 5 items)/],
      [{ exp: nowSec() + 25 * 3600 }, /at most 24 hours/],
    ];
    for (const [body, message] of badRequests) {
      const res = await server.api<{ errors: Array<{ code: string; message: string }> }>('POST', `/v1/live_inputs/${uid}/token`, body);
      expect(res.status, JSON.stringify(body).slice(0, 80)).toBe(400);
      expect(res.body.errors[0]!.message).toMatch(message);
    }

    expect((await get('/healthz')).status).toBe(200);
    await keepsPlaying(viewer, 2);
  });

  it('limits playback to allowed origins, reflecting the checked origin in CORS', async () => {
    // The viewer's page is on another origin (127.0.0.1:other port): it is refused from here on.
    await viewer.close();
    const put = await server.api('PUT', `/v1/live_inputs/${uid}`, { recording: { allowedOrigins: ['*.example.com'] } });
    expect(put.status).toBe(200);

    const allowed = await get(master(token), { origin: 'https://a.example.com' });
    expect(allowed.status).toBe(200);
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://a.example.com');
    expect(await get(master(token), { origin: 'https://example.com' })).toMatchObject({ status: 403, code: 'ORIGIN_NOT_ALLOWED' });
    expect(await get(master(token), { origin: 'https://evil.test' })).toMatchObject({ status: 403, code: 'ORIGIN_NOT_ALLOWED' });
    expect((await get(master(token), { referer: 'https://evil.test/page' })).status).toBe(403);
    // The embed page says the same to browsers: only those sites may frame it.
    const page = await get(`/${token}/iframe`, { referer: 'https://a.example.com/live' });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("frame-ancestors 'self' http://*.example.com:* https://*.example.com:*");
  });

  it('never writes a token to the log', () => {
    expect(sent.length).toBeGreaterThan(10);
    const output = server.output();
    for (const t of sent) {
      expect(output.includes(t)).toBe(false);
      // Nor its signature alone (a log line could cut a token short).
      const sig = t.split('.')[2];
      if (sig && sig.length > 20) expect(output.includes(sig)).toBe(false);
    }
  });
});
