import { Type, type Static } from 'typebox';
import { UID_PATTERN } from '../state/live-input-record.ts';
import { OUTPUT_STREAM_KEY_MAX, OUTPUT_URL_MAX } from '../state/output-record.ts';

/** Simulcast outputs: Cloudflare Stream's `live_inputs/{uid}/outputs` shapes, plus a run `status`. */

export const OutputParams = Type.Object({
  uid: Type.String({ pattern: UID_PATTERN, description: 'Live input id' }),
  outputUid: Type.String({ pattern: UID_PATTERN, description: 'Output id: 32 lowercase hex characters' }),
});

const Url = Type.String({
  minLength: 1,
  maxLength: OUTPUT_URL_MAX,
  description: 'rtmp://, rtmps:// or srt:// target, e.g. rtmps://a.rtmps.youtube.com/live2 (SRT: srt://host:port, options as query)',
});
const StreamKey = Type.String({
  maxLength: OUTPUT_STREAM_KEY_MAX,
  description: 'Secret of the target: appended to an RTMP(S) url as its last path segment; the streamid of an SRT target',
});

export const OutputCreate = Type.Object(
  {
    url: Url,
    streamKey: Type.Optional(StreamKey),
    enabled: Type.Optional(Type.Boolean({ description: 'Default true; a disabled output is kept but not sent to' })),
  },
  { additionalProperties: false },
);
export type OutputCreate = Static<typeof OutputCreate>;

export const OutputUpdate = Type.Object(
  {
    url: Type.Optional(Url),
    streamKey: Type.Optional(StreamKey),
    enabled: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type OutputUpdate = Static<typeof OutputUpdate>;

export const OUTPUT_STATES = ['connecting', 'connected', 'reconnecting', 'idle', 'disabled'] as const;

export const OutputStatus = Type.Object(
  {
    current: Type.Object({
      state: Type.Enum([...OUTPUT_STATES], {
        description: 'idle: the input is not live (on this node); disabled: enabled is false',
      }),
      statusEnteredAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    }),
    lastError: Type.Union([
      Type.Null(),
      Type.Object({ message: Type.String(), at: Type.String({ format: 'date-time' }) }),
    ]),
    reconnects: Type.Integer({ description: 'Restarts during the current broadcast' }),
    bytesSent: Type.Integer({ description: 'Bytes sent to the target during the current broadcast' }),
    droppedTags: Type.Integer({ description: 'Source frames skipped because the target did not keep up' }),
  },
  { description: 'While the input is live: the restream to this target' },
);
export type OutputStatus = Static<typeof OutputStatus>;

export const Output = Type.Object({
  uid: Type.String(),
  url: Type.String(),
  streamKey: Type.String({ description: 'Secret of the target (returned as Cloudflare does)' }),
  enabled: Type.Boolean(),
  status: OutputStatus,
  created: Type.String({ format: 'date-time' }),
  modified: Type.String({ format: 'date-time' }),
});
export type Output = Static<typeof Output>;
