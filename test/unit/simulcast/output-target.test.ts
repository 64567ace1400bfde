import { describe, expect, it } from 'vitest';
import { buildOutputArgs, describeTarget, maskSecrets, targetFormat, targetUrl } from '../../../src/simulcast/output-target.ts';
import { FfmpegProgress } from '../../../src/simulcast/ffmpeg-progress.ts';

describe('targetUrl', () => {
  it.each([
    [{ url: 'rtmp://a.rtmp.youtube.com/live2', streamKey: 'abcd-efgh' }, 'rtmp://a.rtmp.youtube.com/live2/abcd-efgh'],
    [{ url: 'rtmps://live.example.com:443/app/', streamKey: 'k' }, 'rtmps://live.example.com:443/app/k'],
    [{ url: 'rtmp://host/app/already-has-key', streamKey: '' }, 'rtmp://host/app/already-has-key'],
    [{ url: 'srt://host:9000?latency=200', streamKey: 'sid' }, 'srt://host:9000?latency=200&streamid=sid'],
    [{ url: 'srt://host:9000?streamid=given', streamKey: 'ignored' }, 'srt://host:9000?streamid=given'],
    [{ url: 'srt://host:9000', streamKey: '' }, 'srt://host:9000'],
  ])('%j → %s', (target, expected) => {
    expect(targetUrl(target)).toBe(expected);
  });
});

describe('buildOutputArgs', () => {
  it('copies every stream from FLV on stdin: FLV to RTMP(S), MPEG-TS to SRT, the URL last', () => {
    const rtmp = buildOutputArgs({ url: 'rtmp://h/app', streamKey: 'k' });
    expect(rtmp.slice(rtmp.indexOf('-i'), rtmp.indexOf('-i') + 2)).toEqual(['-i', 'pipe:0']);
    expect(rtmp).toContain('copy');
    expect(rtmp).not.toContain('libx264');
    expect(rtmp.slice(-3)).toEqual(['-f', 'flv', 'rtmp://h/app/k']);
    const srt = buildOutputArgs({ url: 'srt://h:1', streamKey: 'k' });
    expect(srt.slice(-3)).toEqual(['-f', 'mpegts', 'srt://h:1?streamid=k']);
    expect(targetFormat({ url: 'rtmps://h/app', streamKey: '' })).toBe('flv');
  });
});

describe('maskSecrets', () => {
  it('hides the stream key, the full target URL and SRT secrets, keeping what helps', () => {
    const target = { url: 'rtmp://127.0.0.1:1935/live', streamKey: 'sekret-key' };
    const msg = maskSecrets('rtmp://127.0.0.1:1935/live/sekret-key: Connection refused', target);
    expect(msg).toBe('rtmp://127.0.0.1:1935/live/***: Connection refused');
    expect(maskSecrets('bad key sekret%2Fkey or sekret/key', { url: 'rtmp://h/a', streamKey: 'sekret/key' })).toBe('bad key *** or ***');
    const srt = { url: 'srt://h:9000?passphrase=0123456789', streamKey: 'sid-secret' };
    const srtMsg = maskSecrets(`Error opening ${targetUrl(srt)}: refused; passphrase=0123456789`, srt);
    expect(srtMsg).not.toMatch(/0123456789|sid-secret/);
    expect(srtMsg).toContain('srt://h:9000');
  });

  it('describes a target without its key or query', () => {
    expect(describeTarget({ url: 'rtmps://live.example.com:443/app/', streamKey: 'x' })).toBe('rtmps://live.example.com:443/app');
    expect(describeTarget({ url: 'srt://h:9000?passphrase=p', streamKey: '' })).toBe('srt://h:9000');
    expect(describeTarget({ url: '::', streamKey: '' })).toBe('(invalid url)');
  });
});

describe('FfmpegProgress', () => {
  it('reports growth of total_size across split chunks, ignoring N/A and shrinking figures', () => {
    const p = new FfmpegProgress();
    expect(p.push('frame=1\ntotal_size=N/A\nprogress=continue\n')).toBeUndefined();
    expect(p.push('total_si')).toBeUndefined();
    expect(p.push('ze=407\nprogress=continue\n')).toBe(407);
    expect(p.push('total_size=407\n')).toBeUndefined();
    expect(p.push('total_size=100\n')).toBeUndefined();
    expect(p.push('total_size=9000\ntotal_size=12000\n')).toBe(12000);
    expect(p.totalSize).toBe(12000);
  });
});
