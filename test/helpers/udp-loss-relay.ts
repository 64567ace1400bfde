import dgram from 'node:dgram';
import { mulberry32 } from './prng.ts';

export interface LossRelay {
  /** Where the publisher sends: this address and port stand in for the server's candidate. */
  address: string;
  port: number;
  /** RTP packets (publisher → server) dropped, and datagrams forwarded each way. */
  dropped: number;
  up: number;
  down: number;
  close(): void;
}

export interface LossRelayOptions {
  /** The server's ICE candidate. */
  target: { address: string; port: number };
  /** RTP packets from the publisher dropped at random (seeded), in percent. */
  lossPercent: number;
  seed?: number;
}

/**
 * A lossy network path between one publisher and the server: every datagram passes through it
 * both ways (STUN, DTLS, SRTP, SRTCP); of the publisher's RTP, `lossPercent` % is dropped. The
 * loss is in the network, after the publisher's WebRTC stack, so the server's NACKs can be
 * answered from the publisher's send history (RFC 4585), unlike loss before the stack.
 */
export async function startLossRelay(opts: LossRelayOptions): Promise<LossRelay> {
  const family = opts.target.address.includes(':') ? 'udp6' : 'udp4';
  const bind = async () => {
    const socket = dgram.createSocket(family);
    await new Promise<void>((r) => socket.bind(0, opts.target.address, r));
    return socket;
  };
  const front = await bind();
  const random = mulberry32(opts.seed ?? 11);
  // Like a NAT: each of the publisher's sockets (one per local candidate) gets its own mapping,
  // so that answers to its ICE checks come back to it.
  const mappings = new Map<string, Promise<dgram.Socket>>();
  const mapping = (from: dgram.RemoteInfo) => {
    const key = `${from.address}:${from.port}`;
    let back = mappings.get(key);
    if (!back) {
      back = bind().then((socket) => {
        socket.on('message', (msg) => {
          relay.down++;
          front.send(msg, from.port, from.address);
        });
        return socket;
      });
      mappings.set(key, back);
    }
    return back;
  };
  const relay: LossRelay = {
    address: opts.target.address,
    port: front.address().port,
    dropped: 0,
    up: 0,
    down: 0,
    close: () => {
      front.close();
      for (const back of mappings.values()) void back.then((s) => s.close());
    },
  };
  front.on('message', (msg, from) => {
    if (isRtp(msg) && random() * 100 < opts.lossPercent) {
      relay.dropped++;
      return;
    }
    relay.up++;
    void mapping(from).then((back) => back.send(msg, opts.target.port, opts.target.address));
  });
  return relay;
}

/** RTP, not RTCP (RFC 7983 demultiplexing: first byte 128–191; RTCP packet types 192–223). */
function isRtp(msg: Buffer): boolean {
  const b0 = msg[0] ?? 0;
  const b1 = msg[1] ?? 0;
  return b0 >= 128 && b0 <= 191 && !(b1 >= 192 && b1 <= 223);
}

/** The first IPv4 UDP host candidate of an SDP answer: what the relay forwards to. */
export function candidateTarget(answer: string): { address: string; port: number } | undefined {
  const m = /^a=candidate:\S+ 1 udp \d+ (\d+\.\d+\.\d+\.\d+) (\d+) typ host/m.exec(answer);
  return m ? { address: m[1]!, port: Number(m[2]) } : undefined;
}

/** The answer with the relay in place of that candidate (in every media section) and no other. */
export function answerThroughRelay(answer: string, target: { address: string; port: number }, relay: { address: string; port: number }): string {
  const lines = answer.split('\r\n').flatMap((line) => {
    if (!line.startsWith('a=candidate:')) return [line];
    if (!line.includes(` ${target.address} ${target.port} typ host`)) return [];
    return [line.replace(` ${target.address} ${target.port} typ host`, ` ${relay.address} ${relay.port} typ host`)];
  });
  return lines.join('\r\n');
}
