import { Type, type Static, type TSchema } from 'typebox';
import {
  DeleteRecordingAfterDays,
  LiveInputLadder,
  LiveInputMeta,
  LiveInputStatus,
  RecordingSettings,
  UID_PATTERN,
} from '../state/live-input-record.ts';
import { API_ERRORS } from './errors.ts';

/**
 * One schema per thing: each validates requests (TypeBox), types the handlers (type provider) and
 * documents the API (OpenAPI). Field names follow Cloudflare Stream's live inputs.
 */

export const UidParams = Type.Object({
  uid: Type.String({ pattern: UID_PATTERN, description: 'Live input id: 32 lowercase hex characters' }),
});

const RecordingChanges = Type.Partial(RecordingSettings, { additionalProperties: false });

/** Create: every field optional; unknown fields are rejected, not ignored, so typos surface. */
export const LiveInputCreate = Type.Object(
  {
    meta: Type.Optional(LiveInputMeta),
    enabled: Type.Optional(Type.Boolean({ description: 'A disabled live input refuses publishers' })),
    recording: Type.Optional(RecordingChanges),
    deleteRecordingAfterDays: Type.Optional(DeleteRecordingAfterDays),
    ladder: Type.Optional(LiveInputLadder),
  },
  { additionalProperties: false },
);
export type LiveInputCreate = Static<typeof LiveInputCreate>;

/** Update: a partial change. `meta` replaces the stored meta; `recording` merges field by field. */
export const LiveInputUpdate = Type.Object(
  {
    meta: Type.Optional(LiveInputMeta),
    enabled: Type.Optional(Type.Boolean()),
    recording: Type.Optional(RecordingChanges),
    deleteRecordingAfterDays: Type.Optional(DeleteRecordingAfterDays),
    ladder: Type.Optional(LiveInputLadder),
  },
  { additionalProperties: false },
);
export type LiveInputUpdate = Static<typeof LiveInputUpdate>;

const Timestamp = Type.String({ format: 'date-time' });

/** A live input as the API shows it, with its ingest URLs and stream key. */
export const LiveInput = Type.Object({
  uid: Type.String(),
  meta: LiveInputMeta,
  enabled: Type.Boolean(),
  recording: RecordingSettings,
  deleteRecordingAfterDays: DeleteRecordingAfterDays,
  ladder: LiveInputLadder,
  rtmp: Type.Object({
    url: Type.String({ description: 'RTMP ingest URL; publish to <url>/<streamKey>' }),
    streamKey: Type.String({ description: 'Secret: anyone with it can publish' }),
  }),
  rtmps: Type.Optional(
    Type.Object(
      {
        url: Type.String({ description: 'RTMPS ingest URL; publish to <url>/<streamKey>' }),
        streamKey: Type.String({ description: 'Secret: the same key as rtmp.streamKey' }),
      },
      { description: 'Present when the server runs RTMPS (a certificate is configured)' },
    ),
  ),
  srt: Type.Optional(
    Type.Object(
      {
        url: Type.String({ description: 'SRT listener; publish MPEG-TS to <url>?streamid=<streamId>&passphrase=<passphrase>' }),
        streamId: Type.String({ description: 'Secret: the stream key (also accepted as #!::r=<streamId>,m=publish)' }),
        passphrase: Type.String({ description: 'Secret: SRT encryption passphrase, rotated with the stream key' }),
      },
      { description: 'Present when the server runs SRT ingest' },
    ),
  ),
  webRTC: Type.Object({ url: Type.String({ description: 'WHIP endpoint' }) }),
  webRTCPlayback: Type.Optional(
    Type.Object(
      { url: Type.String({ description: 'WHEP endpoint: POST an SDP offer (application/sdp) to play the live stream over WebRTC; a signed token may stand in for the uid or come as Authorization: Bearer' }) },
      { description: 'Present when the server runs WHEP playback' },
    ),
  ),
  status: LiveInputStatus,
  created: Timestamp,
  modified: Timestamp,
});
export type LiveInput = Static<typeof LiveInput>;

/** What a list shows per live input: no stream key, so a list never spreads secrets. */
export const LiveInputSummary = Type.Object({
  uid: Type.String(),
  meta: LiveInputMeta,
  enabled: Type.Boolean(),
  deleteRecordingAfterDays: DeleteRecordingAfterDays,
  status: LiveInputStatus,
  created: Timestamp,
  modified: Timestamp,
});
export type LiveInputSummary = Static<typeof LiveInputSummary>;

export const LiveInputListQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
  cursor: Type.Optional(Type.String({ maxLength: 200, description: 'From the previous page' })),
});

export const LiveInputList = Type.Object({
  liveInputs: Type.Array(LiveInputSummary),
  range: Type.Integer({ description: 'The page size used' }),
  total: Type.Integer(),
  cursor: Type.Optional(Type.String({ description: 'Pass as ?cursor= for the next page; absent on the last' })),
});

/** The state a live layer reports for a connected input; overrides the stored status. */
export type LiveStatusView = NonNullable<LiveInputStatus>;

/** Cloudflare's response envelope. */
export function Envelope<T extends TSchema>(result: T) {
  return Type.Object({
    result,
    success: Type.Literal(true),
    errors: Type.Array(Type.Unknown(), { maxItems: 0 }),
    messages: Type.Array(Type.String()),
  });
}

export function ok<T>(result: T): { result: T; success: true; errors: never[]; messages: string[] } {
  return { result, success: true, errors: [], messages: [] };
}

export const ErrorEnvelope = Type.Object(
  {
    result: Type.Null(),
    success: Type.Literal(false),
    errors: Type.Array(
      Type.Object({
        code: Type.Enum(Object.keys(API_ERRORS) as (keyof typeof API_ERRORS)[]),
        message: Type.String(),
      }),
    ),
    messages: Type.Array(Type.String()),
  },
  { description: 'Error: `errors[0].code` is stable, `message` is for humans' },
);

/** The error responses every authenticated route can give, for the docs. */
export const commonErrorResponses = {
  400: ErrorEnvelope,
  401: ErrorEnvelope,
  413: ErrorEnvelope,
  415: ErrorEnvelope,
  500: ErrorEnvelope,
  503: ErrorEnvelope,
};
