const hard = setTimeout(() => process.exit(1), 90_000); hard.unref();
import { startServer, createLiveInput, waitForHttp200 } from '/work/wt/whip/test/helpers/server.ts';
import { publishWithWerift } from '/work/wt/whip/test/helpers/whip-werift-publisher.ts';
import { ffprobe } from '/work/wt/whip/test/helpers/probe.ts';
const server = await startServer({ env: { TRIBUTARY_LOG_LEVEL: 'debug' } });
try {
  const input = await createLiveInput(server);
  const url = (input.raw as any).webRTC.url;
  console.log('url', url);
  const t0 = Date.now();
  const pub = await publishWithWerift({ url, streamKey: input.streamKey, width: 854, height: 480, packetLossPercent: 5 });
  console.log('post ok', Date.now() - t0, pub.location);
  const master = `${server.httpUrl}/${input.uid}/manifest/video.m3u8`;
  console.log(await waitForHttp200(master, 30000), Date.now() - t0);
  const p = await ffprobe(master);
  console.log(p.streams.map((s) => `${s.codec_type} ${s.codec_name} ${s.width}x${s.height}`));
  console.log('plis', pub.plis);
  await pub.stop();
} catch (e) { console.error('ERR', e); }
finally {
  const lines = server.output().split('\n').filter((l) => /whip|bridge|ffmpeg|error|warn/i.test(l) && !/ffmpeg stderr/.test(l));
  console.log(lines.slice(-40).join('\n'));
  await server.stop(); await server.cleanup();
}
