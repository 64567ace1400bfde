import { parseAddress, parseCidr } from './access-rules.ts';

/**
 * Who is asking: the viewer's address and, when a trusted proxy or CDN says so, their country.
 *
 * The socket peer is the client unless it is a trusted proxy (`access.trustedProxies`). Then
 * X-Forwarded-For is walked right to left, skipping trusted hops; the first untrusted address is
 * the client. Entries to the left of it were written by the client itself and are never believed.
 * A malformed entry stops the walk at the last trusted hop (who evidently could not vouch for
 * more). A country header (`access.countryHeader`, e.g. CF-IPCountry) is read only when the socket
 * peer is trusted.
 */

export type HeaderMap = Record<string, string | string[] | undefined>;

export interface ClientInfo {
  /** The viewer's address, IPv4-mapped IPv6 shown as IPv4. */
  ip: string;
  /** An ISO country code from a trusted CDN header, when present and well-formed. */
  headerCountry?: string;
}

type Range = NonNullable<ReturnType<typeof parseCidr>>;

/** A parsed list of trusted proxy CIDRs. Construct once from config; invalid entries throw. */
export class TrustedProxies {
  readonly #ranges: Range[];

  constructor(cidrs: readonly string[]) {
    this.#ranges = cidrs.map((c) => {
      const range = parseCidr(c.trim());
      if (!range) throw new Error(`access.trustedProxies: "${c}" is not a valid IPv4 or IPv6 CIDR`);
      return range;
    });
  }

  get empty(): boolean {
    return this.#ranges.length === 0;
  }

  /** `ip` must already be normalised by parseAddress. */
  #contains(addr: NonNullable<ReturnType<typeof parseAddress>>): boolean {
    return this.#ranges.some(([net, bits]) => net.kind() === addr.kind() && addr.match(net, bits));
  }

  has(ip: string): boolean {
    const addr = parseAddress(ip);
    return addr !== undefined && this.#contains(addr);
  }
}

export interface ClientInfoOptions {
  trustedProxies: TrustedProxies;
  /** Header name (any case) carrying the viewer's country, set by a trusted CDN. */
  countryHeader?: string | undefined;
}

const MAX_XFF_ENTRIES = 32;

export function clientInfo(remoteAddress: string, headers: HeaderMap, opts: ClientInfoOptions): ClientInfo {
  const peer = parseAddress(remoteAddress);
  const peerText = peer ? peer.toString() : remoteAddress;
  if (!peer || opts.trustedProxies.empty || !opts.trustedProxies.has(peerText)) return { ip: peerText };

  let ip = peerText;
  const hops = forwardedFor(headers['x-forwarded-for']);
  for (let i = hops.length - 1; i >= 0 && i >= hops.length - MAX_XFF_ENTRIES; i--) {
    const hop = parseAddress(stripPort(hops[i] ?? ''));
    if (!hop) break;
    ip = hop.toString();
    if (!opts.trustedProxies.has(ip)) break;
  }

  const info: ClientInfo = { ip };
  if (opts.countryHeader) {
    const country = countryFromHeader(headers[opts.countryHeader.toLowerCase()]);
    if (country) info.headerCountry = country;
  }
  return info;
}

/** Every X-Forwarded-For entry in order, across repeated headers. */
function forwardedFor(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  const joined = Array.isArray(value) ? value.join(',') : value;
  if (joined.length > 4096) return [];
  return joined
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/** `1.2.3.4:5678` → `1.2.3.4`; `[2001:db8::1]:443` → `2001:db8::1`; other forms unchanged. */
function stripPort(entry: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(entry);
  if (bracketed?.[1]) return bracketed[1];
  const v4port = /^(\d{1,3}(?:\.\d{1,3}){3}):\d+$/.exec(entry);
  if (v4port?.[1]) return v4port[1];
  return entry;
}

/**
 * A CDN's country header: two letters. `XX` (Cloudflare: unknown) and `T1` (Cloudflare: Tor) and
 * anything else malformed count as unknown, so country rules fail closed for them.
 */
export function countryFromHeader(value: string | string[] | undefined): string | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined) return undefined;
  const code = v.trim().toUpperCase();
  if (!/^[A-Z]{2}$/.test(code) || code === 'XX' || code === 'ZZ') return undefined;
  return code;
}
