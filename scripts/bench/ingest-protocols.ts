/**
 * Ingest CPU per stream: RTMP vs RTMPS vs SRT in the same run, on the same server. Each protocol
 * in turn gets N publishers of one pre-encoded clip (copy only, looped in real time); once all
 * play, the server's CPU (the Node process, and its FFmpeg children) is sampled and divided by N.
 * The ladder is empty (source copy only) so that ingest, not transcoding, is what differs.
 *
 *   node scripts/bench/ingest-protocols.ts [--streams 2] [--seconds 15]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createLiveInput, startServer, waitForHttp200 } from '../../test/helpers/server.ts';
import { selfSignedCert } from '../../test/helpers/tls.ts';
import { cpuPercent, descendants, makeClip, printTable, run, sleep } from './bench-lib.ts';

const { values } = parseArgs({
  options: {
    streams: { type: 'string', default: '2' },
    seconds: { type: 'string', default: '15' },
  },
});
const streams = Number(values.streams);
const seconds = Number(values.seconds);

const work = await mkdtemp(path.join(os.tmpdir(), 'trib-ingest-bench-'));
const clip = path.join(work, 'clip.flv');
await makeClip(clip, { width: 1280, height: 720, seconds: 10, gop: 30 });
const cert = await selfSignedCert();
const server = await startServer({
  env: {
    TRIBUTARY_TRANSCODE_LADDER: '[]',
    TRIBUTARY_RTMPS_CERT_FILE: cert.certFile,
    TRIBUTARY_RTMPS_KEY_FILE: cert.keyFile,
  },
});
const serverPid = server.process.pid!;

type Protocol = 'rtmp' | 'rtmps' | 'srt';
function publish(protocol: Protocol, raw: Record<string, unknown>) {
  const common = ['-hide_banner', '-loglevel', 'error', '-re', '-stream_loop', '-1', '-i', clip, '-c', 'copy'];
  if (protocol === 'srt') {
    const srt = raw.srt as { url: string; streamId: string; passphrase: string };
    return run('ffmpeg', [...common, '-f', 'mpegts', `${srt.url}?streamid=${srt.streamId}&passphrase=${srt.passphrase}`]);
  }
  const ingest = raw[protocol] as { url: string; streamKey: string };
  return run('ffmpeg', [...common, '-f', 'flv', `${ingest.url}/${ingest.streamKey}`]);
}

const rows: Array<Array<string | number>> = [];
const results: Record<string, unknown> = {};
try {
  for (const protocol of ['rtmp', 'rtmps', 'srt'] as const) {
    const inputs = await Promise.all(Array.from({ length: streams }, (_, i) => createLiveInput(server, { meta: { name: `${protocol}-${i}` } })));
    const publishers = inputs.map((input) => publish(protocol, input.raw));
    try {
      await Promise.all(inputs.map((input) => waitForHttp200(`${server.httpUrl}/${input.uid}/manifest/video.m3u8`, 60_000)));
      await sleep(3_000); // past start-up (probing, first segments)
      const [total, node] = await Promise.all([
        cpuPercent(() => [serverPid, ...descendants(serverPid)], seconds * 1000),
        cpuPercent(() => [serverPid], seconds * 1000),
      ]);
      const perStream = total / streams;
      rows.push([protocol, streams, perStream, node / streams, (total - node) / streams]);
      results[protocol] = { serverCpuPctPerStream: perStream, nodeCpuPctPerStream: node / streams, childrenCpuPctPerStream: (total - node) / streams };
    } finally {
      for (const p of publishers) p.child.kill('SIGINT');
      await Promise.all(publishers.map((p) => p.exited));
      await sleep(2_000);
    }
  }
  printTable(
    `Ingest CPU per stream, ${streams} × 720p30 1.5 Mb/s H.264 + AAC (copy), ${seconds} s sample, % of one core`,
    ['protocol', 'streams', 'server total', 'node', 'ffmpeg children'],
    rows,
  );
  process.stdout.write(`\n${JSON.stringify({ bench: 'ingest-protocols', streams, seconds, ...results })}\n`);
} finally {
  await server.stop();
  await server.cleanup();
  await rm(work, { recursive: true, force: true });
  await rm(path.dirname(cert.certFile), { recursive: true, force: true });
}
