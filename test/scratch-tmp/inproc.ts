import { WhipIngest } from '../../src/ingest/whip/whip-ingest.ts';
import { createLogger } from '../../src/observability/logger.ts';
import http from 'node:http';
import { publishWithWerift } from '../helpers/whip-werift-publisher.ts';
const log = (createLogger as any)({ level: 'debug' });
let tags = 0;
const ingest = new WhipIngest({
  handler: { openPublish: async () => ({ liveInputUid: 'a'.repeat(32), pushFlvTag: (t: any) => { if (tags++ < 5) console.log('tag', t.type, t.timestamp, t.keyframe, t.sequenceHeader, t.data.length); }, end: (r: string) => console.log('end', r), onTerminate: () => {} }) },
  logger: log, maxPendingPerAddress: 4, maxSessions: 10, authFailureDelayMs: 0,
  session: { network: { portMin: 0, portMax: 0, ipv4: true, ipv6: false, publicIps: [], additionalHostAddresses: [] }, ffmpegPath: 'ffmpeg', maxRestarts: 3, gopSeconds: 1, x264Preset: 'veryfast', connectTimeoutMs: 10000, consentTimeoutMs: 5000, keyframeIntervalMs: 2000 },
});
const srv = http.createServer(async (req, res) => {
  let body = ''; for await (const c of req) body += c;
  if (req.method === 'DELETE') { res.end(); return; }
  const { session, answer } = await ingest.publish({ liveInputUid: undefined, streamKey: 'x', sdp: body, remoteAddress: '1' });
  console.log(answer.split('\r\n').filter((l) => /candidate|lite|setup|rtpmap|fmtp/.test(l)).join('\n'));
  res.writeHead(201, { location: `/s/${session.id}` }); res.end(answer);
});
await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
const pub = await publishWithWerift({ url: `http://127.0.0.1:${(srv.address() as any).port}/whip`, streamKey: 'x' });
pub.pc.connectionStateChange.subscribe((s) => console.log('client', s));
await new Promise((r) => setTimeout(r, 8000));
console.log('tags', tags, 'plis', pub.plis);
await pub.stop(); await ingest.close(); srv.close();
