import { createCipheriv, pbkdf2Sync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  encodeHandshake,
  EXT_KMREQ,
  EXT_SID,
  HS_TYPE_CONCLUSION,
  HS_TYPE_INDUCTION,
  inductionResponse,
  parseHandshake,
  parseStreamId,
  rejectResponse,
  streamIdOf,
  withCookie,
} from '../../../src/ingest/srt/srt-handshake.ts';
import { checkPassphrase } from '../../../src/ingest/srt/srt-key-material.ts';
import { mulberry32 } from '../../helpers/prng.ts';

const base = {
  timestamp: 0, destinationSocketId: 0, version: 5, encryptionField: 2, extensionField: 7, initialSequence: 42,
  mtu: 1500, flowWindow: 8192, type: HS_TYPE_CONCLUSION, socketId: 0x1234, cookie: 0xabcd, peerIp: Buffer.alloc(16, 1),
};

/** An extension block: type, length in words, body. */
function ext(type: number, body: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt16BE(type, 0);
  head.writeUInt16BE(body.length / 4, 2);
  return Buffer.concat([head, body]);
}

/** The stream id as SRT puts it on the wire: whole words, each byte-reversed. */
function sidBody(id: string): Buffer {
  const bytes = Buffer.alloc(Math.ceil(Buffer.byteLength(id) / 4) * 4);
  bytes.write(id);
  for (let i = 0; i < bytes.length; i += 4) bytes.subarray(i, i + 4).reverse();
  return bytes;
}

/** Key material as libsrt's caller makes it (one even key wrapped under the passphrase's KEK). */
function keyMaterial(passphrase: string, keyLength = 16): Buffer {
  const salt = Buffer.alloc(16, 7);
  const header = Buffer.from([0x12, 0x20, 0x29, 0x01, 0, 0, 0, 0, 2, 0, 2, 0, 0, 0, 4, keyLength / 4]);
  const kek = pbkdf2Sync(passphrase, salt.subarray(8), 2048, keyLength, 'sha1');
  const wrap = createCipheriv(`id-aes${keyLength * 8}-wrap`, kek, Buffer.from('a6a6a6a6a6a6a6a6', 'hex'));
  const wrapped = Buffer.concat([wrap.update(Buffer.alloc(keyLength, 9)), wrap.final()]);
  return Buffer.concat([header, salt, wrapped]);
}

describe('SRT handshake', () => {
  it('reads the stream id and key material of a conclusion', () => {
    const km = keyMaterial('correct horse 1');
    const packet = Buffer.concat([encodeHandshake(base), ext(EXT_SID, sidBody('#!::r=abc,m=publish')), ext(EXT_KMREQ, km)]);
    const hs = parseHandshake(packet)!;
    expect(hs).toMatchObject({ version: 5, type: HS_TYPE_CONCLUSION, socketId: 0x1234, cookie: 0xabcd, initialSequence: 42 });
    expect(streamIdOf(hs)).toBe('#!::r=abc,m=publish');
    expect(parseHandshake(withCookie(packet, 99))!.cookie).toBe(99);
  });

  it('answers an induction with HSv5, the SRT magic and the cookie; a reject carries 1000 + reason', () => {
    const induction = parseHandshake(encodeHandshake({ ...base, version: 4, type: HS_TYPE_INDUCTION, cookie: 0 }))!;
    const answer = parseHandshake(inductionResponse(induction, 0x55, 7))!;
    expect(answer).toMatchObject({ version: 5, extensionField: 0x4a17, cookie: 0x55, destinationSocketId: 0x1234, mtu: 1500 });
    expect(parseHandshake(rejectResponse(induction, 1401, 7))!.type).toBe(2401);
  });

  it('never throws on random or truncated datagrams', () => {
    const random = mulberry32(99);
    const good = Buffer.concat([encodeHandshake(base), ext(EXT_SID, sidBody('key'))]);
    for (let i = 0; i < 2000; i++) {
      const packet = Buffer.from(good.subarray(0, Math.floor(random() * (good.length + 1))));
      for (let j = 0; j < 3; j++) if (packet.length) packet[Math.floor(random() * packet.length)] = Math.floor(random() * 256);
      const hs = parseHandshake(packet);
      if (hs) streamIdOf(hs);
    }
    expect(parseHandshake(Buffer.concat([encodeHandshake(base), Buffer.from([0, 5, 0, 9])]))).toBeUndefined();
  });

  it('parses plain and access-control stream ids', () => {
    expect(parseStreamId('sk_abc')).toEqual({ resource: 'sk_abc' });
    expect(parseStreamId('#!::r=sk_abc,m=publish')).toEqual({ resource: 'sk_abc' });
    expect(parseStreamId('#!::u=joe,r=sk_abc,m=publish')).toEqual({ resource: 'sk_abc' });
    expect(parseStreamId('#!::r=sk_abc,m=request')).toEqual({ error: 'mode request is not supported (publish only)' });
    expect(parseStreamId('#!::r=sk_abc')).toHaveProperty('error');
    expect(parseStreamId('#!::m=publish')).toHaveProperty('error');
    expect(parseStreamId('#!::garbage')).toHaveProperty('error');
  });
});

describe('SRT passphrase check', () => {
  it('accepts the right passphrase at every key length and refuses a wrong one', async () => {
    for (const keyLength of [16, 24, 32] as const) {
      expect(await checkPassphrase(keyMaterial('0123456789abcdef', keyLength), '0123456789abcdef')).toEqual({ ok: true, keyLength });
      expect(await checkPassphrase(keyMaterial('0123456789abcdef', keyLength), '0123456789abcdeF')).toEqual({ ok: false, reason: 'bad_secret' });
    }
  });

  it('calls malformed key material malformed', async () => {
    const km = keyMaterial('0123456789abcdef');
    expect(await checkPassphrase(km.subarray(0, 20), 'x'.repeat(10))).toEqual({ ok: false, reason: 'malformed' });
    expect(await checkPassphrase(Buffer.concat([km, Buffer.alloc(4)]), 'x'.repeat(10))).toEqual({ ok: false, reason: 'malformed' });
    const badLength = Buffer.from(km);
    badLength[15] = 5;
    expect(await checkPassphrase(badLength, 'x'.repeat(10))).toEqual({ ok: false, reason: 'malformed' });
    expect(await checkPassphrase(Buffer.alloc(0), 'x'.repeat(10))).toEqual({ ok: false, reason: 'malformed' });
  });
});
