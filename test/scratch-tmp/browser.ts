import { startServer, createLiveInput, waitForHttp200 } from '../helpers/server.ts';
import { publishFromBrowser, waitForPublishing } from '../helpers/whip-browser.ts';
import { ffprobe } from '../helpers/probe.ts';
const server = await startServer({ env: { TRIBUTARY_LOG_LEVEL: 'debug' } });
const codec = (process.argv[2] ?? 'H264') as 'H264';
let pub: any;
const hard = setTimeout(() => { console.log('HARD TIMEOUT'); server.kill(); process.exit(1); }, 60_000);
try {
  const input = await createLiveInput(server);
  const url = (input.raw as any).webRTC.url;
  const t0 = Date.now();
  pub = await publishFromBrowser(url, input.streamKey, codec);
  console.log(await waitForPublishing(pub), Date.now() - t0);
  const master = `${server.httpUrl}/${input.uid}/manifest/video.m3u8`;
  console.log(await waitForHttp200(master, 25000), Date.now() - t0);
  const p = await ffprobe(master);
  console.log(p.streams.map((s) => `${s.codec_type} ${s.codec_name} ${s.width}x${s.height}`));
  await pub.page.evaluate(() => (globalThis as any).stopPublishing());
} catch (e) { console.error('ERR', e); }
finally {
  await pub?.close();
  const lines = server.output().split('\n').filter((l) => /whip|bridge|ffmpeg|error|warn|DBG/i.test(l) && !/ffmpeg stderr|PLI/.test(l));
  console.log(lines.slice(-30).join('\n'));
  await server.stop(); await server.cleanup();
  clearTimeout(hard);
  process.exit(0);
}
