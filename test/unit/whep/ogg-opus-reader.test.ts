import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { OggOpusReader, opusPacketSamples } from '../../../src/whep/ogg-opus-reader.ts';
import { whepEncoderArgs } from '../../../src/whep/whep-encoder.ts';

describe('Ogg Opus reader', () => {
  // Real FFmpeg output (the encoder's own arguments, AAC FLV in): 1 s of tone.
  const flv = spawnSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', '-t', '1', '-c:a', 'aac', '-f', 'flv', 'pipe:1'], { maxBuffer: 1 << 24 }).stdout;
  const args = whepEncoderArgs({ audio: true, opusBitrateKbps: 64 }).map((a) => (a === 'pipe:3' ? 'pipe:1' : a));
  const ogg = spawnSync('ffmpeg', args, { input: flv, maxBuffer: 1 << 24 }).stdout;

  it('reads 20 ms Opus packets from FFmpeg output fed in small chunks, skipping the headers', () => {
    expect(ogg.length).toBeGreaterThan(1000);
    const reader = new OggOpusReader();
    const packets: Buffer[] = [];
    for (let i = 0; i < ogg.length; i += 97) packets.push(...reader.push(ogg.subarray(i, i + 97)));
    // 1 s of audio in 20 ms packets (the encoder may pad the end by one).
    expect(packets.length).toBeGreaterThanOrEqual(49);
    expect(packets.length).toBeLessThanOrEqual(52);
    for (const p of packets) {
      expect(p.toString('latin1', 0, 8)).not.toBe('OpusHead');
      expect(opusPacketSamples(p)).toBe(960);
    }
  });

  it('refuses bytes that are not Ogg', () => {
    expect(() => new OggOpusReader().push(Buffer.from('RIFF....WAVEfmt xxxxxxxxxxxxxxxxxxxxx'))).toThrow(/not an Ogg/);
  });
});
