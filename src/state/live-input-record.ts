import { randomBytes } from 'node:crypto';
import { Type, type Static } from 'typebox';
import { Compile } from 'typebox/compile';

/**
 * The persisted live input: its schema (shared with the API's request schemas so that there is one
 * definition of each field), defaults, and the pure functions that build, patch and check a record.
 */

export const META_MAX_BYTES = 16 * 1024;
export const UID_PATTERN = '^[0-9a-f]{32}$';
// `sk_` makes a leaked key recognisable to secret scanners; 32 random bytes as hex are URL-safe in RTMP paths.
export const STREAM_KEY_PATTERN = '^sk_[0-9a-f]{64}$';
// SRT allows 10–79 characters; alphanumerics keep it safe in srt:// URLs and publisher configs.
export const SRT_PASSPHRASE_PATTERN = '^[0-9A-Za-z]{10,79}$';
const UID_RE = new RegExp(UID_PATTERN);
const STREAM_KEY_RE = new RegExp(STREAM_KEY_PATTERN);

/** Cloudflare's live input states, plus `disconnected` as the resting state after a session ends. */
export const LIVE_INPUT_STATES = [
  'connected',
  'reconnecting',
  'reconnected',
  'disconnected',
  'client_disconnect',
  'ttl_exceeded',
  'failed_to_connect',
  'failed_to_reconnect',
  'new_configuration_accepted',
] as const;
export type LiveInputState = (typeof LIVE_INPUT_STATES)[number];

export const LiveInputMeta = Type.Object(
  { name: Type.Optional(Type.String({ maxLength: 1024, description: 'Display name' })) },
  { additionalProperties: true, description: `Free-form metadata; at most ${META_MAX_BYTES} bytes as JSON` },
);
export type LiveInputMeta = Static<typeof LiveInputMeta> & Record<string, unknown>;

export const RecordingSettings = Type.Object(
  {
    mode: Type.Enum(['automatic', 'off'], { description: 'Record every session to a VOD asset, or not' }),
    timeoutSeconds: Type.Integer({
      minimum: 0,
      maximum: 3600,
      description: 'How long a disconnected session may reconnect before the recording is finalized',
    }),
    requireSignedURLs: Type.Boolean({ description: 'Playback requires a signed token' }),
    allowedOrigins: Type.Array(Type.String({ minLength: 1, maxLength: 253 }), {
      maxItems: 100,
      description: 'Origins allowed to embed the player; empty allows all',
    }),
    hideLiveViewerCount: Type.Boolean(),
  },
  { additionalProperties: false },
);
export type RecordingSettings = Static<typeof RecordingSettings>;

/** A per-input transcoding ladder (Tributary extension); null: the server's default ladder. */
export const LiveInputLadder = Type.Union(
  [
    Type.Null(),
    Type.Array(
      Type.Object(
        {
          name: Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,31}$' }),
          height: Type.Integer({ minimum: 144, maximum: 4320 }),
          videoBitrateKbps: Type.Integer({ minimum: 100, maximum: 100_000 }),
          audioBitrateKbps: Type.Integer({ minimum: 32, maximum: 512 }),
        },
        { additionalProperties: false },
      ),
      { maxItems: 8 },
    ),
  ],
  { description: 'Renditions transcoded below the source height (never upscaled); null: the server default; [] : source copy only' },
);
export type LiveInputLadder = Static<typeof LiveInputLadder>;

export const DeleteRecordingAfterDays = Type.Union([Type.Integer({ minimum: 1, maximum: 36500 }), Type.Null()], {
  description: 'Days after which recordings are deleted; null keeps them',
});

/** What the live layer observed about the publisher's media (present while connected). */
export const IngestHealth = Type.Object(
  {
    videoCodec: Type.Optional(Type.String()),
    audioCodec: Type.Optional(Type.String()),
    width: Type.Optional(Type.Integer()),
    height: Type.Optional(Type.Integer()),
    keyframeIntervalSeconds: Type.Optional(Type.Number()),
    bframes: Type.Boolean(),
    bitrateKbps: Type.Optional(Type.Number()),
    renditions: Type.Array(Type.String()),
    issues: Type.Array(Type.Object({ code: Type.String(), message: Type.String() })),
  },
  { description: 'Source codecs, keyframe interval, B-frames and problems found, while connected' },
);

const StatusEntry = Type.Object({
  state: Type.Enum([...LIVE_INPUT_STATES]),
  statusEnteredAt: Type.String({ format: 'date-time' }),
  /** Why the state was entered (a session's end reason, a refusal). */
  reason: Type.Optional(Type.String()),
});

export const STATUS_HISTORY_LENGTH = 10;

export const LiveInputStatus = Type.Union([
  Type.Null(),
  Type.Object({
    current: Type.Object({
      state: Type.Enum([...LIVE_INPUT_STATES]),
      statusEnteredAt: Type.String({ format: 'date-time' }),
      reason: Type.Optional(
        Type.String({ description: "Why the state was entered: a session's end reason, a refusal, or node_lost when its node died" }),
      ),
      ingestProtocol: Type.Optional(Type.String()),
      health: Type.Optional(IngestHealth),
    }),
    history: Type.Optional(
      Type.Array(StatusEntry, { maxItems: STATUS_HISTORY_LENGTH, description: 'The states before the current one, newest first' }),
    ),
  }),
]);
export type LiveInputStatus = Static<typeof LiveInputStatus>;

/** The status after entering `state`: the previous current state moves to the front of the history. */
export function enterState(status: LiveInputStatus, state: LiveInputState, at: Date, reason?: string): NonNullable<LiveInputStatus> {
  const history = [];
  if (status) {
    const { state: previous, statusEnteredAt, reason: previousReason } = status.current;
    history.push({ state: previous, statusEnteredAt, ...(previousReason ? { reason: previousReason } : {}) }, ...(status.history ?? []));
  }
  return {
    current: { state, statusEnteredAt: at.toISOString(), ...(reason ? { reason } : {}) },
    history: history.slice(0, STATUS_HISTORY_LENGTH),
  };
}

// Records written by a newer version may carry extra fields; reading them must not fail.
const LiveInputRecordSchema = Type.Object({
  uid: Type.String({ pattern: UID_PATTERN }),
  meta: LiveInputMeta,
  enabled: Type.Boolean(),
  recording: RecordingSettings,
  deleteRecordingAfterDays: DeleteRecordingAfterDays,
  // Optional: records written before the field existed read as the server default.
  ladder: Type.Optional(LiveInputLadder),
  streamKey: Type.String({ pattern: STREAM_KEY_PATTERN }),
  // Optional: records written before SRT ingest have none until their keys are rotated.
  srtPassphrase: Type.Optional(Type.String({ pattern: SRT_PASSPHRASE_PATTERN })),
  status: LiveInputStatus,
  created: Type.String(),
  modified: Type.String(),
});
export interface LiveInputRecord extends Omit<Static<typeof LiveInputRecordSchema>, 'meta'> {
  meta: LiveInputMeta;
}

/** What a caller may set on create or update; omitted fields keep their default / current value. */
export interface LiveInputChanges {
  meta?: LiveInputMeta;
  enabled?: boolean;
  recording?: Partial<RecordingSettings>;
  deleteRecordingAfterDays?: number | null;
  ladder?: LiveInputLadder;
}

export const DEFAULT_RECORDING: RecordingSettings = {
  mode: 'off',
  timeoutSeconds: 0,
  requireSignedURLs: false,
  allowedOrigins: [],
  hideLiveViewerCount: false,
};

const checkRecord = Compile(LiveInputRecordSchema);

/** A record that would break a rule (meta too large, out-of-range value): the caller's fault. */
export class LiveInputInvalidError extends Error {
  readonly field: string;
  constructor(field: string, message: string) {
    super(message);
    this.name = 'LiveInputInvalidError';
    this.field = field;
  }
}

/** A stored record that fails its schema: data corruption or a bad manual edit, never the caller's fault. */
export class CorruptRecordError extends Error {
  constructor(key: string, detail: string) {
    super(`stored record ${key} is corrupt: ${detail}`);
    this.name = 'CorruptRecordError';
  }
}

export function newUid(): string {
  return randomBytes(16).toString('hex');
}

export function newStreamKey(): string {
  return `sk_${randomBytes(32).toString('hex')}`;
}

/** The SRT passphrase of a live input: 32 hex characters (128 bits), rotated with the stream key. */
export function newSrtPassphrase(): string {
  return randomBytes(16).toString('hex');
}

export function isUid(value: string): boolean {
  return UID_RE.test(value);
}

/** Cheap format check so that ingest can refuse garbage without touching Redis. */
export function isStreamKeyFormat(value: string): boolean {
  return STREAM_KEY_RE.test(value);
}

export function buildRecord(changes: LiveInputChanges, now: Date): LiveInputRecord {
  const at = now.toISOString();
  const record: LiveInputRecord = {
    uid: newUid(),
    meta: changes.meta ?? {},
    enabled: changes.enabled ?? true,
    recording: { ...DEFAULT_RECORDING, ...stripUndefined(changes.recording ?? {}) },
    deleteRecordingAfterDays: changes.deleteRecordingAfterDays ?? null,
    ladder: changes.ladder ?? null,
    streamKey: newStreamKey(),
    srtPassphrase: newSrtPassphrase(),
    status: null,
    created: at,
    modified: at,
  };
  assertValid(record);
  return record;
}

/** Meta is replaced as a whole (it is the caller's document); recording settings merge field by field. */
export function applyChanges(record: LiveInputRecord, changes: LiveInputChanges, now: Date): LiveInputRecord {
  const next: LiveInputRecord = {
    ...record,
    meta: changes.meta ?? record.meta,
    enabled: changes.enabled ?? record.enabled,
    recording: { ...record.recording, ...stripUndefined(changes.recording ?? {}) },
    deleteRecordingAfterDays:
      changes.deleteRecordingAfterDays === undefined ? record.deleteRecordingAfterDays : changes.deleteRecordingAfterDays,
    ladder: changes.ladder === undefined ? (record.ladder ?? null) : changes.ladder,
    modified: now.toISOString(),
  };
  assertValid(next);
  return next;
}

export function assertValid(record: LiveInputRecord): void {
  const names = (record.ladder ?? []).map((r) => r.name);
  if (new Set(names).size !== names.length || names.includes('source')) {
    throw new LiveInputInvalidError('ladder', 'ladder rendition names must be unique and not "source"');
  }
  const metaBytes = Buffer.byteLength(JSON.stringify(record.meta));
  if (metaBytes > META_MAX_BYTES) {
    throw new LiveInputInvalidError('meta', `meta must be at most ${META_MAX_BYTES} bytes as JSON (got ${metaBytes})`);
  }
  if (!checkRecord.Check(record)) {
    const first = [...checkRecord.Errors(record)].find((e) => e.keyword !== 'boolean');
    const field = first?.instancePath.replace(/^\//, '').replaceAll('/', '.') || 'record';
    throw new LiveInputInvalidError(field, `${field} ${first?.message ?? 'is invalid'}`);
  }
}

/** A compiled TypeBox schema, as far as reading stored JSON needs it. */
interface StoredSchema {
  Check(value: unknown): boolean;
  Errors(value: unknown): Iterable<{ instancePath: string; message: string }>;
}

/** Parses a stored JSON record and checks it against its schema; corruption is a clear error. */
export function parseStoredRecord<T>(key: string, raw: string, schema: StoredSchema): T {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw new CorruptRecordError(key, 'not valid JSON');
  }
  if (!schema.Check(value)) {
    const first = [...schema.Errors(value)][0];
    throw new CorruptRecordError(key, `${first?.instancePath || '/'} ${first?.message ?? 'fails the schema'}`);
  }
  return value as T;
}

export function parseRecord(key: string, raw: string): LiveInputRecord {
  return parseStoredRecord<LiveInputRecord>(key, raw, checkRecord);
}

function stripUndefined<T extends object>(obj: T): Partial<T> {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined)) as Partial<T>;
}
