import type { VideoEvent } from '../events/event-bus.ts';
import type { VideoRecord, VideoRepository, VideoStatus } from '../state/video-repo.ts';

export type EmitVideoEvent = (event: VideoEvent) => void;

/**
 * Moves a video to a new `status` (with any other changes) and tells listeners when the state
 * changed. Undefined when the video is gone (deleted meanwhile).
 */
export async function setVideoStatus(
  videos: VideoRepository,
  emit: EmitVideoEvent,
  uid: string,
  status: VideoStatus,
  change: (r: VideoRecord) => VideoRecord = (r) => r,
): Promise<VideoRecord | undefined> {
  let before: VideoStatus['state'] | undefined;
  const record = await videos.update(uid, (r) => {
    before = r.status.state;
    return { ...change(r), status };
  });
  if (record && before !== status.state) {
    emit({
      type: 'video.state',
      videoUid: uid,
      state: status.state,
      ...(status.errorReasonCode !== undefined ? { errorReasonCode: status.errorReasonCode } : {}),
    });
  }
  return record;
}
