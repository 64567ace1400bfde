/**
 * The in-memory sliding window of one rendition: its init segment(s), the last N complete
 * segments, and the parts of the segment in progress. Resolves served file names strictly, so a
 * name is either one of ours still in the window or nothing.
 */
import type { Part, Segment } from './segmenter.ts';

export interface WindowSegment extends Segment {
  /** Name of the init segment this segment decodes with. */
  initName: string;
  /** First segment after an FFmpeg restart (EXT-X-DISCONTINUITY). */
  discontinuity: boolean;
}

export interface RenditionWindowOptions {
  /** Random per-session name prefix: lower-case letters and digits. */
  prefix: string;
  /** Complete segments kept (default 10). */
  maxSegments?: number;
}

interface InitEntry {
  name: string;
  data: Buffer;
}

const PREFIX_PATTERN = /^[0-9a-z]{4,32}$/;
// Numbers without leading zeros and short enough to be exact, so one resource has one name.
const NUM = '(0|[1-9][0-9]{0,14})';
const INIT_NAME = new RegExp(`^init-([0-9a-z]{4,32})(?:-([1-9][0-9]{0,8}))?\\.mp4$`);
const SEGMENT_NAME = new RegExp(`^seg-([0-9a-z]{4,32})-${NUM}\\.m4s$`);
const PART_NAME = new RegExp(`^part-([0-9a-z]{4,32})-${NUM}-${NUM}\\.m4s$`);

interface OpenSegment {
  msn: number;
  parts: Part[];
  /** Wall clock of its first part, ms since epoch. */
  programDateTime: number;
  duration: number;
}

/** A position in the stream: a part of a segment. */
export interface PartPosition {
  msn: number;
  part: number;
}

export class RenditionWindow {
  readonly prefix: string;
  readonly maxSegments: number;
  #segments: WindowSegment[] = [];
  #inits: InitEntry[] = [];
  #initVersion = -1;
  #open: OpenSegment | undefined;
  #pendingDiscontinuity = false;
  #mediaSequence = 0;
  #discontinuitySequence = 0;

  constructor(opts: RenditionWindowOptions) {
    if (!PREFIX_PATTERN.test(opts.prefix)) throw new RangeError('prefix must be 4–32 lower-case letters or digits');
    this.prefix = opts.prefix;
    this.maxSegments = opts.maxSegments ?? 10;
    if (!Number.isInteger(this.maxSegments) || this.maxSegments < 1) throw new RangeError('maxSegments must be ≥ 1');
  }

  get segments(): readonly WindowSegment[] {
    return this.#segments;
  }

  /** MSN of the first segment in the window (EXT-X-MEDIA-SEQUENCE). */
  get mediaSequence(): number {
    return this.#segments[0]?.msn ?? this.#mediaSequence;
  }

  /** Discontinuity tags that have left the window (EXT-X-DISCONTINUITY-SEQUENCE). */
  get discontinuitySequence(): number {
    return this.#discontinuitySequence;
  }

  /** Name of the current init segment, once one was set. */
  get initName(): string | undefined {
    return this.#inits[this.#inits.length - 1]?.name;
  }

  get openSegment(): Readonly<OpenSegment> | undefined {
    return this.#open;
  }

  /** The segment in progress starts a discontinuity (its parts follow an FFmpeg restart). */
  get openDiscontinuity(): boolean {
    return this.#open !== undefined && this.#pendingDiscontinuity;
  }

  /** MSN of the last complete segment, -1 before the first. */
  get lastMsn(): number {
    return this.#segments[this.#segments.length - 1]?.msn ?? this.#mediaSequence - 1;
  }

  /** The newest part, in the open segment or else the last complete one. */
  get lastPart(): PartPosition | undefined {
    if (this.#open && this.#open.parts.length > 0) return { msn: this.#open.msn, part: this.#open.parts.length - 1 };
    const last = this.#segments[this.#segments.length - 1];
    return last ? { msn: last.msn, part: last.parts.length - 1 } : undefined;
  }

  /**
   * Blocking reload (rfc8216bis 6.2.5.2): true once the playlist holds segment `msn` complete
   * (no part given) or part `part` of segment `msn` or later. A part index past the last part of
   * a complete segment means part 0 of the next one. A segment that has already left the window
   * counts as reached: the client gets the whole current playlist.
   */
  reached(msn: number, part?: number): boolean {
    const last = this.lastMsn;
    if (part === undefined) return last >= msn;
    if (msn <= last) {
      const segment = this.#segment(msn);
      if (segment && part >= segment.parts.length) return this.reached(msn + 1, 0);
      return true;
    }
    const open = this.#open;
    if (!open) return false;
    return open.msn > msn || (open.msn === msn && open.parts.length > part);
  }

  /** True once part (`msn`, `part`) exists or never will (its segment closed without it, or moved on). */
  partSettled(msn: number, part: number): boolean {
    if (msn <= this.lastMsn) return true;
    const open = this.#open;
    return open !== undefined && (open.msn > msn || (open.msn === msn && open.parts.length > part));
  }

  /** Position named by a part file name of this window (any MSN), or undefined. */
  parsePartName(name: string): PartPosition | undefined {
    const m = PART_NAME.exec(name);
    if (!m || m[1] !== this.prefix) return undefined;
    return { msn: Number(m[2]), part: Number(m[3]) };
  }

  /**
   * Sets the init segment. Identical bytes keep the current name; different bytes get a new
   * name (`init-<prefix>-<n>.mp4`) so a cached old init is never mixed with new media.
   */
  setInit(data: Buffer): string {
    const current = this.#inits[this.#inits.length - 1];
    if (current && current.data.equals(data)) return current.name;
    this.#initVersion++;
    const name =
      this.#initVersion === 0 ? `init-${this.prefix}.mp4` : `init-${this.prefix}-${this.#initVersion}.mp4`;
    this.#inits.push({ name, data });
    this.#pruneInits();
    return name;
  }

  /** The next segment to be added starts a discontinuity (FFmpeg restarted). */
  markDiscontinuity(): void {
    this.#pendingDiscontinuity = true;
  }

  /** A part of the segment in progress arrived; `programDateTime` is the segment's (ms since epoch). */
  addPart(msn: number, part: Part, programDateTime = 0): void {
    if (!this.#open || this.#open.msn !== msn) this.#open = { msn, parts: [], programDateTime, duration: 0 };
    this.#open.parts.push(part);
    this.#open.duration += part.duration;
  }

  /** A segment completed; older segments beyond `maxSegments` leave the window. */
  addSegment(segment: Segment): WindowSegment {
    const initName = this.initName;
    if (initName === undefined) throw new Error('addSegment before setInit');
    const last = this.#segments[this.#segments.length - 1];
    if (last && segment.msn <= last.msn) throw new RangeError(`segment ${segment.msn} is not after ${last.msn}`);
    const entry: WindowSegment = { ...segment, initName, discontinuity: this.#pendingDiscontinuity };
    this.#pendingDiscontinuity = false;
    this.#segments.push(entry);
    if (this.#open?.msn === segment.msn) this.#open = undefined;
    while (this.#segments.length > this.maxSegments) {
      const removed = this.#segments.shift();
      if (removed?.discontinuity) this.#discontinuitySequence++;
      if (removed) this.#mediaSequence = removed.msn + 1;
    }
    this.#pruneInits();
    return entry;
  }

  /** Bytes for a served file name, or undefined for anything that is not ours and in the window. */
  lookup(name: string): Buffer | undefined {
    let m = SEGMENT_NAME.exec(name);
    if (m) {
      if (m[1] !== this.prefix) return undefined;
      return this.#segment(Number(m[2]))?.data;
    }
    m = PART_NAME.exec(name);
    if (m) {
      if (m[1] !== this.prefix) return undefined;
      const msn = Number(m[2]);
      const index = Number(m[3]);
      const parts = this.#open?.msn === msn ? this.#open.parts : this.#segment(msn)?.parts;
      return parts?.[index]?.data;
    }
    m = INIT_NAME.exec(name);
    if (m) {
      if (m[1] !== this.prefix) return undefined;
      return this.#inits.find((i) => i.name === name)?.data;
    }
    return undefined;
  }

  segmentName(msn: number): string {
    return `seg-${this.prefix}-${msn}.m4s`;
  }

  partName(msn: number, index: number): string {
    return `part-${this.prefix}-${msn}-${index}.m4s`;
  }

  #segment(msn: number): WindowSegment | undefined {
    const first = this.#segments[0];
    if (!first) return undefined;
    const candidate = this.#segments[msn - first.msn];
    return candidate?.msn === msn ? candidate : this.#segments.find((s) => s.msn === msn);
  }

  /** Keeps the current init and those still referenced by a segment in the window. */
  #pruneInits(): void {
    const current = this.#inits[this.#inits.length - 1];
    const used = new Set(this.#segments.map((s) => s.initName));
    this.#inits = this.#inits.filter((i) => i === current || used.has(i.name));
  }
}
