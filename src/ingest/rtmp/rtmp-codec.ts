import { NmsRtmpBase, nmsAmf, type NmsInvokeMessage } from './nms-rtmp.ts';

/**
 * node-media-server's RTMP chunk codec, hardened for hostile input and re-plumbed so that the
 * connection decides what happens on connect/publish/play. Pure: bytes in, callbacks out; it
 * throws `RtmpProtocolError` (or whatever the AMF decoder throws) on input it cannot accept, and
 * the caller closes the connection. After a throw the codec must not be fed again.
 */

export class RtmpProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RtmpProtocolError';
  }
}

export interface RtmpCodecEvents {
  /** Bytes to write to the peer. */
  output(buffer: Buffer): void;
  /** `connect` command: answer with `acceptConnect` or `rejectConnect`. */
  connect(request: { app: string; transId: number }): void;
  /** `publish` command: answer with `acceptPublish` or `rejectPublish`. */
  publish(request: { streamName: string; streamId: number }): void;
  play(request: { streamId: number }): void;
  /** `FCUnpublish` / `deleteStream` / `closeStream`: the publisher is done. */
  unpublish(): void;
  /** A media or script message. `body` is a view over a reused buffer: copy to keep. */
  media(type: 8 | 9 | 18, timestamp: number, body: Buffer): void;
}

export interface RtmpCodecLimits {
  /** Largest message accepted (audio/video frame, command). */
  maxMessageBytes: number;
  /** Sum of reassembly buffers over all chunk streams. */
  maxBufferedBytes: number;
  /** Distinct chunk stream ids a peer may use. */
  maxChunkStreams: number;
}

const RTMP_VERSION = 3;
const HANDSHAKE_UNINIT = 0;
const MAX_CHUNK_SIZE = 0x7fffffff;
const MAX_STREAMS = 8;
// The codec over-allocates every reassembly buffer by this much.
const ALLOC_SLACK = 1024;

const TYPE_SET_CHUNK_SIZE = 1;
const TYPE_ABORT = 2;
const TYPE_WINDOW_ACK_SIZE = 5;
const TYPE_AMF3_DATA = 15;
const TYPE_AMF3_COMMAND = 17;

export class RtmpCodec extends NmsRtmpBase {
  readonly #events: RtmpCodecEvents;
  #limits: RtmpCodecLimits;
  #connected = false;
  #mediaEnabled = false;
  #bytesIn = 0;
  #lastAck = 0;
  #ackWindow = 0;

  constructor(events: RtmpCodecEvents, limits: RtmpCodecLimits) {
    super();
    this.#events = events;
    this.#limits = limits;
    this.onOutputCallback = (buffer) => events.output(buffer);
  }

  /** Raises or lowers the limits, e.g. once a publisher is authenticated. */
  setLimits(limits: RtmpCodecLimits): void {
    this.#limits = limits;
  }

  override parserData(buffer: Buffer): string | null {
    // The codec never looks at C0; anything but plain RTMP (e.g. RTMPE, HTTP, TLS) is refused.
    if (this.handshakeState === HANDSHAKE_UNINIT && buffer.length > 0 && buffer[0] !== RTMP_VERSION) {
      throw new RtmpProtocolError('unsupported RTMP version');
    }
    const result = super.parserData(buffer);
    this.#bytesIn += buffer.length;
    // Acknowledge as the window asks; the codec never does, and some encoders stall without it.
    if (this.#connected && this.#ackWindow > 0 && this.#bytesIn - this.#lastAck >= this.#ackWindow) {
      this.#lastAck = this.#bytesIn;
      this.sendACK(this.#bytesIn % 2 ** 32);
    }
    return result;
  }

  override chunkMessageHeaderRead(): number {
    const packet = this.parserPacket;
    const previousLength = packet.header.length;
    const offset = super.chunkMessageHeaderRead();
    if (this.inPackets.size > this.#limits.maxChunkStreams) {
      throw new RtmpProtocolError('too many chunk streams');
    }
    // A new length in the middle of a message would make the reassembly index run backwards.
    if (packet.bytes > 0 && packet.header.length !== previousLength) {
      throw new RtmpProtocolError('message length changed mid-message');
    }
    if (packet.header.length > this.#limits.maxMessageBytes) {
      throw new RtmpProtocolError(`message of ${packet.header.length} bytes exceeds the limit`);
    }
    return offset;
  }

  override packetAlloc(): void {
    const packet = this.parserPacket;
    if (packet.capacity < packet.header.length) {
      let total = packet.header.length + ALLOC_SLACK;
      for (const other of this.inPackets.values()) if (other !== packet) total += other.capacity;
      if (total > this.#limits.maxBufferedBytes) throw new RtmpProtocolError('reassembly buffers exceed the limit');
    }
    super.packetAlloc();
  }

  override controlHandler(): void {
    const { type, length } = this.parserPacket.header;
    const payload = this.parserPacket.payload;
    if (type !== TYPE_SET_CHUNK_SIZE && type !== TYPE_ABORT && type !== TYPE_WINDOW_ACK_SIZE) return;
    // The codec reads these from a reused buffer without checking the length.
    if (length < 4) throw new RtmpProtocolError('short protocol control message');
    const value = payload.readUInt32BE(0);
    if (type === TYPE_SET_CHUNK_SIZE) {
      // 0 would divide by zero in the chunk parser; the top bit must be zero (RTMP §5.4.1).
      if (value < 1 || value > MAX_CHUNK_SIZE) throw new RtmpProtocolError(`invalid chunk size ${value}`);
      this.inChunkSize = value;
    } else if (type === TYPE_ABORT) {
      const aborted = this.inPackets.get(value);
      if (aborted && aborted !== this.parserPacket) aborted.bytes = 0;
    } else {
      this.#ackWindow = value;
    }
  }

  override invokeHandler(): void {
    const { type, length, stream_id: streamId } = this.parserPacket.header;
    // AMF3 command messages carry one format byte before the AMF0 body.
    const offset = type === TYPE_AMF3_COMMAND ? 1 : 0;
    if (length <= offset) throw new RtmpProtocolError('empty command message');
    const message = nmsAmf.decodeAmf0Cmd(this.parserPacket.payload.subarray(offset, length));
    const transId = typeof message.transId === 'number' && Number.isFinite(message.transId) ? message.transId : 0;
    switch (message.cmd) {
      case 'connect':
        this.#onConnect(message, transId);
        break;
      case 'createStream':
        this.#requireConnected();
        if (this.streams >= MAX_STREAMS) throw new RtmpProtocolError('too many streams');
        this.onCreateStream(message);
        break;
      case 'publish':
        this.#requireConnected();
        if (typeof message.streamName !== 'string') throw new RtmpProtocolError('publish without a stream name');
        this.#events.publish({ streamName: message.streamName, streamId });
        break;
      case 'play':
      case 'play2':
        this.#events.play({ streamId });
        break;
      case 'FCUnpublish':
      case 'deleteStream':
      case 'closeStream':
        this.#events.unpublish();
        break;
      default:
        // releaseStream, FCPublish, _checkbw, … need no answer from an ingest-only server.
        break;
    }
  }

  override dataHandler(): void {
    if (!this.#mediaEnabled) return;
    const { type, length } = this.parserPacket.header;
    if (length === 0) return;
    let body = this.parserPacket.payload.subarray(0, length);
    let tagType = type;
    if (type === TYPE_AMF3_DATA) {
      body = body.subarray(1);
      tagType = 18;
    }
    if (tagType === 8 || tagType === 9 || tagType === 18) this.#events.media(tagType, this.parserPacket.clock, body);
  }

  acceptConnect(transId: number): void {
    this.sendWindowACK(5_000_000);
    this.setPeerBandwidth(5_000_000, 2);
    this.setChunkSize(this.outChunkSize);
    this.respondConnect(transId);
  }

  rejectConnect(transId: number, description: string): void {
    this.sendInvokeMessage(0, {
      cmd: '_error',
      transId,
      cmdObj: null,
      info: { level: 'error', code: 'NetConnection.Connect.Rejected', description },
    });
  }

  /** Sends Publish.Start and lets media through. The description never names the stream. */
  acceptPublish(streamId: number): void {
    this.#mediaEnabled = true;
    this.sendStatusMessage(streamId, 'status', 'NetStream.Publish.Start', 'Publishing.');
  }

  rejectPublish(streamId: number, code: string, description: string): void {
    this.sendStatusMessage(streamId, 'error', code, description);
  }

  refusePlay(streamId: number): void {
    this.sendStatusMessage(streamId, 'error', 'NetStream.Play.Failed', 'Playback is not available over RTMP.');
  }

  #onConnect(message: NmsInvokeMessage, transId: number): void {
    if (this.#connected) throw new RtmpProtocolError('duplicate connect');
    const cmdObj = message.cmdObj;
    if (typeof cmdObj !== 'object' || cmdObj === null) throw new RtmpProtocolError('connect without a command object');
    const { app, tcUrl, objectEncoding } = cmdObj as Record<string, unknown>;
    if (typeof app !== 'string') throw new RtmpProtocolError('connect without an app');
    // The codec's `new URL(tcUrl)` throws on a missing or bad tcUrl; the host is informative only.
    this.streamHost = typeof tcUrl === 'string' ? (URL.parse(tcUrl)?.hostname ?? '') : '';
    this.streamApp = app;
    this.objectEncoding = typeof objectEncoding === 'number' ? objectEncoding : 0;
    this.connectCmdObj = cmdObj;
    this.#connected = true;
    this.#events.connect({ app, transId });
  }

  #requireConnected(): void {
    if (!this.#connected) throw new RtmpProtocolError('command before connect');
  }
}
