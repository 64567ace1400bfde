/**
 * Reads an Ogg Opus byte stream incrementally (FFmpeg writing `-f ogg pipe:`), pure: push chunks,
 * get back the Opus packets completed so far (RFC 7845; the OpusHead and OpusTags headers are
 * skipped). Throws on bytes that are not Ogg; after a throw, start a new reader.
 */

const PAGE_HEADER = 27;
const MAX_PACKET = 64 * 1024;

export class OggOpusReader {
  #buffer: Buffer = Buffer.alloc(0);
  /** The part of a packet continued on the next page. */
  #partial: Buffer[] = [];
  #partialBytes = 0;

  push(chunk: Buffer): Buffer[] {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    const packets: Buffer[] = [];
    let p = 0;
    const b = this.#buffer;
    while (p + PAGE_HEADER <= b.length) {
      if (b.toString('latin1', p, p + 4) !== 'OggS') throw new Error('not an Ogg stream');
      const segments = b[p + 26] ?? 0;
      if (p + PAGE_HEADER + segments > b.length) break;
      const table = b.subarray(p + PAGE_HEADER, p + PAGE_HEADER + segments);
      let bodySize = 0;
      for (const s of table) bodySize += s;
      const end = p + PAGE_HEADER + segments + bodySize;
      if (end > b.length) break;
      const continued = ((b[p + 5] ?? 0) & 0x01) !== 0;
      if (!continued) this.#dropPartial();
      let q = p + PAGE_HEADER + segments;
      let start = q;
      for (const s of table) {
        q += s;
        if (s === 255) continue;
        this.#append(b.subarray(start, q));
        const packet = this.#take();
        if (packet && !isHeader(packet)) packets.push(packet);
        start = q;
      }
      if (start < q) this.#append(b.subarray(start, q));
      p = end;
    }
    this.#buffer = p === 0 ? b : Buffer.from(b.subarray(p));
    return packets;
  }

  #append(part: Buffer): void {
    if (part.length === 0) return;
    this.#partialBytes += part.length;
    if (this.#partialBytes > MAX_PACKET) throw new Error('Ogg packet too large');
    this.#partial.push(Buffer.from(part));
  }

  #take(): Buffer | undefined {
    if (this.#partial.length === 0) return undefined;
    const packet = this.#partial.length === 1 ? (this.#partial[0] as Buffer) : Buffer.concat(this.#partial);
    this.#dropPartial();
    return packet;
  }

  #dropPartial(): void {
    this.#partial = [];
    this.#partialBytes = 0;
  }
}

function isHeader(packet: Buffer): boolean {
  const head = packet.toString('latin1', 0, 8);
  return head === 'OpusHead' || head === 'OpusTags';
}

/** Samples at 48 kHz in one Opus packet, from its TOC byte and frame count (RFC 6716 §3.1). */
export function opusPacketSamples(packet: Buffer): number {
  const toc = packet[0];
  if (toc === undefined) return 0;
  const config = toc >> 3;
  let frameSamples: number;
  if (config < 12) frameSamples = [480, 960, 1920, 2880][config & 3] ?? 960;
  else if (config < 16) frameSamples = (config & 1) === 0 ? 480 : 960;
  else frameSamples = [120, 240, 480, 960][config & 3] ?? 960;
  const code = toc & 3;
  const frames = code === 0 ? 1 : code === 1 || code === 2 ? 2 : (packet[1] ?? 0) & 0x3f;
  return frameSamples * frames;
}
