import { describe, expect, it } from 'vitest';
import { analyzeOffer, fragmentUfrag } from '../../../src/ingest/whip/whip-offer.ts';
import { fmtpValue } from '../../../src/webrtc/sdp-offer.ts';
import { isDecoderStart, isKeyframeStart } from '../../../src/ingest/whip/rtp-keyframe.ts';
import { announcePublicAddresses } from '../../../src/webrtc/public-candidates.ts';
import { TimestampRebaser } from '../../../src/ingest/whip/timestamp-rebaser.ts';
import { bridgeArgs, bridgeSdp } from '../../../src/ingest/whip/bridge-args.ts';

const session = ['v=0', 'o=- 1 2 IN IP4 127.0.0.1', 's=-', 't=0 0', 'a=group:BUNDLE 0 1'];
const audio = ['m=audio 9 UDP/TLS/RTP/SAVPF 111 0', 'a=mid:0', 'a=ice-ufrag:abcd', 'a=sendonly', 'a=rtpmap:111 opus/48000/2', 'a=fmtp:111 minptime=10;useinbandfec=1', 'a=rtpmap:0 PCMU/8000'];
const video = (lines: string[], pts: string) => ['m=video 9 UDP/TLS/RTP/SAVPF ' + pts, 'a=mid:1', 'a=ice-ufrag:abcd', 'a=sendonly', ...lines];
const sdp = (...sections: string[][]) => [...session, ...sections.flat()].join('\r\n') + '\r\n';

// Chrome's offer with H.264 restricted by setCodecPreferences, abridged.
const chromeH264 = video([
  'a=rtpmap:100 H264/90000', 'a=fmtp:100 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f',
  'a=rtpmap:102 H264/90000', 'a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f',
  'a=rtpmap:103 rtx/90000', 'a=fmtp:103 apt=102',
], '100 102 103');
// OBS 30's WHIP offer: H.264 High profile.
const obs = video(['a=rtpmap:96 H264/90000', 'a=fmtp:96 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640028'], '96');

describe('analyzeOffer', () => {
  it('takes H.264 with packetization-mode=1 (Constrained Baseline from browsers) and Opus', () => {
    const r = analyzeOffer(sdp(audio, chromeH264));
    expect(r).toMatchObject({ ok: true, choice: { video: { codec: 'h264', payloadType: 102 }, audio: { payloadType: 111, name: 'opus' }, iceUfrag: 'abcd' } });
  });

  it('takes the High profile OBS offers, as offered', () => {
    const r = analyzeOffer(sdp(audio, obs));
    expect(r.ok && r.choice.video.fmtp).toContain('profile-level-id=640028');
  });

  it('prefers H.264 (copied) over VP8 and VP9, and takes VP8 or VP9 alone', () => {
    const mixed = video(['a=rtpmap:96 VP8/90000', 'a=rtpmap:98 VP9/90000', 'a=rtpmap:102 H264/90000', 'a=fmtp:102 packetization-mode=1'], '96 98 102');
    expect(analyzeOffer(sdp(audio, mixed))).toMatchObject({ ok: true, choice: { video: { codec: 'h264' } } });
    expect(analyzeOffer(sdp(audio, video(['a=rtpmap:96 VP8/90000'], '96')))).toMatchObject({ ok: true, choice: { video: { codec: 'vp8', payloadType: 96 } } });
    expect(analyzeOffer(sdp(video(['a=rtpmap:98 VP9/90000', 'a=fmtp:98 profile-id=0'], '98')))).toMatchObject({ ok: true, choice: { video: { codec: 'vp9' }, audio: undefined } });
  });

  it.each([
    ['empty', '', 400, /v=0/],
    ['not SDP', '{"hello":"world"}', 400, /v=0/],
    ['no media', sdp(), 400, /no media/],
    ['only rejected media', sdp(['m=video 0 UDP/TLS/RTP/SAVPF 96', 'a=rtpmap:96 VP8/90000']), 400, /no media/],
    ['audio only', sdp(audio), 406, /no video/],
    ['H.264 single NAL mode only', sdp(audio, video(['a=rtpmap:100 H264/90000', 'a=fmtp:100 packetization-mode=0'], '100')), 406, /H264/],
    ['only unsupported codecs', sdp(audio, video(['a=rtpmap:45 AV1/90000', 'a=rtpmap:46 H265/90000'], '45 46')), 406, /AV1, H265/],
    ['a data channel', sdp(['m=application 9 UDP/DTLS/SCTP webrtc-datachannel']), 400, /application/],
    ['two video sections', sdp(obs, obs), 400, /at most one/],
    ['too many sections', sdp(audio, obs, obs), 400, /at most 2/],
    ['a receive-only video', sdp(video(['a=recvonly', 'a=rtpmap:96 VP8/90000'], '96')), 400, /sendonly/],
  ])('refuses %s', (_name, body, status, reason) => {
    const r = analyzeOffer(body);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.status).toBe(status);
      expect(r.reason).toMatch(reason);
    }
  });

  it('reads fmtp values and trickle ufrags', () => {
    expect(fmtpValue('level-asymmetry-allowed=1; packetization-mode=1', 'packetization-mode')).toBe('1');
    expect(fmtpValue('a=1', 'b')).toBeUndefined();
    expect(fragmentUfrag('a=ice-ufrag:EsAw\r\na=ice-pwd:x\r\n')).toBe('EsAw');
    expect(fragmentUfrag('a=candidate:1 1 udp 1 1.2.3.4 5 typ host')).toBeUndefined();
  });
});

describe('isKeyframeStart', () => {
  const hex = (h: string) => Buffer.from(h, 'hex');
  it('H.264: SPS/PPS in a STAP-A, IDR single or first FU-A fragment; not a P slice or a later fragment', () => {
    // Chrome's first packet of a keyframe: STAP-A [SPS (18 bytes), PPS (4 bytes)].
    expect(isKeyframeStart('h264', hex('780012' + '6742c0' + '00'.repeat(15) + '0004' + '68ce3c80'))).toBe(true);
    expect(isKeyframeStart('h264', hex('65888400'))).toBe(true);
    expect(isKeyframeStart('h264', hex('7c85b80004'))).toBe(true); // FU-A start, IDR
    expect(isKeyframeStart('h264', hex('7c05b80004'))).toBe(false); // FU-A middle
    expect(isKeyframeStart('h264', hex('7c81e00080'))).toBe(false); // FU-A start, non-IDR
    expect(isKeyframeStart('h264', hex('61e0004000'))).toBe(false);
    expect(isKeyframeStart('h264', hex('780002'))).toBe(false); // truncated STAP-A
    expect(isKeyframeStart('h264', hex(''))).toBe(false);
    // Decoding can start only where the SPS is.
    expect(isDecoderStart('h264', hex('780012' + '6742c0' + '00'.repeat(15) + '0004' + '68ce3c80'))).toBe(true);
    expect(isDecoderStart('h264', hex('6764001f'))).toBe(true);
    expect(isDecoderStart('h264', hex('65888400'))).toBe(false);
    expect(isDecoderStart('h264', hex('7c85b80004'))).toBe(false);
    expect(isDecoderStart('vp8', hex('10' + '5042009d012a'))).toBe(true);
  });
  it('VP8: start of partition 0 with P clear, after any extension fields', () => {
    expect(isKeyframeStart('vp8', hex('10' + '5042009d012a'))).toBe(true); // frame tag P=0, then the start code
    expect(isKeyframeStart('vp8', hex('90' + 'e0' + '8123' + '05' + '40' + '504200'))).toBe(true); // X: I (15-bit), L, T
    expect(isKeyframeStart('vp8', hex('90' + '80' + '23' + '31'))).toBe(false); // inter frame
    expect(isKeyframeStart('vp8', hex('00' + '504200'))).toBe(false); // not a partition start
    expect(isKeyframeStart('vp8', hex('90' + 'e0'))).toBe(false); // truncated
  });
  it('VP9: start of frame, not inter-predicted', () => {
    expect(isKeyframeStart('vp9', hex('8a00'))).toBe(true); // I, B
    expect(isKeyframeStart('vp9', hex('ca00'))).toBe(false); // P set
    expect(isKeyframeStart('vp9', hex('8400'))).toBe(false); // E only
  });
});

describe('announcePublicAddresses', () => {
  const answer = ['a=mid:0', 'a=candidate:1 1 udp 2130706431 10.0.0.5 40000 typ host', 'a=candidate:2 1 udp 2130706431 fd00::5 40002 typ host', 'a=end-of-candidates'].join('\r\n');
  it('adds each public address of the same family with the same port', () => {
    const out = announcePublicAddresses(answer, ['203.0.113.7', '2001:db8::7']).split('\r\n');
    expect(out).toContain('a=candidate:pub0 1 udp 2130706432 203.0.113.7 40000 typ host');
    expect(out).toContain('a=candidate:pub1 1 udp 2130706432 2001:db8::7 40002 typ host');
    expect(out.filter((l) => l.startsWith('a=candidate'))).toHaveLength(4);
  });
  it('leaves the answer alone without public addresses', () => {
    expect(announcePublicAddresses(answer, [])).toBe(answer);
  });
});

describe('TimestampRebaser', () => {
  it('passes the first source through and continues later ones after the last tag', () => {
    const r = new TimestampRebaser();
    r.newSource();
    expect([0, 20, 40, 1000].map((t) => r.rebase(t))).toEqual([0, 20, 40, 1000]);
    r.newSource();
    expect([0, 33, 66].map((t) => r.rebase(t))).toEqual([1020, 1053, 1086]);
    r.newSource();
    expect(r.rebase(500)).toBe(1106);
  });
});

describe('bridge SDP and arguments', () => {
  it('describes fixed payload types on local ports; copies H.264, transcodes VP8 without B-frames', () => {
    const text = bridgeSdp({ video: { codec: 'h264', fmtp: 'x', port: 40000 }, audio: { port: 40002 } });
    expect(text).toContain('m=video 40000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1');
    expect(text).toContain('m=audio 40002 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2');
    expect(bridgeSdp({ video: { codec: 'vp8', fmtp: '', port: 40000 }, audio: undefined })).not.toContain('m=audio');
    const h264 = bridgeArgs({ sdpPath: '/x.sdp', codec: 'h264', audio: true, gopSeconds: 1, x264Preset: 'veryfast' });
    expect(h264.join(' ')).toContain('-c:v copy');
    expect(h264.join(' ')).toContain('-c:a aac');
    const vp8 = bridgeArgs({ sdpPath: '/x.sdp', codec: 'vp8', audio: false, gopSeconds: 2, x264Preset: 'veryfast' }).join(' ');
    expect(vp8).toContain('-c:v libx264');
    expect(vp8).toContain('-bf 0');
    expect(vp8).toContain('n_forced*2');
    expect(vp8).not.toContain('0:a');
  });
});
