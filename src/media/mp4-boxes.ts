/**
 * Small, bounds-checked helpers for reading ISO BMFF (MP4) boxes. Every read that would go past
 * the end of its box throws an `Fmp4Error` instead of returning garbage, so hostile input fails
 * fast in one place.
 */

export type Fmp4ErrorCode =
  | 'INVALID_BOX_SIZE'
  | 'INVALID_BOX_TYPE'
  | 'BOX_TOO_LARGE'
  | 'UNSUPPORTED_BOX_SIZE'
  | 'TRUNCATED_BOX'
  | 'TRUNCATED_STREAM'
  | 'MISSING_BOX'
  | 'FRAGMENT_BEFORE_INIT'
  | 'MOOF_WITHOUT_MDAT'
  | 'UNEXPECTED_MDAT'
  | 'UNKNOWN_TRACK'
  | 'MISSING_SAMPLE_DURATION'
  | 'READER_FAILED';

export class Fmp4Error extends Error {
  readonly code: Fmp4ErrorCode;

  constructor(code: Fmp4ErrorCode, message: string) {
    super(message);
    this.name = 'Fmp4Error';
    this.code = code;
  }
}

export interface BoxHeader {
  type: string;
  /** Total size including the header; for a size-0 ("to the end") box, the bytes up to `end`. */
  size: number;
  headerSize: number;
}

/** A box inside a parent buffer: `start` is the header offset, payload is [payloadStart, end). */
export interface Box {
  type: string;
  start: number;
  payloadStart: number;
  end: number;
}

/** True when all four bytes of a box type are printable ASCII, as every registered type is. */
export function isPrintableType(buf: Buffer, offset: number): boolean {
  for (let i = offset; i < offset + 4; i++) {
    const c = buf[i];
    if (c === undefined || c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

/**
 * Reads a box header at `offset`. Returns undefined when fewer bytes than the header are
 * available. `size` 0 means "extends to the end of the enclosing space" and is returned as 0;
 * callers decide whether that is allowed where they are.
 */
export function readBoxHeader(buf: Buffer, offset: number, end: number = buf.length): BoxHeader | undefined {
  if (end - offset < 8) return undefined;
  const size32 = buf.readUInt32BE(offset);
  const type = buf.toString('latin1', offset + 4, offset + 8);
  if (size32 === 1) {
    if (end - offset < 16) return undefined;
    const large = buf.readBigUInt64BE(offset + 8);
    if (large < 16n) throw new Fmp4Error('INVALID_BOX_SIZE', `box '${printable(type)}' has 64-bit size ${large} < 16`);
    // Anything past 2^53 is far beyond any size limit; clamp so comparisons stay exact.
    const size = large > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(large);
    return { type, size, headerSize: 16 };
  }
  if (size32 !== 0 && size32 < 8) {
    throw new Fmp4Error('INVALID_BOX_SIZE', `box '${printable(type)}' has size ${size32} < 8`);
  }
  return { type, size: size32, headerSize: 8 };
}

/** Lists the child boxes in [start, end) of `buf`, requiring them to tile the range exactly. */
export function childBoxes(buf: Buffer, start: number, end: number): Box[] {
  const boxes: Box[] = [];
  let offset = start;
  while (offset < end) {
    const header = readBoxHeader(buf, offset, end);
    if (!header) throw new Fmp4Error('TRUNCATED_BOX', `truncated box header at offset ${offset}`);
    const size = header.size === 0 ? end - offset : header.size;
    if (size < header.headerSize || offset + size > end) {
      throw new Fmp4Error('TRUNCATED_BOX', `box '${printable(header.type)}' (${size} bytes) overruns its parent`);
    }
    boxes.push({ type: header.type, start: offset, payloadStart: offset + header.headerSize, end: offset + size });
    offset += size;
  }
  return boxes;
}

export function findChild(buf: Buffer, parent: Box, type: string): Box | undefined {
  return childBoxes(buf, parent.payloadStart, parent.end).find((b) => b.type === type);
}

export function requireChild(buf: Buffer, parent: Box, type: string): Box {
  const box = findChild(buf, parent, type);
  if (!box) throw new Fmp4Error('MISSING_BOX', `'${parent.type}' has no '${type}' box`);
  return box;
}

/** A read cursor confined to one box payload. */
export class BoxCursor {
  readonly buf: Buffer;
  offset: number;
  readonly end: number;
  readonly boxType: string;

  constructor(buf: Buffer, box: Box | { payloadStart: number; end: number; type: string }) {
    this.buf = buf;
    this.offset = box.payloadStart;
    this.end = box.end;
    this.boxType = box.type;
  }

  get remaining(): number {
    return this.end - this.offset;
  }

  need(n: number): void {
    if (n < 0 || this.offset + n > this.end) {
      throw new Fmp4Error('TRUNCATED_BOX', `'${printable(this.boxType)}' box is truncated`);
    }
  }

  skip(n: number): void {
    this.need(n);
    this.offset += n;
  }

  u8(): number {
    this.need(1);
    return this.buf.readUInt8(this.offset++);
  }

  u16(): number {
    this.need(2);
    const v = this.buf.readUInt16BE(this.offset);
    this.offset += 2;
    return v;
  }

  u24(): number {
    this.need(3);
    const v = this.buf.readUIntBE(this.offset, 3);
    this.offset += 3;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.offset);
    this.offset += 4;
    return v;
  }

  i32(): number {
    this.need(4);
    const v = this.buf.readInt32BE(this.offset);
    this.offset += 4;
    return v;
  }

  /** 64-bit unsigned as a number; values beyond 2^53 lose precision, which no real timestamp reaches. */
  u64(): number {
    this.need(8);
    const v = this.buf.readBigUInt64BE(this.offset);
    this.offset += 8;
    return Number(v);
  }

  fourcc(): string {
    this.need(4);
    const v = this.buf.toString('latin1', this.offset, this.offset + 4);
    this.offset += 4;
    return v;
  }

  /** Version and flags of a FullBox. */
  fullBox(): { version: number; flags: number } {
    const version = this.u8();
    const flags = this.u24();
    return { version, flags };
  }
}

/** A box type safe to put in an error message (hostile input may hold control bytes). */
export function printable(type: string): string {
  return type.replace(/[^\x20-\x7e]/g, '?');
}
