import { Type, type Static } from 'typebox';
import { MAX_ACCESS_RULES, MAX_RULE_ENTRIES } from '../access/access-rules.ts';
import { SIGNING_ALGORITHMS, SIGNING_KEY_ID_PATTERN } from '../state/signing-key-repo.ts';

/** Signing keys and tokens: Cloudflare Stream's `keys` and `…/token` shapes. */

export const SigningKeyParams = Type.Object({
  id: Type.String({ pattern: SIGNING_KEY_ID_PATTERN, description: 'Signing key id: 32 lowercase hex characters' }),
});

export const SigningKeyCreate = Type.Object(
  {
    algorithm: Type.Optional(
      Type.Enum([...SIGNING_ALGORITHMS], { description: 'RS256 (RSA 2048, the default) or ES256 (P-256)' }),
    ),
  },
  { additionalProperties: false },
);
export type SigningKeyCreate = Static<typeof SigningKeyCreate>;

const Created = Type.String({ format: 'date-time' });

export const SigningKeyCreated = Type.Object({
  id: Type.String({ description: 'The key id; tokens carry it as `kid`' }),
  pem: Type.String({ description: 'Base64 of the PKCS#8 PEM private key. Shown once: store it now.' }),
  jwk: Type.String({ description: 'Base64 of the private JWK (with kid and alg). Shown once: store it now.' }),
  algorithm: Type.Enum([...SIGNING_ALGORITHMS]),
  created: Created,
});

export const SigningKeySummary = Type.Object({
  id: Type.String(),
  algorithm: Type.Enum([...SIGNING_ALGORITHMS]),
  created: Created,
});

/**
 * One access rule as the API accepts it. Deliberately loose here (strings, not enums or unions):
 * parseAccessRules() then names the exact problem — "accessRules[1].ip[0] "10.0.0.0/33" is not a
 * valid IPv4 or IPv6 CIDR" — where a union would only say that no branch matched.
 */
export const AccessRuleBody = Type.Object(
  {
    type: Type.String({ maxLength: 32, description: 'any | ip.src | ip.geoip.country' }),
    action: Type.String({ maxLength: 16, description: 'allow | block' }),
    ip: Type.Optional(
      Type.Array(Type.String({ maxLength: 64 }), { maxItems: MAX_RULE_ENTRIES, description: 'ip.src: IPv4/IPv6 CIDRs' }),
    ),
    country: Type.Optional(
      Type.Array(Type.String({ maxLength: 8 }), {
        maxItems: MAX_RULE_ENTRIES,
        description: 'ip.geoip.country: ISO 3166-1 alpha-2 codes, uppercase',
      }),
    ),
  },
  { additionalProperties: false },
);

export const TokenCreate = Type.Object(
  {
    exp: Type.Optional(
      Type.Integer({ description: 'Expiry in seconds since the epoch; default now + 1 h, at most now + 24 h' }),
    ),
    nbf: Type.Optional(Type.Integer({ description: 'Not valid before, seconds since the epoch' })),
    downloadable: Type.Optional(Type.Boolean({ description: 'Allows the MP4 download of a video' })),
    accessRules: Type.Optional(
      Type.Array(AccessRuleBody, {
        maxItems: MAX_ACCESS_RULES,
        description: 'First match wins; no match allows. At most 5.',
      }),
    ),
  },
  { additionalProperties: false },
);
export type TokenCreate = Static<typeof TokenCreate>;

export const TokenCreated = Type.Object({
  token: Type.String({ description: 'Use in place of the uid in playback URLs: /{token}/manifest/video.m3u8' }),
});
