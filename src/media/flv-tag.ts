/** One FLV tag as received from the publisher (RTMP message ≈ FLV tag). */
export interface FlvTag {
  /** 8 audio, 9 video, 18 script data. */
  type: 8 | 9 | 18;
  /** Decode timestamp in ms (32-bit, as on the wire). */
  timestamp: number;
  /** The tag body (what follows the 11-byte FLV tag header). Owned by the receiver: not reused. */
  data: Buffer;
  /** A video tag holding a keyframe (not a sequence header). */
  keyframe: boolean;
  /** An AVC/HEVC decoder configuration or AAC AudioSpecificConfig tag. */
  sequenceHeader: boolean;
}
