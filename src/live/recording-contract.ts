/**
 * The contract between the live layer and whatever records broadcasts (vod/Recorder), named here
 * where it is used: the session registry decides when a recording starts, continues after a
 * reconnect, and ends; the recorder decides where the bytes go.
 */

/** The live input settings a recording carries into its video. */
export interface RecordedInput {
  uid: string;
  meta: Record<string, unknown>;
  recording: {
    mode: 'automatic' | 'off';
    timeoutSeconds: number;
    requireSignedURLs: boolean;
    allowedOrigins: string[];
  };
  deleteRecordingAfterDays: number | null;
}

export interface RecordedInit {
  /** File name, unique within the rendition across sessions (it carries the session's prefix). */
  name: string;
  data: Buffer;
  /** RFC 6381 codecs of its tracks. */
  codecs: string[];
  width?: number;
  height?: number;
}

/** One finished segment of one rendition. */
export interface RecordedSegment {
  rendition: string;
  /** File name, unique within the rendition across sessions. */
  name: string;
  /** Seconds. */
  duration: number;
  data: Buffer;
  init: RecordedInit;
  /** Timestamps restart here within the session (FFmpeg restarted). */
  discontinuity: boolean;
}

/** One video being recorded, over one or more sessions (reconnects within the window). */
export interface LiveRecording {
  readonly videoUid: string;
  /** A session starts; from the second on, its first segment of each rendition is a discontinuity. */
  beginSession(sessionId: string): void;
  /** Called synchronously as segments finish; must not throw or block. */
  addSegment(segment: RecordedSegment): void;
  /** Turns what was recorded into a VOD asset. Idempotent; resolves when it is done or has failed (logged). */
  finalize(): Promise<void>;
}

export interface LiveRecorder {
  /** A new recording for a broadcast of `input`. */
  start(input: RecordedInput): LiveRecording;
}
