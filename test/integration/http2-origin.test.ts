import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { startServer, type TestServer } from '../helpers/server.ts';
import { selfSignedCert } from '../helpers/tls.ts';

function h2Get(authority: string, path: string, headers: Record<string, string>, tls?: { ca: Buffer }): Promise<{ status: number; body: string; alpn?: string }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(authority, tls ? { ca: tls.ca } : {});
    let alpn: string | undefined;
    session.on('connect', (_s, socket) => {
      alpn = (socket as { alpnProtocol?: string | false }).alpnProtocol || undefined;
    });
    session.on('error', reject);
    session.setTimeout(10_000, () => {
      session.destroy();
      reject(new Error(`no answer from ${authority}${path}`));
    });
    const req = session.request({ ':path': path, ...headers });
    let status = 0;
    let body = '';
    req.on('response', (h) => {
      status = Number(h[':status']);
    });
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    req.on('end', () => {
      session.close();
      resolve({ status, body, alpn });
    });
    req.on('error', reject);
  });
}

// The origin speaks HTTP/2 both in cleartext (prior knowledge) and over TLS (ALPN h2), and TLS
// still serves HTTP/1.1 clients.
describe('HTTP/2 listeners', () => {
  let server: TestServer;
  let cert: Awaited<ReturnType<typeof selfSignedCert>>;

  beforeAll(async () => {
    cert = await selfSignedCert();
    server = await startServer({
      env: {
        TRIBUTARY_HTTP_H2C_PORT: '0',
        TRIBUTARY_HTTP_TLS_PORT: '0',
        TRIBUTARY_HTTP_TLS_CERT_FILE: cert.certFile,
        TRIBUTARY_HTTP_TLS_KEY_FILE: cert.keyFile,
        TRIBUTARY_HTTP_LISTEN_BACKLOG: '1234',
      },
    });
  });
  afterAll(async () => {
    await server?.stop();
    await server?.cleanup();
  });

  it('listens with the configured backlog on every HTTP listener (a burst of viewers queues)', async () => {
    const ready = await server.waitForLog((l) => l.msg === 'tributary ready');
    const somaxconn = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8'));
    // For a listening socket, ss shows the backlog in Send-Q.
    const listening = execFileSync('ss', ['-Hltn'], { encoding: 'utf8' });
    for (const port of [new URL(server.httpUrl).port, ready.h2cPort, ready.tlsPort].map(String)) {
      const line = listening.split('\n').find((l) => l.split(/\s+/)[3]?.endsWith(`:${port}`));
      expect(line, `listener on ${port}`).toBeDefined();
      expect(Number(line!.trim().split(/\s+/)[2])).toBe(Math.min(1234, somaxconn));
    }
  });

  it('serves the API and playback over h2c, h2 over TLS and HTTP/1.1 over TLS', async () => {
    const ready = await server.waitForLog((l) => l.msg === 'tributary ready');
    const h2cPort = Number(ready.h2cPort);
    const tlsPort = Number(ready.tlsPort);
    expect(h2cPort).toBeGreaterThan(0);
    expect(tlsPort).toBeGreaterThan(0);
    const auth = { authorization: `Bearer ${server.apiKey}` };

    const clear = await h2Get(`http://127.0.0.1:${h2cPort}`, '/v1/live_inputs', auth);
    expect(clear.status).toBe(200);
    expect(JSON.parse(clear.body).success).toBe(true);

    const secure = await h2Get(`https://127.0.0.1:${tlsPort}`, '/healthz', {}, { ca: cert.cert });
    expect(secure).toMatchObject({ status: 200, alpn: 'h2' });
    const missing = await h2Get(`https://127.0.0.1:${tlsPort}`, `/${'a'.repeat(32)}/manifest/video.m3u8`, {}, { ca: cert.cert });
    expect(missing.status).toBe(404);

    const http1 = await new Promise<{ status: number; alpn: string | false }>((resolve, reject) => {
      https
        .get({ host: '127.0.0.1', port: tlsPort, path: '/healthz', ca: cert.cert, ALPNProtocols: ['http/1.1'] } as https.RequestOptions, (res) => {
          const alpn = (res.socket as { alpnProtocol?: string | false }).alpnProtocol ?? false;
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, alpn }));
        })
        .on('error', reject);
    });
    expect(http1).toEqual({ status: 200, alpn: 'http/1.1' });

    // A TLS handshake with garbage does not disturb the listener.
    const outcome = await new Promise<string>((resolve) => {
      // A handshake record of the right framing whose content is garbage: the server must answer
      // with an alert and close, not wait.
      const garbage = Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x00, 0x40, 0x01, 0x00, 0x00, 0x3c]), Buffer.alloc(0x3c, 0xab)]);
      const s = net.connect(tlsPort, '127.0.0.1', () => s.write(garbage));
      const timer = setTimeout(() => {
        s.destroy();
        resolve('still open');
      }, 10_000);
      s.on('error', () => {});
      s.on('data', () => {});
      s.on('close', () => {
        clearTimeout(timer);
        resolve('closed');
      });
    });
    expect(outcome).toBe('closed');
    const again = await h2Get(`https://127.0.0.1:${tlsPort}`, '/healthz', {}, { ca: cert.cert });
    expect(again.status).toBe(200);
  });
});
