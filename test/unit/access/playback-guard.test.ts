import { randomBytes } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWTPayload } from 'jose';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { GeoIp } from '../../../src/access/geoip.ts';
import { PlaybackGuard, type PlaybackPolicy } from '../../../src/access/playback-guard.ts';
import { TokenVerifier } from '../../../src/access/tokens.ts';
import type { SigningKeyRecord } from '../../../src/state/signing-key-repo.ts';

const PUBLIC_UID = '1'.repeat(32);
const PRIVATE_UID = '2'.repeat(32);
const EMBED_UID = '3'.repeat(32);
const MISSING_UID = '4'.repeat(32);

let kid: string;
let privateKey: CryptoKey;
let record: SigningKeyRecord;
let geoip: GeoIp;
let policyCalls: string[];
let guard: PlaybackGuard;

const policies: Record<string, PlaybackPolicy> = {
  [PUBLIC_UID]: { requireSignedURLs: false, allowedOrigins: [] },
  [PRIVATE_UID]: { requireSignedURLs: true, allowedOrigins: [] },
  [EMBED_UID]: { requireSignedURLs: false, allowedOrigins: ['*.example.com'] },
};

beforeAll(async () => {
  kid = randomBytes(16).toString('hex');
  const pair = await generateKeyPair('ES256', { extractable: true });
  privateKey = pair.privateKey;
  record = { id: kid, algorithm: 'ES256', created: '', publicJwk: { ...(await exportJWK(pair.publicKey)), kid }, internal: false };
  geoip = await GeoIp.open();
});

beforeEach(async () => {
  policyCalls = [];
  const tokens = new TokenVerifier({
    keys: { loadAll: async () => [record], watch: async () => ({ close: async () => {} }) },
  });
  await tokens.start();
  guard = new PlaybackGuard({
    tokens,
    geoip,
    trustedProxies: ['10.0.0.0/8'],
    countryHeader: 'CF-IPCountry',
    policyOf: async (uid) => {
      policyCalls.push(uid);
      return policies[uid];
    },
  });
});

const tokenFor = (sub: string, extra: JWTPayload = {}) =>
  new SignJWT({ sub, ...extra })
    .setProtectedHeader({ alg: 'ES256', kid })
    .setIssuedAt()
    .setExpirationTime('1h')
    .sign(privateKey);

const req = (pathId: string, more: Partial<Parameters<PlaybackGuard['check']>[0]> = {}) => ({
  pathId,
  remoteAddress: '8.8.8.8',
  headers: {},
  ...more,
});

describe('PlaybackGuard', () => {
  it('a public uid plays without a token', async () => {
    expect(await guard.check(req(PUBLIC_UID))).toEqual({ ok: true, uid: PUBLIC_UID, originRestricted: false, mayDownload: true });
  });

  it('the MP4 download of a signed asset needs downloadable: true; a public one needs nothing', async () => {
    expect(await guard.check(req(await tokenFor(PRIVATE_UID, { downloadable: true })))).toMatchObject({ ok: true, mayDownload: true });
    expect(await guard.check(req(await tokenFor(PRIVATE_UID, { downloadable: false })))).toMatchObject({ ok: true, mayDownload: false });
    expect(await guard.check(req(await tokenFor(PRIVATE_UID)))).toMatchObject({ ok: true, mayDownload: false });
    expect(await guard.check(req(await tokenFor(PUBLIC_UID)))).toMatchObject({ ok: true, mayDownload: true });
  });

  it('a uid that requires signed URLs → 401 TOKEN_REQUIRED', async () => {
    expect(await guard.check(req(PRIVATE_UID))).toMatchObject({ ok: false, status: 401, code: 'TOKEN_REQUIRED' });
  });

  it('a token in the path stands for its uid', async () => {
    const token = await tokenFor(PRIVATE_UID, { downloadable: true });
    const r = await guard.check(req(token));
    expect(r).toMatchObject({ ok: true, uid: PRIVATE_UID, token, claims: { sub: PRIVATE_UID, downloadable: true } });
  });

  it('?token= works on a uid path, and must be for that uid', async () => {
    expect(await guard.check(req(PRIVATE_UID, { queryToken: await tokenFor(PRIVATE_UID) }))).toMatchObject({ ok: true });
    expect(await guard.check(req(PRIVATE_UID, { queryToken: await tokenFor(PUBLIC_UID) }))).toMatchObject({
      ok: false,
      status: 403,
      code: 'TOKEN_WRONG_SUBJECT',
    });
  });

  it('a bad token → 403 with its reason', async () => {
    const token = await tokenFor(PRIVATE_UID);
    expect(await guard.check(req(`${token.slice(0, -4)}AAAA`))).toMatchObject({ status: 403, code: 'TOKEN_SIGNATURE_INVALID' });
  });

  it('unknown uids and non-token paths → 404', async () => {
    expect(await guard.check(req(MISSING_UID))).toMatchObject({ status: 404, code: 'NOT_FOUND' });
    expect(await guard.check(req('favicon'))).toMatchObject({ status: 404, code: 'NOT_FOUND' });
  });

  it('applies ip rules to the client address behind a trusted proxy, not to a spoofed XFF', async () => {
    const token = await tokenFor(PRIVATE_UID, {
      accessRules: [
        { type: 'ip.src', action: 'allow', ip: ['198.51.100.0/24'] },
        { type: 'any', action: 'block' },
      ],
    });
    const viaProxy = { remoteAddress: '10.0.0.5', headers: { 'x-forwarded-for': '198.51.100.20' } };
    expect(await guard.check(req(token, viaProxy))).toMatchObject({ ok: true });
    const spoofed = { remoteAddress: '203.0.113.1', headers: { 'x-forwarded-for': '198.51.100.20' } };
    expect(await guard.check(req(token, spoofed))).toMatchObject({ status: 403, code: 'ACCESS_RULE_BLOCKED' });
  });

  it('applies country rules from GeoIP, from a trusted CDN header, and fails closed when unknown', async () => {
    const token = await tokenFor(PRIVATE_UID, {
      accessRules: [
        { type: 'ip.geoip.country', action: 'allow', country: ['US'] },
        { type: 'any', action: 'block' },
      ],
    });
    expect(await guard.check(req(token, { remoteAddress: '8.8.8.8' }))).toMatchObject({ ok: true });
    expect(await guard.check(req(token, { remoteAddress: '193.0.14.129' }))).toMatchObject({ code: 'ACCESS_RULE_BLOCKED' });
    const cdn = { remoteAddress: '10.0.0.5', headers: { 'x-forwarded-for': '193.0.14.129', 'cf-ipcountry': 'US' } };
    expect(await guard.check(req(token, cdn))).toMatchObject({ ok: true });
    expect(await guard.check(req(token, { remoteAddress: '127.0.0.1' }))).toMatchObject({ status: 403, code: 'COUNTRY_UNKNOWN' });
  });

  it('allowed origins apply with and without a token; no Origin/Referer is allowed', async () => {
    expect(await guard.check(req(EMBED_UID, { headers: { origin: 'https://www.example.com' } }))).toMatchObject({ ok: true });
    expect(await guard.check(req(EMBED_UID, { headers: { referer: 'https://evil.test/page' } }))).toMatchObject({
      status: 403,
      code: 'ORIGIN_NOT_ALLOWED',
    });
    expect(await guard.check(req(await tokenFor(EMBED_UID), { headers: { origin: 'https://example.com' } }))).toMatchObject({
      code: 'ORIGIN_NOT_ALLOWED',
    });
    expect(await guard.check(req(EMBED_UID))).toMatchObject({ ok: true });
  });

  it('caches policies: the warm path does not ask again, and concurrent misses ask once', async () => {
    await Promise.all(Array.from({ length: 20 }, () => guard.check(req(PUBLIC_UID))));
    expect(policyCalls).toEqual([PUBLIC_UID]);
    const token = await tokenFor(PRIVATE_UID);
    await guard.check(req(token));
    await guard.check(req(token));
    expect(policyCalls).toEqual([PUBLIC_UID, PRIVATE_UID]);
    guard.invalidate(PUBLIC_UID);
    await guard.check(req(PUBLIC_UID));
    expect(policyCalls).toEqual([PUBLIC_UID, PRIVATE_UID, PUBLIC_UID]);
  });

  it('while the policy store hangs or fails, a known asset plays under its last policy; an unknown one still waits', async () => {
    const tokens = new TokenVerifier({ keys: { loadAll: async () => [record], watch: async () => ({ close: async () => {} }) } });
    await tokens.start();
    let mode: 'ok' | 'hang' | 'fail' = 'ok';
    const hung: Array<() => void> = [];
    const g = new PlaybackGuard({
      tokens,
      trustedProxies: [],
      policyCacheMs: 1,
      staleAfterMs: 20,
      policyOf: async (uid) => {
        if (mode === 'hang') await new Promise<void>((resolve) => hung.push(resolve));
        if (mode === 'fail') throw new Error('redis away');
        return policies[uid];
      },
    });
    expect(await g.check(req(PRIVATE_UID))).toMatchObject({ ok: false, code: 'TOKEN_REQUIRED' });
    await new Promise((r) => setTimeout(r, 5));
    mode = 'hang';
    // The last policy read still applies: no token, still refused; a public asset still plays.
    expect(await g.check(req(PRIVATE_UID))).toMatchObject({ ok: false, code: 'TOKEN_REQUIRED' });
    mode = 'fail';
    hung.splice(0).forEach((r) => r());
    await new Promise((r) => setTimeout(r, 5));
    expect(await g.check(req(PRIVATE_UID))).toMatchObject({ ok: false, code: 'TOKEN_REQUIRED' });
    await expect(g.check(req(PUBLIC_UID))).rejects.toThrow(/redis away/);
    // An invalidated policy is not served stale.
    mode = 'ok';
    expect(await g.check(req(PUBLIC_UID))).toMatchObject({ ok: true });
    g.invalidate(PUBLIC_UID);
    mode = 'fail';
    await expect(g.check(req(PUBLIC_UID))).rejects.toThrow(/redis away/);
    mode = 'ok';
    hung.splice(0).forEach((r) => r());
    await tokens.close();
  });
});
