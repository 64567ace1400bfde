import { createDecipheriv, pbkdf2 } from 'node:crypto';
import { promisify } from 'node:util';

const pbkdf2Async = promisify(pbkdf2);

/**
 * Checks the passphrase of an SRT caller from the key material it sends in its conclusion
 * handshake (KMREQ), without decrypting any media: the stream keys travel AES-key-wrapped
 * (RFC 3394) under a key derived from the passphrase (PBKDF2-HMAC-SHA1, 2048 rounds, salted with
 * the last 8 bytes of the KM salt), and unwrapping fails its integrity check under a wrong one.
 * Reference: draft-sharabayko-srt section 3.2.2 (Key Material) and 6.1.
 */

const KM_HEADER_BYTES = 16;
const WRAP_IV = Buffer.from('a6a6a6a6a6a6a6a6', 'hex');
const PBKDF2_ROUNDS = 2048;
const PBKDF2_SALT_BYTES = 8;

export type KeyMaterialCheck = { ok: true; keyLength: 16 | 24 | 32 } | { ok: false; reason: 'malformed' | 'bad_secret' };

export async function checkPassphrase(km: Buffer, passphrase: string): Promise<KeyMaterialCheck> {
  if (km.length < KM_HEADER_BYTES || km[0] !== 0x12 || km.readUInt16BE(1) !== 0x2029) return { ok: false, reason: 'malformed' };
  const keys = (km[3]! & 0x03) === 3 ? 2 : 1;
  const saltLength = km[14]! * 4;
  const keyLength = km[15]! * 4;
  if (keyLength !== 16 && keyLength !== 24 && keyLength !== 32) return { ok: false, reason: 'malformed' };
  if (saltLength < PBKDF2_SALT_BYTES || km.length !== KM_HEADER_BYTES + saltLength + 8 + keys * keyLength) {
    return { ok: false, reason: 'malformed' };
  }
  const salt = km.subarray(KM_HEADER_BYTES, KM_HEADER_BYTES + saltLength);
  const wrapped = km.subarray(KM_HEADER_BYTES + saltLength);
  // Off the event loop: 2048 rounds per attempt, and attempts come from the network.
  const kek = await pbkdf2Async(passphrase, salt.subarray(saltLength - PBKDF2_SALT_BYTES), PBKDF2_ROUNDS, keyLength, 'sha1');
  try {
    const unwrap = createDecipheriv(`id-aes${keyLength * 8}-wrap`, kek, WRAP_IV);
    Buffer.concat([unwrap.update(wrapped), unwrap.final()]);
    return { ok: true, keyLength };
  } catch {
    return { ok: false, reason: 'bad_secret' };
  }
}
