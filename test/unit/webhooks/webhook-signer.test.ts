import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { signatureHeader, verifySignature } from '../../../src/webhooks/webhook-signer.ts';

const SECRET = 'a'.repeat(64);
const BODY = '{"id":"e1","data":{"event_type":"live_input.connected"}}';

describe('webhook signature', () => {
  it('is HMAC-SHA256(secret, time + "." + body) in hex, as a receiver computes it independently', () => {
    const header = signatureHeader(SECRET, BODY, 1_700_000_000);
    const expected = createHmac('sha256', SECRET).update(`1700000000.${BODY}`).digest('hex');
    expect(header).toBe(`time=1700000000,sig1=${expected}`);
  });

  it('verifies its own signature within the tolerance', () => {
    const header = signatureHeader(SECRET, BODY, 1_700_000_000);
    expect(verifySignature(SECRET, header, BODY, { now: 1_700_000_100 })).toEqual({ ok: true, time: 1_700_000_000 });
  });

  it.each([
    ['another secret', (h: string) => ({ secret: 'b'.repeat(64), header: h, body: BODY })],
    ['a changed body', (h: string) => ({ secret: SECRET, header: h, body: BODY.replace('connected', 'disconnected') })],
    ['a changed time', (h: string) => ({ secret: SECRET, header: h.replace('time=1700000000', 'time=1700000001'), body: BODY })],
  ])('refuses %s', (_name, variant) => {
    const v = variant(signatureHeader(SECRET, BODY, 1_700_000_000));
    expect(verifySignature(v.secret, v.header, v.body, { now: 1_700_000_000 })).toEqual({ ok: false, reason: 'mismatch' });
  });

  it('refuses a replay older than the tolerance', () => {
    const header = signatureHeader(SECRET, BODY, 1_700_000_000);
    expect(verifySignature(SECRET, header, BODY, { now: 1_700_000_000 + 301 })).toEqual({ ok: false, reason: 'too_old' });
  });

  it.each([undefined, '', 'garbage', 'time=abc,sig1=00', 'time=1,sig1=xyz', 'sig1=' + 'a'.repeat(64), `time=1,sig1=${'a'.repeat(63)}`, 'x'.repeat(600)])(
    'refuses the malformed header %j',
    (header) => {
      expect(verifySignature(SECRET, header, BODY)).toEqual({ ok: false, reason: 'malformed' });
    },
  );
});
