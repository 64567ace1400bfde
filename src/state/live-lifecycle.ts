import type { LiveInputRepository } from './live-input-repo.ts';
import type { VideoRepository } from './video-repo.ts';

/** What a live input or video id is, and whether it is on air (`/{id}/lifecycle`, `/{id}/views`). */
export interface LiveLifecycle {
  isInput: boolean;
  videoUID: string | null;
  live: boolean;
  liveInputUid: string | null;
  hideLiveViewerCount: boolean;
}

/** A broadcast is on: from the stored state, so that every node agrees. */
export function isLiveState(state: string | undefined): boolean {
  return state === 'connected' || state === 'reconnected';
}

/**
 * Reads the lifecycle of a live input uid (its recording in progress, if any) or of a video uid
 * (live while it is being recorded and its input is connected); undefined for neither.
 */
export async function readLifecycle(
  liveInputs: LiveInputRepository,
  videos: VideoRepository,
  uid: string,
): Promise<LiveLifecycle | undefined> {
  const input = await liveInputs.get(uid);
  if (input) {
    const live = isLiveState(input.status?.current.state);
    // The newest recording of the input, while it is being recorded (on any node).
    const newest = live ? (await videos.listByLiveInput(uid, { limit: 1 })).items[0] : undefined;
    const videoUID = newest?.status.state === 'live-inprogress' ? newest.uid : null;
    return { isInput: true, videoUID, live, liveInputUid: uid, hideLiveViewerCount: input.recording.hideLiveViewerCount };
  }
  const video = await videos.get(uid);
  if (!video) return undefined;
  const owner = video.liveInput ? await liveInputs.get(video.liveInput) : undefined;
  return {
    isInput: false,
    videoUID: uid,
    live: video.status.state === 'live-inprogress' && isLiveState(owner?.status?.current.state),
    liveInputUid: video.liveInput,
    hideLiveViewerCount: owner?.recording.hideLiveViewerCount ?? false,
  };
}
