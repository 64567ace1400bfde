/**
 * Reads one numeric property of an FLV `onMetaData` script tag (AMF0) without a full decoder:
 * the property name as an AMF0 key followed by the number marker and an IEEE 754 double.
 * Enough for `framerate`, `width`, `height`, `videodatarate`; undefined when absent or malformed.
 */
export function readMetadataNumber(data: Buffer, key: string): number | undefined {
  if (key.length === 0 || key.length > 64) return undefined;
  const needle = Buffer.alloc(2 + key.length + 1);
  needle.writeUInt16BE(key.length, 0);
  needle.write(key, 2, 'latin1');
  needle[needle.length - 1] = 0x00; // AMF0 number marker
  const at = data.indexOf(needle);
  if (at < 0 || at + needle.length + 8 > data.length) return undefined;
  const value = data.readDoubleBE(at + needle.length);
  return Number.isFinite(value) ? value : undefined;
}
