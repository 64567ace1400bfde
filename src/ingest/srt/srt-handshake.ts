/**
 * The plaintext part of SRT that a listener front needs: the control packet header and the
 * handshake (induction and conclusion, with the HSREQ / KMREQ / SID extensions).
 * Reference: draft-sharabayko-srt (SRT protocol), sections 3.2.1 and 4.3.
 * Pure functions of bytes; every length is checked so that any datagram can be fed in.
 */

export const HANDSHAKE_HEADER_BYTES = 16;
const HANDSHAKE_CIF_BYTES = 48;

export const HS_TYPE_INDUCTION = 0x00000001;
export const HS_TYPE_CONCLUSION = 0xffffffff;
/** A refused connection: the handshake type is this plus the reject reason. */
export const HS_TYPE_REJECT_BASE = 1000;
export const SRT_MAGIC = 0x4a17;

export const EXT_HSREQ = 1;
export const EXT_KMREQ = 3;
export const EXT_SID = 5;

/** Reject reasons (SRT_REJ_* and the access-control SRT_REJX_* codes of the SRT spec). */
export const REJECT = {
  badSecret: 10,
  unsecure: 11,
  unauthorized: 1401,
  forbidden: 1403,
  conflict: 1409,
  /** SRT_REJX_OVERLOAD: "too many requests" in the access-control table (HTTP's 429). */
  tooManyRequests: 1402,
  overload: 1503,
} as const;

export interface Handshake {
  destinationSocketId: number;
  timestamp: number;
  version: number;
  encryptionField: number;
  extensionField: number;
  initialSequence: number;
  mtu: number;
  flowWindow: number;
  type: number;
  socketId: number;
  cookie: number;
  peerIp: Buffer;
  extensions: Array<{ type: number; data: Buffer }>;
}

/** True for an SRT control packet of type handshake (the only thing a front answers before acceptance). */
export function isHandshakePacket(packet: Buffer): boolean {
  return packet.length >= HANDSHAKE_HEADER_BYTES + HANDSHAKE_CIF_BYTES && packet.readUInt16BE(0) === 0x8000;
}

/** Parses a handshake control packet; undefined when it is not one or is malformed. */
export function parseHandshake(packet: Buffer): Handshake | undefined {
  if (!isHandshakePacket(packet)) return undefined;
  const c = HANDSHAKE_HEADER_BYTES;
  const extensions: Handshake['extensions'] = [];
  let p = c + HANDSHAKE_CIF_BYTES;
  while (p + 4 <= packet.length) {
    const type = packet.readUInt16BE(p);
    const bytes = packet.readUInt16BE(p + 2) * 4;
    if (p + 4 + bytes > packet.length) return undefined;
    extensions.push({ type, data: packet.subarray(p + 4, p + 4 + bytes) });
    p += 4 + bytes;
  }
  if (p !== packet.length) return undefined;
  return {
    timestamp: packet.readUInt32BE(8),
    destinationSocketId: packet.readUInt32BE(12),
    version: packet.readUInt32BE(c),
    encryptionField: packet.readUInt16BE(c + 4),
    extensionField: packet.readUInt16BE(c + 6),
    initialSequence: packet.readUInt32BE(c + 8),
    mtu: packet.readUInt32BE(c + 12),
    flowWindow: packet.readUInt32BE(c + 16),
    type: packet.readUInt32BE(c + 20),
    socketId: packet.readUInt32BE(c + 24),
    cookie: packet.readUInt32BE(c + 28),
    peerIp: packet.subarray(c + 32, c + 48),
    extensions,
  };
}

export function encodeHandshake(hs: Omit<Handshake, 'extensions'>): Buffer {
  const packet = Buffer.alloc(HANDSHAKE_HEADER_BYTES + HANDSHAKE_CIF_BYTES);
  packet.writeUInt16BE(0x8000, 0); // control, type 0 = handshake
  packet.writeUInt32BE(hs.timestamp >>> 0, 8);
  packet.writeUInt32BE(hs.destinationSocketId >>> 0, 12);
  const c = HANDSHAKE_HEADER_BYTES;
  packet.writeUInt32BE(hs.version, c);
  packet.writeUInt16BE(hs.encryptionField, c + 4);
  packet.writeUInt16BE(hs.extensionField, c + 6);
  packet.writeUInt32BE(hs.initialSequence >>> 0, c + 8);
  packet.writeUInt32BE(hs.mtu >>> 0, c + 12);
  packet.writeUInt32BE(hs.flowWindow >>> 0, c + 16);
  packet.writeUInt32BE(hs.type >>> 0, c + 20);
  packet.writeUInt32BE(hs.socketId >>> 0, c + 24);
  packet.writeUInt32BE(hs.cookie >>> 0, c + 28);
  hs.peerIp.copy(packet, c + 32, 0, 16);
  return packet;
}

/** The same packet with another SYN cookie (the front's cookie swapped for the listener's). */
export function withCookie(packet: Buffer, cookie: number): Buffer {
  const copy = Buffer.from(packet);
  copy.writeUInt32BE(cookie >>> 0, HANDSHAKE_HEADER_BYTES + 28);
  return copy;
}

/** The answer to an induction request: HSv5, SRT magic, our cookie, the caller's own numbers echoed. */
export function inductionResponse(request: Handshake, cookie: number, listenerSocketId: number): Buffer {
  return encodeHandshake({
    timestamp: 0,
    destinationSocketId: request.socketId,
    version: 5,
    encryptionField: 0,
    extensionField: SRT_MAGIC,
    initialSequence: request.initialSequence,
    mtu: request.mtu,
    flowWindow: request.flowWindow,
    type: HS_TYPE_INDUCTION,
    socketId: listenerSocketId,
    cookie,
    peerIp: request.peerIp,
  });
}

/** A conclusion response that refuses the caller with `reason` (it reports it and gives up). */
export function rejectResponse(request: Handshake, reason: number, listenerSocketId: number): Buffer {
  return encodeHandshake({
    timestamp: 0,
    destinationSocketId: request.socketId,
    version: 5,
    encryptionField: 0,
    extensionField: 0,
    initialSequence: request.initialSequence,
    mtu: request.mtu,
    flowWindow: request.flowWindow,
    type: HS_TYPE_REJECT_BASE + reason,
    socketId: listenerSocketId,
    cookie: request.cookie,
    peerIp: request.peerIp,
  });
}

/**
 * The stream id of a conclusion request. SRT sends it as 32-bit words in little-endian order
 * ("abcd" travels as "dcba"), zero-padded to a whole word.
 */
export function streamIdOf(hs: Handshake): string | undefined {
  const ext = hs.extensions.find((e) => e.type === EXT_SID);
  if (!ext) return undefined;
  const bytes = Buffer.from(ext.data);
  for (let i = 0; i + 4 <= bytes.length; i += 4) bytes.subarray(i, i + 4).reverse();
  const end = bytes.indexOf(0);
  return bytes.subarray(0, end === -1 ? bytes.length : end).toString('utf8');
}

/** The key material request of a conclusion, if the caller encrypts. */
export function keyMaterialOf(hs: Handshake): Buffer | undefined {
  return hs.extensions.find((e) => e.type === EXT_KMREQ)?.data;
}

/**
 * The resource a stream id names: a plain id, or the access-control syntax
 * `#!::r=<resource>,m=publish` (other keys ignored; a mode other than publish is refused).
 */
export function parseStreamId(streamId: string): { resource: string } | { error: string } {
  if (!streamId.startsWith('#!::')) return { resource: streamId };
  const fields = new Map<string, string>();
  for (const pair of streamId.slice(4).split(',')) {
    const eq = pair.indexOf('=');
    if (eq <= 0) return { error: 'malformed access-control stream id' };
    fields.set(pair.slice(0, eq), pair.slice(eq + 1));
  }
  const mode = fields.get('m') ?? 'request';
  if (mode !== 'publish') return { error: `mode ${mode} is not supported (publish only)` };
  const resource = fields.get('r');
  if (!resource) return { error: 'no resource (r=) in the stream id' };
  return { resource };
}
