import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * `Webhook-Signature: time=<unix seconds>,sig1=<hex HMAC-SHA256(secret, "<time>.<raw body>")>`
 * (Cloudflare Stream's scheme). The time inside the signed text lets a receiver refuse replays.
 */

export const SIGNATURE_HEADER = 'Webhook-Signature';

export function signatureOf(secret: string, time: number, body: string | Buffer): string {
  return createHmac('sha256', secret).update(`${time}.`).update(body).digest('hex');
}

export function signatureHeader(secret: string, body: string | Buffer, time: number = Math.floor(Date.now() / 1000)): string {
  return `time=${time},sig1=${signatureOf(secret, time, body)}`;
}

export type SignatureCheck = { ok: true; time: number } | { ok: false; reason: 'malformed' | 'mismatch' | 'too_old' };

/**
 * Checks a received header against the raw body. `toleranceSeconds` bounds how old (or how far in
 * the future) `time` may be; the comparison is constant-time.
 */
export function verifySignature(
  secret: string,
  header: string | undefined,
  body: string | Buffer,
  opts: { toleranceSeconds?: number; now?: number } = {},
): SignatureCheck {
  if (!header || header.length > 512) return { ok: false, reason: 'malformed' };
  const fields = new Map<string, string>();
  for (const part of header.split(',')) {
    const eq = part.indexOf('=');
    if (eq <= 0) return { ok: false, reason: 'malformed' };
    fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  const timeText = fields.get('time');
  const sig = fields.get('sig1');
  if (!timeText || !/^\d{1,12}$/.test(timeText) || !sig || !/^[0-9a-f]{64}$/.test(sig)) return { ok: false, reason: 'malformed' };
  const time = Number(timeText);
  const expected = Buffer.from(signatureOf(secret, time, body), 'hex');
  if (!timingSafeEqual(expected, Buffer.from(sig, 'hex'))) return { ok: false, reason: 'mismatch' };
  const now = opts.now ?? Math.floor(Date.now() / 1000);
  if (Math.abs(now - time) > (opts.toleranceSeconds ?? 300)) return { ok: false, reason: 'too_old' };
  return { ok: true, time };
}
