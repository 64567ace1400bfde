import { createRequire } from 'node:module';

/**
 * Typed access to node-media-server's RTMP protocol codec (pinned at 4.4.3; the package has no
 * exports map, so its CommonJS files are loaded by path). Only what our glue uses is declared.
 */

export interface NmsRtmpHeader {
  fmt: number;
  cid: number;
  timestamp: number;
  length: number;
  type: number;
  stream_id: number;
}

export interface NmsRtmpPacket {
  header: NmsRtmpHeader;
  /** Absolute timestamp of the message being assembled (ms). */
  clock: number;
  /** Reassembly buffer, reused for every message on the chunk stream. */
  payload: Buffer;
  capacity: number;
  /** Bytes of the current message received so far. */
  bytes: number;
}

/** A decoded AMF0 command: `cmd` plus the named arguments for known commands. */
export interface NmsInvokeMessage {
  cmd?: unknown;
  transId?: unknown;
  cmdObj?: unknown;
  streamName?: unknown;
  [key: string]: unknown;
}

export interface NmsStatusOptions {
  cmd: string;
  transId: number;
  cmdObj: unknown;
  info: unknown;
}

/** The instance surface of `Rtmp` from node-media-server/src/protocol/rtmp.js. */
export interface NmsRtmp {
  handshakeState: number;
  parserPacket: NmsRtmpPacket;
  inPackets: Map<number, NmsRtmpPacket>;
  inChunkSize: number;
  outChunkSize: number;
  streams: number;
  streamApp?: string;
  streamHost?: string;
  objectEncoding?: number;
  connectCmdObj?: unknown;

  onOutputCallback: (buffer: Buffer) => void;
  onPacketCallback: (packet: unknown) => void;

  parserData(buffer: Buffer): string | null;
  packetAlloc(): void;
  chunkMessageHeaderRead(): number;
  packetHandler(): void;
  controlHandler(): void;
  eventHandler(): void;
  invokeHandler(): void;
  dataHandler(): void;
  onCreateStream(invokeMessage: NmsInvokeMessage): void;
  sendACK(size: number): void;
  sendWindowACK(size: number): void;
  setPeerBandwidth(size: number, type: number): void;
  setChunkSize(size: number): void;
  sendStreamStatus(status: number, streamId: number): void;
  sendInvokeMessage(streamId: number, options: NmsStatusOptions): void;
  sendStatusMessage(streamId: number, level: string, code: string, description: string): void;
  respondConnect(transId: number): void;
}

export type NmsRtmpConstructor = new () => NmsRtmp;

export interface NmsAmf {
  decodeAmf0Cmd(buffer: Buffer): NmsInvokeMessage;
}

interface NmsLogger {
  log(message: string, level?: string): void;
}

const require = createRequire(import.meta.url);

export const NmsRtmpBase = require('node-media-server/src/protocol/rtmp.js') as NmsRtmpConstructor;
export const nmsAmf = require('node-media-server/src/protocol/amf.js') as NmsAmf;

// The codec logs garbage input ("Unknown field", …) straight to stdout through its own
// singleton logger. We log protocol errors ourselves, rate-limited, so silence it.
const nmsLogger = require('node-media-server/src/core/logger.js') as NmsLogger;
nmsLogger.log = () => {};
