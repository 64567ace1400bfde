import { randomBytes } from 'node:crypto';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type JWTPayload } from 'jose';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { TokenVerifier, type SigningKeySource } from '../../../src/access/tokens.ts';
import type { SigningAlgorithm, SigningKeyRecord } from '../../../src/state/signing-key-repo.ts';

const UID = 'a'.repeat(32);
const OTHER_UID = 'b'.repeat(32);
const T0 = 1_900_000_000; // seconds; the verifier's clock is set from this

interface TestKey {
  kid: string;
  alg: SigningAlgorithm;
  privateKey: CryptoKey;
  record: SigningKeyRecord;
  publicPem: string;
}

async function makeKey(alg: SigningAlgorithm): Promise<TestKey> {
  const kid = randomBytes(16).toString('hex');
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(publicKey);
  return {
    kid,
    alg,
    privateKey,
    publicPem: await exportSPKI(publicKey),
    record: { id: kid, algorithm: alg, created: new Date().toISOString(), publicJwk: { ...jwk, kid, alg }, internal: false },
  };
}

/** An in-memory key store standing in for Redis. */
class MemoryKeys implements SigningKeySource {
  records = new Map<string, SigningKeyRecord>();
  loads = 0;
  revoked?: (id: string) => void;
  async loadAll() {
    this.loads++;
    return [...this.records.values()];
  }
  async watch(h: { onRevoked(id: string): void }) {
    this.revoked = h.onRevoked;
    return { close: async () => {} };
  }
}

const b64 = (s: string) => Buffer.from(s).toString('base64url');

async function sign(key: TestKey, payload: JWTPayload, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ alg: key.alg, kid: key.kid, ...header }).sign(key.privateKey);
}

let rsa: TestKey;
let ec: TestKey;
let stranger: TestKey;
let source: MemoryKeys;
let clock: number;
let verifier: TokenVerifier;

beforeAll(async () => {
  [rsa, ec, stranger] = await Promise.all([makeKey('RS256'), makeKey('ES256'), makeKey('RS256')]);
});

beforeEach(async () => {
  source = new MemoryKeys();
  source.records.set(rsa.kid, rsa.record);
  source.records.set(ec.kid, ec.record);
  clock = T0 * 1000;
  verifier = new TokenVerifier({ keys: source, now: () => clock, unknownKidReloadMs: 5_000 });
  await verifier.start();
});

const good = (extra: JWTPayload = {}): JWTPayload => ({ sub: UID, iat: T0, exp: T0 + 3600, ...extra });

describe('TokenVerifier: valid tokens', () => {
  it('accepts RS256 and ES256 and returns the claims', async () => {
    for (const key of [rsa, ec]) {
      const token = await sign(key, good({ downloadable: true, accessRules: [{ type: 'any', action: 'allow' }] }));
      const r = await verifier.verify(token, UID);
      expect(r).toEqual({
        ok: true,
        claims: { sub: UID, kid: key.kid, exp: T0 + 3600, iat: T0, downloadable: true, accessRules: [{ type: 'any', action: 'allow' }] },
      });
    }
  });

  it('without an expected uid, any valid sub passes', async () => {
    expect((await verifier.verify(await sign(rsa, good()))).ok).toBe(true);
  });

  it('serves a repeat from the cache (same claims object) and never past exp', async () => {
    const token = await sign(ec, good({ exp: T0 + 10 }));
    const first = await verifier.verify(token, UID);
    const again = await verifier.verify(token, UID);
    expect(first.ok && again.ok && again.claims).toBe(first.ok && first.claims);
    expect(verifier.cached(token)).toBeDefined();
    clock = (T0 + 10) * 1000; // at exp: the cache no longer answers…
    expect(verifier.cached(token)).toBeUndefined();
    // …a fresh verification still passes within the skew…
    expect((await verifier.verify(token, UID)).ok).toBe(true);
    expect(verifier.cached(token)).toBeUndefined();
    clock = (T0 + 10 + 60) * 1000; // …and fails beyond it.
    expect(await verifier.verify(token, UID)).toMatchObject({ ok: false, code: 'TOKEN_EXPIRED' });
  });

  it('a cached token still checks the subject', async () => {
    const token = await sign(rsa, good());
    await verifier.verify(token, UID);
    expect(await verifier.verify(token, OTHER_UID)).toMatchObject({ ok: false, code: 'TOKEN_WRONG_SUBJECT' });
  });
});

describe('TokenVerifier: clock skew (60 s)', () => {
  it.each([
    ['exp 59 s ago', { exp: T0 - 59, iat: T0 - 600 }, true],
    ['exp 60 s ago', { exp: T0 - 60, iat: T0 - 600 }, 'TOKEN_EXPIRED'],
    ['exp an hour ago', { exp: T0 - 3600, iat: T0 - 7200 }, 'TOKEN_EXPIRED'],
    ['nbf 60 s ahead', { nbf: T0 + 60 }, true],
    ['nbf 61 s ahead', { nbf: T0 + 61 }, 'TOKEN_NOT_YET_VALID'],
    ['iat 60 s ahead', { iat: T0 + 60 }, true],
    ['iat 120 s ahead', { iat: T0 + 120 }, 'TOKEN_NOT_YET_VALID'],
    ['exp 24 h + 60 s ahead, no iat', { iat: undefined, exp: T0 + 86_400 + 60 }, true],
    ['exp 24 h + 61 s ahead, no iat', { iat: undefined, exp: T0 + 86_400 + 61 }, 'TOKEN_EXP_TOO_FAR'],
    ['lifetime 24 h exactly', { iat: T0 - 3600, exp: T0 - 3600 + 86_400 }, true],
    ['lifetime 24 h + 1 s', { iat: T0 - 3600, exp: T0 - 3600 + 86_401 }, 'TOKEN_EXP_TOO_FAR'],
  ] as const)('%s', async (_name, claims, expected) => {
    const r = await verifier.verify(await sign(rsa, good(claims as JWTPayload)), UID);
    if (expected === true) expect(r.ok).toBe(true);
    else expect(r).toMatchObject({ ok: false, code: expected });
  });
});

describe('TokenVerifier: every failure has its code', () => {
  it('TOKEN_WRONG_SUBJECT', async () => {
    expect(await verifier.verify(await sign(rsa, good()), OTHER_UID)).toMatchObject({ ok: false, code: 'TOKEN_WRONG_SUBJECT' });
  });

  it('TOKEN_MALFORMED for a sub that is not a uid, a missing exp, bad claims', async () => {
    const cases: JWTPayload[] = [
      good({ sub: 'not-a-uid' }),
      { sub: UID, iat: T0 },
      good({ downloadable: 'yes' }),
      good({ accessRules: [{ type: 'ip.src', action: 'allow', ip: ['300.1.1.1/8'] }] }),
      good({ accessRules: Array.from({ length: 6 }, () => ({ type: 'any', action: 'allow' })) }),
      good({ deep: JSON.parse('['.repeat(50) + ']'.repeat(50)) as unknown }),
    ];
    for (const payload of cases) {
      const r = await verifier.verify(await sign(rsa, payload));
      expect(r, JSON.stringify(payload).slice(0, 80)).toMatchObject({ ok: false, code: 'TOKEN_MALFORMED' });
    }
  });

  it('TOKEN_SIGNATURE_INVALID for a tampered payload', async () => {
    const [h, , s] = (await sign(rsa, good())).split('.');
    const forged = b64(JSON.stringify({ ...good(), sub: OTHER_UID }));
    expect(await verifier.verify(`${h}.${forged}.${s}`, OTHER_UID)).toMatchObject({ ok: false, code: 'TOKEN_SIGNATURE_INVALID' });
  });

  it('TOKEN_SIGNATURE_INVALID for a tampered signature (RS256 and ES256)', async () => {
    for (const key of [rsa, ec]) {
      const [h, p, s] = (await sign(key, good())).split('.') as [string, string, string];
      const sig = Buffer.from(s, 'base64url');
      sig[10] = (sig[10] ?? 0) ^ 0xff;
      expect(await verifier.verify(`${h}.${p}.${sig.toString('base64url')}`)).toMatchObject({ ok: false, code: 'TOKEN_SIGNATURE_INVALID' });
    }
  });

  it('TOKEN_SIGNATURE_INVALID for a token signed by another key under a known kid', async () => {
    const token = await new SignJWT(good()).setProtectedHeader({ alg: 'RS256', kid: rsa.kid }).sign(stranger.privateKey);
    expect(await verifier.verify(token)).toMatchObject({ ok: false, code: 'TOKEN_SIGNATURE_INVALID' });
  });

  it('TOKEN_ALG_NOT_ALLOWED for alg none', async () => {
    const token = `${b64(JSON.stringify({ alg: 'none', kid: rsa.kid }))}.${b64(JSON.stringify(good()))}.`;
    expect(await verifier.verify(token)).toMatchObject({ ok: false, code: 'TOKEN_ALG_NOT_ALLOWED' });
  });

  it('TOKEN_ALG_NOT_ALLOWED for HS256 keyed with the public key (the classic confusion attack)', async () => {
    const token = await new SignJWT(good())
      .setProtectedHeader({ alg: 'HS256', kid: rsa.kid })
      .sign(new TextEncoder().encode(rsa.publicPem));
    expect(await verifier.verify(token)).toMatchObject({ ok: false, code: 'TOKEN_ALG_NOT_ALLOWED' });
  });

  it('TOKEN_ALG_NOT_ALLOWED for RS384, PS256, and an ES256 header on an RSA key', async () => {
    const [, p, s] = (await sign(rsa, good())).split('.');
    for (const alg of ['RS384', 'PS256', 'EdDSA', 'ES256K', 'rs256']) {
      const token = `${b64(JSON.stringify({ alg, kid: rsa.kid }))}.${p}.${s}`;
      expect(await verifier.verify(token), alg).toMatchObject({ ok: false, code: 'TOKEN_ALG_NOT_ALLOWED' });
    }
    const mixed = await new SignJWT(good()).setProtectedHeader({ alg: 'ES256', kid: rsa.kid }).sign(ec.privateKey);
    expect(await verifier.verify(mixed)).toMatchObject({ ok: false, code: 'TOKEN_ALG_NOT_ALLOWED' });
  });

  it('TOKEN_KID_UNKNOWN for an unknown kid, reloading at most once per interval', async () => {
    const token = await sign(stranger, good());
    const loadsBefore = source.loads;
    clock += 5_000;
    expect(await verifier.verify(token)).toMatchObject({ ok: false, code: 'TOKEN_KID_UNKNOWN' });
    expect(source.loads).toBe(loadsBefore + 1);
    expect(await verifier.verify(token)).toMatchObject({ ok: false, code: 'TOKEN_KID_UNKNOWN' });
    expect(source.loads).toBe(loadsBefore + 1); // no reload storm
    // A key created on another node is found by the next allowed reload.
    source.records.set(stranger.kid, stranger.record);
    clock += 5_000;
    expect((await verifier.verify(token)).ok).toBe(true);
  });

  it('finds a key created just after a reload on its first request (waiting for the reload gap)', async () => {
    // Right after start(): the last reload was "now", yet a brand-new kid must not be refused.
    source.records.set(stranger.kid, stranger.record);
    const loadsBefore = source.loads;
    expect((await verifier.verify(await sign(stranger, good()), UID)).ok).toBe(true);
    expect(source.loads).toBe(loadsBefore + 1);
  });

  it('TOKEN_KID_UNKNOWN / TOKEN_MALFORMED for odd or missing kids', async () => {
    const odd = await new SignJWT(good()).setProtectedHeader({ alg: 'RS256', kid: '../../etc/passwd' }).sign(rsa.privateKey);
    expect(await verifier.verify(odd)).toMatchObject({ ok: false, code: 'TOKEN_KID_UNKNOWN' });
    const none = await new SignJWT(good()).setProtectedHeader({ alg: 'RS256' }).sign(rsa.privateKey);
    expect(await verifier.verify(none)).toMatchObject({ ok: false, code: 'TOKEN_MALFORMED' });
  });

  it('TOKEN_TOO_LARGE for a 100 kB token, before parsing', async () => {
    const big = `${b64(JSON.stringify({ alg: 'RS256', kid: rsa.kid }))}.${'A'.repeat(100_000)}.sig`;
    expect(await verifier.verify(big)).toMatchObject({ ok: false, code: 'TOKEN_TOO_LARGE' });
  });

  it('TOKEN_MALFORMED for hostile shapes, never an exception', async () => {
    const valid = await sign(rsa, good());
    const [, p, s] = valid.split('.');
    const hostile = [
      '',
      'abc',
      'a.b',
      'a.b.c.d',
      `${b64('{"alg":"RS256","kid":"' + rsa.kid + '","x":' + '['.repeat(300) + ']'.repeat(300) + '}')}.${p}.${s}`, // nested header bomb
      `${b64(JSON.stringify({ alg: 'RS256', kid: rsa.kid, pad: 'x'.repeat(2000) }))}.${p}.${s}`, // huge header
      `${b64(JSON.stringify({ alg: 'RS256', kid: rsa.kid, crit: ['b64'], b64: false }))}.${p}.${s}`,
      `not+base64/!.${p}.${s}`,
      `${b64('not json')}.${p}.${s}`,
      `${b64('[1,2]')}.${p}.${s}`,
      `${b64('null')}.${p}.${s}`,
      `${b64(JSON.stringify({ alg: 'RS256', kid: rsa.kid }))}.${p}.`,
      `${b64(JSON.stringify({ alg: 'RS256', kid: rsa.kid }))}.%%%.${s}`,
      `${b64(JSON.stringify({ alg: 'RS256', kid: rsa.kid }))}.${b64('{{{{')}.${s}`,
      '\u0000.\u0000.\u0000',
      '..',
    ];
    for (const t of hostile) {
      const r = await verifier.verify(t);
      expect(r.ok, t.slice(0, 60)).toBe(false);
      expect(['TOKEN_MALFORMED', 'TOKEN_SIGNATURE_INVALID'], t.slice(0, 60)).toContain(!r.ok && r.code);
    }
    // The structural cases specifically are MALFORMED.
    for (const t of hostile.slice(0, 10)) expect(await verifier.verify(t)).toMatchObject({ code: 'TOKEN_MALFORMED' });
  });
});

describe('TokenVerifier: revocation', () => {
  it('revoke() drops the key and its cached tokens at once; a stale reload cannot bring it back', async () => {
    const token = await sign(rsa, good());
    const other = await sign(ec, good());
    expect((await verifier.verify(token)).ok).toBe(true);
    expect((await verifier.verify(other)).ok).toBe(true);
    source.revoked?.(rsa.kid); // as the pub/sub message would
    expect(verifier.cached(token)).toBeUndefined();
    expect(await verifier.verify(token)).toMatchObject({ ok: false, code: 'TOKEN_KID_UNKNOWN' });
    expect(verifier.cached(other)).toBeDefined(); // other keys' tokens are untouched
    // The store still lists it (say, a reload read it just before the delete): it stays revoked.
    await verifier.reload();
    expect(await verifier.verify(token)).toMatchObject({ ok: false, code: 'TOKEN_KID_UNKNOWN' });
  });

  it('a periodic reload that finds a key gone drops it (a missed message)', async () => {
    const token = await sign(ec, good());
    expect((await verifier.verify(token)).ok).toBe(true);
    source.records.delete(ec.kid);
    await verifier.reload();
    expect(await verifier.verify(token)).toMatchObject({ ok: false, code: 'TOKEN_KID_UNKNOWN' });
  });

  it('the cache is bounded', async () => {
    const small = new TokenVerifier({ keys: source, now: () => clock, cacheSize: 3 });
    await small.start();
    for (let i = 0; i < 5; i++) expect((await small.verify(await sign(ec, good({ jti: String(i) })))).ok).toBe(true);
    expect(small.cachedTokens).toBe(3);
    await small.close();
  });
});
