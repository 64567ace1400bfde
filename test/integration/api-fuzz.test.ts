import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLiveInput, startServer, waitForHttp200, type TestServer } from '../helpers/server.ts';
import { publishTestStream } from '../helpers/ffmpeg-publish.ts';
import { parseMaster, parseMedia } from '../helpers/probe.ts';
import { mulberry32 } from '../helpers/prng.ts';
import { until } from '../helpers/until.ts';

// Random and hostile requests against every API route the OpenAPI document lists, while a stream
// is live: no 5xx, every refusal in the API's error envelope, the server alive, the stream still
// advancing and the API still working afterwards. FUZZ_CASES raises the count (scripts/fuzz.sh).
const CASES = Number(process.env.FUZZ_CASES ?? 600);
const SEED = Number(process.env.FUZZ_SEED ?? 20261124);
const CONCURRENCY = 8;
const BODY_LIMIT = 65_536;

type Rng = () => number;
const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)]!;

const HOSTILE_STRINGS = [
  '',
  ' ',
  '\u0000',
  '../../../../etc/passwd',
  '%2e%2e%2f%2e%2e%2f',
  '<script>alert(1)</script>',
  "' OR 1=1 --",
  '${jndi:ldap://x}',
  '__proto__',
  'constructor',
  '\ud800',
  '😀'.repeat(300),
  'a'.repeat(10_000),
  '-1',
  '1e309',
  'NaN',
  'null',
  '0x7fffffff',
];

function randomJson(rng: Rng, depth = 0): unknown {
  const r = rng();
  if (depth > 4 || r < 0.3) {
    return pick(rng, [
      null,
      true,
      false,
      0,
      -1,
      Number.MAX_SAFE_INTEGER,
      1e308,
      -0.5,
      Math.floor(rng() * 1e6),
      pick(rng, HOSTILE_STRINGS),
    ]);
  }
  if (r < 0.6) return Array.from({ length: Math.floor(rng() * 5) }, () => randomJson(rng, depth + 1));
  const keys = ['meta', 'enabled', 'recording', 'mode', 'name', 'uid', 'defaultCreator', 'deleteRecordingAfterDays', 'ladder',
    'requireSignedURLs', 'allowedOrigins', 'exp', 'nbf', 'accessRules', 'notificationUrl', 'url', 'streamKey', '__proto__',
    'constructor', 'prototype', pick(rng, HOSTILE_STRINGS).slice(0, 40)];
  const obj: Record<string, unknown> = {};
  for (let i = Math.floor(rng() * 6); i > 0; i--) obj[pick(rng, keys)] = randomJson(rng, depth + 1);
  return obj;
}

interface Body {
  text: string | Uint8Array | undefined;
  contentType: string | undefined;
}

function randomBody(rng: Rng): Body {
  const kind = Math.floor(rng() * 9);
  switch (kind) {
    case 0:
      return { text: undefined, contentType: undefined };
    case 1: {
      // Valid JSON, random shape (prototype-pollution keys included).
      return { text: JSON.stringify(randomJson(rng)), contentType: 'application/json' };
    }
    case 2: {
      // Truncated JSON.
      const full = JSON.stringify({ meta: { name: 'x' }, recording: { mode: 'automatic' }, enabled: true });
      return { text: full.slice(0, Math.floor(rng() * full.length)), contentType: 'application/json' };
    }
    case 3: {
      // Over the body limit.
      return { text: JSON.stringify({ meta: { name: 'x'.repeat(BODY_LIMIT + 10) } }), contentType: 'application/json' };
    }
    case 4: {
      // Binary garbage claiming to be JSON.
      const bytes = new Uint8Array(1 + Math.floor(rng() * 2048));
      for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(rng() * 256);
      return { text: bytes, contentType: 'application/json' };
    }
    case 5: {
      // Deep nesting.
      const depth = 1000 + Math.floor(rng() * 20_000);
      return { text: '['.repeat(depth) + ']'.repeat(depth), contentType: 'application/json' };
    }
    case 6:
      return { text: JSON.stringify(randomJson(rng)), contentType: pick(rng, ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/sdp', 'application/json; charset=utf-16']) };
    case 7:
      return { text: '{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}},"meta":{"name":"p"}}', contentType: 'application/json' };
    default:
      return { text: JSON.stringify(randomJson(rng)), contentType: 'application/json' };
  }
}

/** encodeURIComponent, except that lone surrogates become the (invalid UTF-8) bytes they would be. */
function enc(s: string): string {
  try {
    return encodeURIComponent(s);
  } catch {
    return [...s].map((ch) => {
      try {
        return encodeURIComponent(ch);
      } catch {
        return '%ED%A0%80';
      }
    }).join('');
  }
}

function fillPath(rng: Rng, template: string, realUid: string): string {
  return template.replace(/\{[^}]+\}/g, () => {
    const r = rng();
    if (r < 0.4) return realUid;
    if (r < 0.6) return 'f'.repeat(32);
    return enc(pick(rng, HOSTILE_STRINGS).slice(0, 3000)) || '%20';
  });
}

describe('HTTP API fuzz (random and hostile requests on every route)', () => {
  let server: TestServer;
  let publisher: ReturnType<typeof publishTestStream> | undefined;

  beforeAll(async () => {
    server = await startServer({ env: { TRIBUTARY_HTTP_BODY_LIMIT_BYTES: String(BODY_LIMIT) } });
  });
  afterAll(async () => {
    await publisher?.stop(500);
    await server?.stop();
    await server?.cleanup();
  });

  it(`answers ${CASES} random requests without a 5xx while a stream keeps playing`, async () => {
    const live = await createLiveInput(server, { meta: { name: 'canary' } });
    publisher = publishTestStream({
      url: `${server.rtmpBase}/${live.streamKey}`,
      seconds: 600,
      width: 320,
      height: 240,
      fps: 15,
      gop: 15,
      audio: true,
      realtime: true,
    });
    const masterUrl = `${server.httpUrl}/${live.uid}/manifest/video.m3u8`;
    const variants = parseMaster(await waitForHttp200(masterUrl, 30_000));
    const mediaUrl = new URL(variants[0]!.uri, masterUrl).toString();
    const before = parseMedia(await waitForHttp200(mediaUrl));

    const victim = await createLiveInput(server, { meta: { name: 'victim' } });
    const doc = (await (await fetch(`${server.httpUrl}/docs/json`)).json()) as { paths: Record<string, Record<string, unknown>> };
    const operations = Object.entries(doc.paths)
      .filter(([p]) => p.startsWith('/v1/'))
      .flatMap(([p, ops]) => Object.keys(ops).filter((m) => m !== 'parameters').map((m) => ({ path: p, method: m.toUpperCase() })));
    expect(operations.length).toBeGreaterThan(8);

    const rng = mulberry32(SEED);
    const failures: string[] = [];
    const statusCounts = new Map<number, number>();
    let next = 0;
    const worker = async () => {
      while (next < CASES) {
        const i = next++;
        const op = pick(rng, operations);
        const method = rng() < 0.85 ? op.method : pick(rng, ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD']);
        const url = fillPath(rng, op.path, victim.uid) + (rng() < 0.2 ? `?${enc(pick(rng, HOSTILE_STRINGS).slice(0, 500))}=${'x'.repeat(Math.floor(rng() * 100))}` : '');
        const body = method === 'GET' || method === 'HEAD' ? { text: undefined, contentType: undefined } : randomBody(rng);
        const auth = rng() < 0.9 ? `Bearer ${server.apiKey}` : pick(rng, ['', 'Bearer ', 'Bearer wrong', `Basic ${server.apiKey}`, `Bearer ${'k'.repeat(5000)}`]);
        try {
          const res = await fetch(`${server.httpUrl}${url}`, {
            method,
            headers: { ...(auth ? { authorization: auth } : {}), ...(body.contentType ? { 'content-type': body.contentType } : {}) },
            ...(body.text !== undefined ? { body: body.text } : {}),
          });
          const text = await res.text();
          statusCounts.set(res.status, (statusCounts.get(res.status) ?? 0) + 1);
          if (res.status >= 500) failures.push(`#${i} ${method} ${url.slice(0, 120)} → ${res.status} ${text.slice(0, 200)}`);
          else if (res.status >= 400 && method !== 'HEAD' && res.headers.get('content-type')?.includes('application/json')) {
            const parsed = JSON.parse(text) as { success?: boolean; errors?: unknown[] };
            if (parsed.success !== false || !Array.isArray(parsed.errors) || parsed.errors.length === 0) {
              failures.push(`#${i} ${method} ${url.slice(0, 120)} → ${res.status} without an error envelope: ${text.slice(0, 200)}`);
            }
          }
        } catch (error) {
          failures.push(`#${i} ${method} ${url.slice(0, 120)} → request failed: ${(error as Error).message}`);
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));

    expect(failures).toEqual([]);
    // The fuzz reached the validators, not only the auth check.
    expect(statusCounts.get(400) ?? 0).toBeGreaterThan(CASES / 20);
    expect(server.process.exitCode).toBeNull();
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();

    // Afterwards: the API works, nothing was polluted, and the stream kept advancing.
    const after = await createLiveInput(server, { meta: { name: 'after' } });
    const got = await server.api<{ result: Record<string, unknown> }>('GET', `/v1/live_inputs/${after.uid}`);
    expect(got.status).toBe(200);
    expect(got.body.result.polluted).toBeUndefined();
    const list = await server.api<{ result: { liveInputs: Array<Record<string, unknown>> } }>('GET', '/v1/live_inputs?limit=1000');
    expect(list.status).toBe(200);
    expect(list.body.result.liveInputs.length).toBeGreaterThanOrEqual(3);
    for (const input of list.body.result.liveInputs) expect(input.polluted).toBeUndefined();
    // The fuzz may take less than a segment on a quiet machine: wait (bounded) for the next one.
    const progress = (m: ReturnType<typeof parseMedia>) => m.mediaSequence + m.segments.length;
    await until('the live stream to advance after the fuzz', async () => (progress(parseMedia(await waitForHttp200(mediaUrl))) > progress(before) ? true : undefined), 20_000);
  }, Math.max(240_000, CASES * 200));
});
