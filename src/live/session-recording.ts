import type { Logger } from '../observability/logger.ts';
import { Fmp4Reader } from '../media/fmp4-reader.ts';
import type { LiveSession } from './live-session.ts';
import type { LiveRecording, RecordedInit } from './recording-contract.ts';

/**
 * Feeds a session's finished segments (every rendition, with their init segments) to a recording
 * until the session ends. Runs inside the packager's event: it never throws into it.
 */
export function recordSegments(session: LiveSession, recording: LiveRecording, log: Logger): void {
  const inits = new Map<string, RecordedInit>();
  const unsubscribe = session.hls.onSegment((event) => {
    try {
      const key = `${event.rendition}/${event.init.name}`;
      let init = inits.get(key);
      if (!init) {
        init = describeInit(event.init.name, event.init.data);
        inits.set(key, init);
      }
      recording.addSegment({
        rendition: event.rendition,
        name: `seg-${session.hls.prefix}-${event.segment.msn}.m4s`,
        duration: event.segment.duration,
        data: event.segment.data,
        init,
        discontinuity: event.segment.discontinuity,
      });
    } catch (error) {
      log.error({ err: error, liveInput: session.liveInputUid, rendition: event.rendition }, 'could not hand a segment to the recording');
    }
  });
  session.on('ended', () => unsubscribe());
}

/** Codecs and size of an init segment, read from its moov. */
function describeInit(name: string, data: Buffer): RecordedInit {
  const init: RecordedInit = { name, data, codecs: [] };
  const event = new Fmp4Reader().push(data).find((e) => e.type === 'init');
  if (event?.type !== 'init') return init;
  const video = event.init.tracks.find((t) => t.kind === 'video');
  const audio = event.init.tracks.find((t) => t.kind === 'audio');
  init.codecs = [video?.codec, audio?.codec].filter((c): c is string => !!c);
  if (video?.width) init.width = video.width;
  if (video?.height) init.height = video.height;
  return init;
}
