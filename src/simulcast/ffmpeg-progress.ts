/**
 * Pure: FFmpeg's `-progress` output (key=value lines, a block per report ending in
 * `progress=continue|end`), reduced to what a supervisor watches: bytes written so far.
 */
export class FfmpegProgress {
  #partial = '';
  #totalSize = 0;

  /** Feeds stdout text; returns the total bytes written when a report carried a larger figure. */
  push(text: string): number | undefined {
    const lines = (this.#partial + text).split('\n');
    this.#partial = (lines.pop() ?? '').slice(-200);
    let grew: number | undefined;
    for (const line of lines) {
      const m = /^total_size=(\d+)\s*$/.exec(line);
      if (!m) continue;
      const size = Number(m[1]);
      if (size > this.#totalSize) {
        this.#totalSize = size;
        grew = size;
      }
    }
    return grew;
  }

  get totalSize(): number {
    return this.#totalSize;
  }
}
