import { Writable } from 'node:stream';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import { importJWK, importPKCS8, SignJWT, type JWK } from 'jose';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TokenSigner } from '../../src/access/token-signer.ts';
import { TokenVerifier } from '../../src/access/tokens.ts';
import { apiPlugin } from '../../src/api/api-plugin.ts';
import { frameworkErrors, registerErrorHandling } from '../../src/api/errors.ts';
import { ApiKeyStore } from '../../src/state/api-key-store.ts';
import { createRedisKeys } from '../../src/state/keys.ts';
import { LiveInputRepository } from '../../src/state/live-input-repo.ts';
import { createRedis } from '../../src/state/redis-client.ts';
import { SigningKeyRepository } from '../../src/state/signing-key-repo.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { startTestRedis, type TestRedis } from '../helpers/redis.ts';

const keys = createRedisKeys('acc:');
const KNOWN_VIDEO = 'f'.repeat(32);

let t: TestRedis;
let redisB: Redis;
let app: FastifyInstance;
let apiKey: string;
let liveUid: string;
// Node A serves the API; node B is another origin sharing the same Redis.
let repoA: SigningKeyRepository;
let verifierA: TokenVerifier;
let verifierB: TokenVerifier;
const droppedOnB: string[] = [];
const dropWaiters = new Map<string, () => void>();
const logLines: string[] = [];

const auth = () => ({ authorization: `Bearer ${apiKey}` });
const nowSec = () => Math.floor(Date.now() / 1000);

/** Resolves when node B has dropped `kid` (the pub/sub message arrived), or at once if it has. */
function droppedOnNodeB(kid: string): Promise<void> {
  if (droppedOnB.includes(kid)) return Promise.resolve();
  return new Promise((resolve) => dropWaiters.set(kid, resolve));
}

beforeAll(async () => {
  t = await startTestRedis();
  redisB = createRedis({ path: t.path }, silentLogger());
  const liveInputs = new LiveInputRepository({ redis: t.redis, keys });
  const apiKeys = new ApiKeyStore({ redis: t.redis, keys });
  apiKey = (await apiKeys.ensureInitialKey()).key!;
  liveUid = (await liveInputs.create()).uid;

  repoA = new SigningKeyRepository({ redis: t.redis, keys });
  const repoB = new SigningKeyRepository({ redis: redisB, keys });
  verifierA = new TokenVerifier({ keys: repoA, unknownKidReloadMs: 0 });
  verifierB = new TokenVerifier({
    keys: repoB,
    unknownKidReloadMs: 0,
    onKeyDropped: (kid) => {
      droppedOnB.push(kid);
      dropWaiters.get(kid)?.();
    },
  });
  await Promise.all([verifierA.start(), verifierB.start()]);

  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logLines.push(chunk.toString('utf8'));
      cb();
    },
  });
  app = Fastify({ loggerInstance: pino({ level: 'trace' }, sink) as FastifyBaseLogger, frameworkErrors });
  registerErrorHandling(app);
  await app.register(apiPlugin, {
    prefix: '/v1',
    liveInputs,
    apiKeys,
    publicUrls: { rtmp: 'rtmp://ingest.test/live', playbackBase: 'https://video.test' },
    signingKeys: repoA,
    tokens: { signer: new TokenSigner({ keys: repoA }), videoExists: async (uid) => uid === KNOWN_VIDEO },
  });
  await app.ready();
});

afterAll(async () => {
  await app?.close();
  await verifierA?.close();
  await verifierB?.close();
  redisB?.disconnect();
  await t?.stop();
});

async function createKey(algorithm?: 'RS256' | 'ES256') {
  const res = await app.inject({
    method: 'POST',
    url: '/v1/keys',
    headers: auth(),
    ...(algorithm ? { payload: { algorithm } } : {}),
  });
  expect(res.statusCode).toBe(201);
  const r = res.json().result as { id: string; pem: string; jwk: string; algorithm: string; created: string };
  return { ...r, pemText: Buffer.from(r.pem, 'base64').toString('utf8'), jwkObj: JSON.parse(Buffer.from(r.jwk, 'base64').toString('utf8')) as JWK };
}

async function mintToken(body: Record<string, unknown> = {}, uid = liveUid) {
  return app.inject({ method: 'POST', url: `/v1/live_inputs/${uid}/token`, headers: auth(), payload: body });
}

describe('signing keys API', () => {
  it('creates an RS256 key (default) and returns pem and jwk once; only the public key is stored', async () => {
    const key = await createKey();
    expect(key.id).toMatch(/^[0-9a-f]{32}$/);
    expect(key.algorithm).toBe('RS256');
    expect(key.pemText).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(key.jwkObj).toMatchObject({ kty: 'RSA', kid: key.id, alg: 'RS256' });
    expect(key.jwkObj.d).toBeTruthy();
    const stored = JSON.stringify(await t.redis.hgetall(keys.signingKeys()));
    expect(stored).toContain(key.id);
    expect(stored).not.toContain(key.jwkObj.d);

    const list = await app.inject({ method: 'GET', url: '/v1/keys', headers: auth() });
    expect(list.statusCode).toBe(200);
    const listed = list.json().result as { id: string }[];
    expect(listed.find((k) => k.id === key.id)).toEqual({ id: key.id, algorithm: 'RS256', created: key.created });
    expect(list.body).not.toContain(key.jwkObj.d);
    // The private key never reaches the log.
    expect(logLines.join('')).not.toContain(key.jwkObj.d);
  });

  it('creates an ES256 key on request and refuses other algorithms', async () => {
    const key = await createKey('ES256');
    expect(key.jwkObj).toMatchObject({ kty: 'EC', crv: 'P-256', kid: key.id, alg: 'ES256' });
    const bad = await app.inject({ method: 'POST', url: '/v1/keys', headers: auth(), payload: { algorithm: 'HS256' } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().errors[0]).toMatchObject({ code: 'VALIDATION_FAILED' });
    expect(bad.json().errors[0].message).toContain('body.algorithm');
  });

  it('404 for revoking an unknown key, 400 for a malformed id, 401 without an API key', async () => {
    const unknown = await app.inject({ method: 'DELETE', url: `/v1/keys/${'0'.repeat(32)}`, headers: auth() });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().errors[0].code).toBe('SIGNING_KEY_NOT_FOUND');
    const malformed = await app.inject({ method: 'DELETE', url: '/v1/keys/..%2F..%2Fx', headers: auth() });
    expect(malformed.statusCode).toBe(400);
    expect((await app.inject({ method: 'GET', url: '/v1/keys' })).statusCode).toBe(401);
  });
});

describe('tokens', () => {
  it('a server-minted token verifies on both nodes; the internal key is neither listed nor revocable', async () => {
    const res = await mintToken({ downloadable: true, accessRules: [{ type: 'ip.geoip.country', action: 'allow', country: ['GB'] }] });
    expect(res.statusCode).toBe(200);
    const { token } = res.json().result as { token: string };
    for (const v of [verifierA, verifierB]) {
      const r = await v.verify(token, liveUid);
      expect(r).toMatchObject({ ok: true, claims: { sub: liveUid, downloadable: true } });
      expect(r.ok && r.claims.exp - nowSec()).toBeGreaterThan(3500); // default 1 h
    }
    const internal = await repoA.internalKey();
    const listed = (await app.inject({ method: 'GET', url: '/v1/keys', headers: auth() })).json().result as { id: string }[];
    expect(listed.map((k) => k.id)).not.toContain(internal.id);
    const del = await app.inject({ method: 'DELETE', url: `/v1/keys/${internal.id}`, headers: auth() });
    expect(del.statusCode).toBe(404);
    expect((await verifierA.verify(token, liveUid)).ok).toBe(true);
  });

  it('404 for an unknown live input or video; videos use the videoExists callback', async () => {
    const missing = await mintToken({}, '0'.repeat(32));
    expect(missing.statusCode).toBe(404);
    expect(missing.json().errors[0].code).toBe('LIVE_INPUT_NOT_FOUND');
    const noVideo = await app.inject({ method: 'POST', url: `/v1/videos/${'0'.repeat(32)}/token`, headers: auth() });
    expect(noVideo.statusCode).toBe(404);
    expect(noVideo.json().errors[0].code).toBe('VIDEO_NOT_FOUND');
    const video = await app.inject({ method: 'POST', url: `/v1/videos/${KNOWN_VIDEO}/token`, headers: auth() });
    expect(video.statusCode).toBe(200);
    expect((await verifierB.verify(video.json().result.token, KNOWN_VIDEO)).ok).toBe(true);
  });

  it('tokens minted client-side with plain jose from the returned pem and jwk verify on both nodes', async () => {
    for (const algorithm of ['RS256', 'ES256'] as const) {
      const key = await createKey(algorithm);
      const fromPem = await importPKCS8(key.pemText, algorithm);
      const fromJwk = await importJWK(key.jwkObj, algorithm);
      for (const privateKey of [fromPem, fromJwk]) {
        const token = await new SignJWT({ sub: liveUid, accessRules: [{ type: 'any', action: 'allow' }] })
          .setProtectedHeader({ alg: algorithm, kid: key.id })
          .setExpirationTime('2h')
          .sign(privateKey);
        expect((await verifierA.verify(token, liveUid)).ok, `${algorithm} on A`).toBe(true);
        expect((await verifierB.verify(token, liveUid)).ok, `${algorithm} on B`).toBe(true);
      }
    }
  });

  it('DELETE /v1/keys/{id}: a cached token of that kid fails at once, here and on the other node', async () => {
    const key = await createKey();
    const privateKey = await importPKCS8(key.pemText, 'RS256');
    const token = await new SignJWT({ sub: liveUid }).setProtectedHeader({ alg: 'RS256', kid: key.id }).setExpirationTime('1h').sign(privateKey);
    expect((await verifierA.verify(token, liveUid)).ok).toBe(true);
    expect((await verifierB.verify(token, liveUid)).ok).toBe(true);
    expect(verifierA.cached(token)).toBeDefined();
    expect(verifierB.cached(token)).toBeDefined();

    const onB = droppedOnNodeB(key.id);
    const del = await app.inject({ method: 'DELETE', url: `/v1/keys/${key.id}`, headers: auth() });
    expect(del.statusCode).toBe(200);
    expect(del.json()).toEqual({ result: null, success: true, errors: [], messages: [] });
    // Node A (the one that served the DELETE) dropped it before answering.
    expect(verifierA.cached(token)).toBeUndefined();
    expect(await verifierA.verify(token, liveUid)).toMatchObject({ ok: false, code: 'TOKEN_KID_UNKNOWN' });
    // Node B drops it when the pub/sub message arrives.
    await onB;
    expect(verifierB.cached(token)).toBeUndefined();
    expect(await verifierB.verify(token, liveUid)).toMatchObject({ ok: false, code: 'TOKEN_KID_UNKNOWN' });

    const listed = (await app.inject({ method: 'GET', url: '/v1/keys', headers: auth() })).json().result as { id: string }[];
    expect(listed.map((k) => k.id)).not.toContain(key.id);
    expect((await app.inject({ method: 'DELETE', url: `/v1/keys/${key.id}`, headers: auth() })).statusCode).toBe(404);
  });

  it('a node that missed the message drops the key on its periodic reload', async () => {
    const key = await createKey('ES256');
    const token = await new SignJWT({ sub: liveUid })
      .setProtectedHeader({ alg: 'ES256', kid: key.id })
      .setExpirationTime('1h')
      .sign(await importJWK(key.jwkObj, 'ES256'));
    expect((await verifierB.verify(token, liveUid)).ok).toBe(true);
    await t.redis.hdel(keys.signingKeys(), key.id); // deleted without a message
    await verifierB.reload();
    expect(await verifierB.verify(token, liveUid)).toMatchObject({ ok: false, code: 'TOKEN_KID_UNKNOWN' });
  });
});

describe('internal signing key', () => {
  it('two nodes creating it at once end up with the same key', async () => {
    const fresh = createRedisKeys('acc-internal:');
    const a = new SigningKeyRepository({ redis: t.redis, keys: fresh });
    const b = new SigningKeyRepository({ redis: redisB, keys: fresh });
    const [ka, kb] = await Promise.all([a.internalKey(), b.internalKey()]);
    expect(ka.id).toBe(kb.id);
    expect(ka.privateJwk).toEqual(kb.privateJwk);
    const all = await a.loadAll();
    expect(all).toHaveLength(1);
    expect(all[0]).toMatchObject({ id: ka.id, internal: true });
    expect(all[0]?.publicJwk).not.toHaveProperty('d');
    expect(await a.list()).toEqual([]);
  });
});

describe('bad signing requests get a clear 400', () => {
  const cases: [string, Record<string, unknown>, string, RegExp][] = [
    ['invalid CIDR', { accessRules: [{ type: 'ip.src', action: 'allow', ip: ['10.0.0.0/33'] }] }, 'ACCESS_RULES_INVALID', /accessRules\[0\]\.ip\[0\] "10\.0\.0\.0\/33" is not a valid IPv4 or IPv6 CIDR/],
    ['lowercase country', { accessRules: [{ type: 'ip.geoip.country', action: 'block', country: ['us'] }] }, 'ACCESS_RULES_INVALID', /"us" is not an ISO 3166-1 alpha-2 country code/],
    ['unassigned country', { accessRules: [{ type: 'ip.geoip.country', action: 'block', country: ['ZZ'] }] }, 'ACCESS_RULES_INVALID', /"ZZ" is not an ISO/],
    ['unknown rule type', { accessRules: [{ type: 'ip.asn', action: 'block' }] }, 'ACCESS_RULES_INVALID', /type must be one of any, ip\.src, ip\.geoip\.country/],
    ['unknown action', { accessRules: [{ type: 'any', action: 'deny' }] }, 'ACCESS_RULES_INVALID', /action must be allow or block/],
    ['more than 5 rules', { accessRules: Array.from({ length: 6 }, () => ({ type: 'any', action: 'allow' })) }, 'VALIDATION_FAILED', /body\.accessRules must .*5/],
    ['exp more than 24 h ahead', { exp: nowSec() + 86_400 + 120 }, 'TOKEN_EXP_INVALID', /at most 24 hours/],
    ['exp in the past', { exp: nowSec() - 10 }, 'TOKEN_EXP_INVALID', /future/],
    ['nbf after exp', { exp: nowSec() + 600, nbf: nowSec() + 700 }, 'TOKEN_EXP_INVALID', /nbf/],
    ['exp not an integer', { exp: 'tomorrow' }, 'VALIDATION_FAILED', /body\.exp/],
    ['unknown field', { expires: 1 }, 'VALIDATION_FAILED', /unknown field "expires"/],
  ];
  it.each(cases)('%s', async (_name, body, code, message) => {
    const res = await mintToken(body);
    expect(res.statusCode).toBe(400);
    expect(res.json().errors[0].code).toBe(code);
    expect(res.json().errors[0].message).toMatch(message);
  });

  it('exp exactly 24 h ahead is accepted', async () => {
    expect((await mintToken({ exp: nowSec() + 86_400 })).statusCode).toBe(200);
  });
});
