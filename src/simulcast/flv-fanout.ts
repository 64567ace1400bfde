import type { FlvTag } from '../media/flv-tag.ts';
import { encodeFlvHeader, encodeFlvTag, FLV_TAG_AUDIO, FLV_TAG_SCRIPT } from '../media/flv-tags.ts';

/** One encoded tag as every sink receives it (the same Buffer for all: sinks must not modify it). */
export interface FanoutTag {
  bytes: Buffer;
  /** A video keyframe (not a sequence header): where a sink may start. */
  keyframe: boolean;
}

export interface FlvSink {
  write(tag: FanoutTag): void;
}

// A publisher that never stops sending new codec configurations must not grow this without bound.
const MAX_HEADER_TAGS = 16;

/**
 * The source FLV of one live session, for many readers: each tag is encoded once and handed to
 * every sink; the stream's header, onMetaData and sequence headers are kept so that a sink that
 * (re)starts mid-stream can be given a decodable beginning. Sinks never block this: they queue
 * or drop on their own.
 */
export class FlvFanout {
  readonly #sinks = new Set<FlvSink>();
  #script: Buffer | undefined;
  readonly #sequenceHeaders = new Map<number, Buffer>();
  #hasAudio = false;
  #onSinkError: (error: unknown) => void;

  constructor(onSinkError: (error: unknown) => void = () => {}) {
    this.#onSinkError = onSinkError;
  }

  push(tag: FlvTag): void {
    if (tag.type === FLV_TAG_AUDIO) this.#hasAudio = true;
    if (tag.type === FLV_TAG_SCRIPT) {
      this.#script = encodeFlvTag({ ...tag, timestamp: 0 });
      return;
    }
    if (tag.sequenceHeader && (this.#sequenceHeaders.has(tag.type) || this.#sequenceHeaders.size < MAX_HEADER_TAGS)) {
      this.#sequenceHeaders.set(tag.type, encodeFlvTag({ ...tag, timestamp: 0 }));
    }
    if (this.#sinks.size === 0) return;
    const out: FanoutTag = { bytes: encodeFlvTag(tag), keyframe: tag.type === 9 && tag.keyframe && !tag.sequenceHeader };
    for (const sink of this.#sinks) {
      try {
        sink.write(out);
      } catch (error) {
        this.#onSinkError(error);
      }
    }
  }

  /** What a reader needs before its first keyframe: FLV header, onMetaData, sequence headers. */
  headers(): Buffer[] {
    const out = [encodeFlvHeader({ audio: this.#hasAudio, video: true })];
    if (this.#script) out.push(this.#script);
    out.push(...this.#sequenceHeaders.values());
    return out;
  }

  add(sink: FlvSink): void {
    this.#sinks.add(sink);
  }

  remove(sink: FlvSink): void {
    this.#sinks.delete(sink);
  }

  get sinkCount(): number {
    return this.#sinks.size;
  }
}
