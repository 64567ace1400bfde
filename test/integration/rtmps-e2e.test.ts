import { randomBytes, X509Certificate } from 'node:crypto';
import { copyFile, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publishTestStream } from '../helpers/ffmpeg-publish.ts';
import { ffprobe } from '../helpers/probe.ts';
import { createLiveInput, liveProgress, startServer, waitForHttp200, waitForProgress, type TestServer } from '../helpers/server.ts';
import { selfSignedCert } from '../helpers/tls.ts';

/** The SHA-256 fingerprint of the certificate a new TLS connection to the port is served. */
async function servedFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      const fingerprint = socket.getPeerCertificate().fingerprint256;
      socket.destroy();
      resolve(fingerprint);
    });
    socket.once('error', reject);
  });
}

function fingerprintOf(pem: Buffer): string {
  return new X509Certificate(pem).fingerprint256;
}

/** Sends bytes on a raw TCP connection and resolves when the server closes it. */
async function sendAndWaitClose(port: number, bytes: Buffer): Promise<void> {
  await new Promise<void>((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port }, () => socket.write(bytes));
    socket.on('data', () => {});
    socket.on('error', () => {});
    socket.once('close', () => resolve());
  });
}

// RTMPS: FFmpeg publishes over TLS with a certificate made for the test; the stream plays over HLS;
// the certificate is replaced mid-stream without dropping the publisher; TLS garbage and plain
// RTMP on the TLS port are refused without disturbing the live stream.
describe('RTMPS ingest', () => {
  let server: TestServer;
  let certDir: string;
  let certFile: string;
  let keyFile: string;
  let firstCert: Buffer;

  beforeAll(async () => {
    const first = await selfSignedCert();
    certDir = await mkdtemp(path.join(os.tmpdir(), 'trib-rtmps-'));
    certFile = path.join(certDir, 'cert.pem');
    keyFile = path.join(certDir, 'key.pem');
    await copyFile(first.certFile, certFile);
    await copyFile(first.keyFile, keyFile);
    await rm(path.dirname(first.certFile), { recursive: true, force: true });
    firstCert = first.cert;
    server = await startServer({
      env: {
        TRIBUTARY_RTMPS_CERT_FILE: certFile,
        TRIBUTARY_RTMPS_KEY_FILE: keyFile,
        TRIBUTARY_TRANSCODE_LADDER: '[]',
        TRIBUTARY_RTMP_HANDSHAKE_TIMEOUT_MS: '2000',
      },
    });
  });

  afterAll(async () => {
    await server?.stop();
    await server?.cleanup();
    if (certDir) await rm(certDir, { recursive: true, force: true });
  });

  it('lists the RTMPS URL, plays a publish over HLS, and swaps the certificate without dropping it', async () => {
    const port = server.rtmpsPort!;
    expect(port).toBeGreaterThan(0);
    const input = await createLiveInput(server, { meta: { name: 'rtmps' } });
    expect(input.raw.rtmps).toEqual({ url: `rtmps://127.0.0.1:${port}/live`, streamKey: input.streamKey });

    const publisher = publishTestStream({ url: `rtmps://127.0.0.1:${port}/live/${input.streamKey}`, width: 320, height: 240, fps: 25 });
    try {
      const masterUrl = `${server.httpUrl}/${input.uid}/manifest/video.m3u8`;
      await waitForHttp200(masterUrl, 30_000);
      const probe = await ffprobe(masterUrl);
      expect(probe.streams.filter((s) => s.codec_type === 'video').map((s) => `${s.codec_name} ${s.width}x${s.height}`)).toEqual(['h264 320x240']);
      expect(probe.streams.some((s) => s.codec_type === 'audio' && s.codec_name === 'aac')).toBe(true);
      const status = await server.api<{ result: { status: unknown } }>('GET', `/v1/live_inputs/${input.uid}`);
      expect(status.body.result.status).toMatchObject({ current: { state: 'connected', ingestProtocol: 'rtmps' } });

      // Hostile input on the TLS port: garbage instead of a ClientHello, then a plain RTMP handshake.
      await sendAndWaitClose(port, randomBytes(4096));
      await sendAndWaitClose(port, Buffer.concat([Buffer.from([3]), randomBytes(1536)]));
      // A half-open TLS connection that never finishes the handshake is closed by the timeout too.
      await sendAndWaitClose(port, Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]));

      // Certificate swap: an atomic rename of a new pair, as certbot and friends do.
      expect(await servedFingerprint(port)).toBe(fingerprintOf(firstCert));
      const second = await selfSignedCert();
      const before = await liveProgress(masterUrl);
      const reloads = server.logs.filter((l) => l.msg === 'tls certificate reloaded').length;
      await writeFile(`${keyFile}.new`, second.key);
      await writeFile(`${certFile}.new`, second.cert);
      await rename(`${keyFile}.new`, keyFile);
      await rename(`${certFile}.new`, certFile);
      await rm(path.dirname(second.certFile), { recursive: true, force: true });
      const deadline = Date.now() + 15_000;
      while ((await servedFingerprint(port)) !== fingerprintOf(second.cert)) {
        if (Date.now() > deadline) throw new Error('the new certificate was never served');
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(server.logs.filter((l) => l.msg === 'tls certificate reloaded').length).toBeGreaterThan(reloads);

      // A broken key file is refused; the previous pair stays in service.
      const failed = () => server.logs.filter((l) => l.msg === 'tls certificate reload failed; keeping the previous one').length;
      const failedBefore = failed();
      await writeFile(keyFile, 'not a key');
      await server.waitForLog(() => failed() > failedBefore, 15_000);
      expect(await servedFingerprint(port)).toBe(fingerprintOf(second.cert));

      // The publisher that connected with the first certificate is still live and the stream advances.
      await waitForProgress(masterUrl, before);
      expect(publisher.process.exitCode).toBeNull();
      expect(server.logs.filter((l) => l.liveInput === input.uid && l.msg === 'session ending')).toEqual([]);
      expect(server.logs.filter((l) => l.liveInput === input.uid && l.msg === 'publish accepted')).toHaveLength(1);
    } finally {
      await publisher.stop();
    }
  }, 120_000);
});
