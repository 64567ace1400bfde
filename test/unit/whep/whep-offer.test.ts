import { describe, expect, it } from 'vitest';
import { analyzeWhepOffer } from '../../../src/whep/whep-offer.ts';

const offer = (...sections: string[]) => ['v=0', 'o=- 1 2 IN IP4 127.0.0.1', 's=-', 't=0 0', ...sections].join('\r\n');
const video = (dir: string, ...codecs: Array<[number, string, string?]>) =>
  [`m=video 9 UDP/TLS/RTP/SAVPF ${codecs.map((c) => c[0]).join(' ')}`, `a=${dir}`, ...codecs.flatMap(([pt, name, fmtp]) => [`a=rtpmap:${pt} ${name}/90000`, ...(fmtp ? [`a=fmtp:${pt} ${fmtp}`] : [])])].join('\r\n');
const audio = (dir = 'recvonly') => ['m=audio 9 UDP/TLS/RTP/SAVPF 111 0', `a=${dir}`, 'a=rtpmap:111 opus/48000/2', 'a=fmtp:111 minptime=10;useinbandfec=1', 'a=rtpmap:0 PCMU/8000'].join('\r\n');
const BASE = 'level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f';
const HIGH = 'level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640c1f';

describe('WHEP offer checks', () => {
  it('picks H.264 packetization-mode 1 and Opus from a browser-like offer', () => {
    const r = analyzeWhepOffer(offer(video('recvonly', [96, 'VP8'], [102, 'H264', 'packetization-mode=0;profile-level-id=42e01f'], [104, 'H264', BASE]), audio()));
    expect(r).toMatchObject({ ok: true, choice: { video: { payloadType: 104, name: 'H264' }, audio: { payloadType: 111, name: 'opus' } } });
  });

  it('prefers the variant of the source profile', () => {
    const sdp = offer(video('recvonly', [104, 'H264', BASE], [106, 'H264', HIGH]), audio());
    expect(analyzeWhepOffer(sdp, 100)).toMatchObject({ ok: true, choice: { video: { payloadType: 106 } } });
    expect(analyzeWhepOffer(sdp, 66)).toMatchObject({ ok: true, choice: { video: { payloadType: 104 } } });
    expect(analyzeWhepOffer(sdp)).toMatchObject({ ok: true, choice: { video: { payloadType: 104 } } });
  });

  it('plays video without audio when the offer has no audio or no Opus', () => {
    expect(analyzeWhepOffer(offer(video('recvonly', [104, 'H264', BASE])))).toMatchObject({ ok: true, choice: { audio: undefined } });
  });

  it.each([
    ['not SDP', 'hello', 400, /not an SDP offer/],
    ['no media', offer(), 400, /no media/],
    ['no video', offer(audio()), 400, /no video/],
    ['video sendonly', offer(video('sendonly', [104, 'H264', BASE])), 400, /recvonly/],
    ['data channel', offer('m=application 9 UDP/DTLS/SCTP webrtc-datachannel'), 400, /application/],
    ['two videos', offer(video('recvonly', [104, 'H264', BASE]), video('recvonly', [106, 'H264', BASE])), 400, /at most one/],
    ['three sections', offer(audio(), audio(), audio()), 400, /at most 2/],
    ['VP9 and AV1 only', offer(video('recvonly', [98, 'VP9'], [45, 'AV1'], [99, 'rtx'])), 406, /VP9, AV1\)/],
    ['H.264 mode 0 only', offer(video('recvonly', [102, 'H264', 'packetization-mode=0'])), 406, /H264/],
  ])('refuses %s', (_name, sdp, status, reason) => {
    const r = analyzeWhepOffer(sdp);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.status).toBe(status);
    expect(r.reason).toMatch(reason);
  });
});
