import { describe, expect, it } from 'vitest';
import {
  applyOutputChanges,
  buildOutput,
  OutputInvalidError,
  outputStreamKeyProblem,
  outputUrlProblem,
} from '../../../src/state/output-record.ts';

const NOW = new Date('2026-01-01T00:00:00Z');
const INPUT = 'a'.repeat(32);

describe('outputUrlProblem', () => {
  it.each([
    'rtmp://a.rtmp.youtube.com/live2',
    'rtmps://live-api-s.facebook.com:443/rtmp/',
    'rtmp://127.0.0.1:1935/live',
    'srt://srt.example.com:9000?latency=200&passphrase=abcdefghij',
    'rtmp://[::1]:1935/live',
  ])('accepts %s', (url) => {
    expect(outputUrlProblem(url)).toBeUndefined();
  });

  it.each([
    ['', /required/],
    ['http://example.com/live', /scheme/],
    ['https://example.com/live', /scheme/],
    ['file:///etc/passwd', /scheme/],
    ['udp://1.2.3.4:5', /scheme/],
    ['RTMPX://h/a', /scheme/],
    ['data:text/plain,hi', /scheme/],
    ['rtmp://', /valid URL|host/],
    ['rtmp:///live', /valid URL|host/],
    ['rtmp://u:p@h/live', /credentials/],
    ['rtmp://h/live#x', /fragment/],
    ['rtmp://h/live?key=1', /query/],
    ['srt://h', /port/],
    ['rtmp://h/live x', /spaces/],
    ['rtmp://h/live\r\n', /control/],
    ['rtmp://h/é', /control|spaces/],
    [`rtmp://h/${'a'.repeat(1100)}`, /at most 1024/],
  ])('refuses %j', (url, why) => {
    expect(outputUrlProblem(url)).toMatch(why);
  });
});

describe('outputStreamKeyProblem', () => {
  it('allows empty and printable keys; refuses spaces, controls and oversize', () => {
    expect(outputStreamKeyProblem('')).toBeUndefined();
    expect(outputStreamKeyProblem('live_123_abc?bandwidthtest=true')).toBeUndefined();
    expect(outputStreamKeyProblem('a b')).toMatch(/spaces/);
    expect(outputStreamKeyProblem('a\u0000')).toMatch(/control/);
    expect(outputStreamKeyProblem('k'.repeat(513))).toMatch(/at most 512/);
  });
});

describe('buildOutput / applyOutputChanges', () => {
  it('builds an enabled output with a fresh uid, and patches field by field', () => {
    const out = buildOutput(INPUT, { url: 'rtmp://h/app', streamKey: 'k' }, NOW);
    expect(out).toMatchObject({ liveInput: INPUT, url: 'rtmp://h/app', streamKey: 'k', enabled: true, created: NOW.toISOString() });
    expect(out.uid).toMatch(/^[0-9a-f]{32}$/);
    const later = new Date(NOW.getTime() + 1000);
    const off = applyOutputChanges(out, { enabled: false }, later);
    expect(off).toMatchObject({ url: 'rtmp://h/app', streamKey: 'k', enabled: false, modified: later.toISOString(), created: out.created });
  });

  it('throws OutputInvalidError naming the field', () => {
    expect(() => buildOutput(INPUT, { url: 'http://h/' }, NOW)).toThrow(OutputInvalidError);
    const out = buildOutput(INPUT, { url: 'rtmp://h/app' }, NOW);
    try {
      applyOutputChanges(out, { streamKey: 'bad key' }, NOW);
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(OutputInvalidError);
      expect((error as OutputInvalidError).field).toBe('streamKey');
    }
  });
});
