import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import type { LookupFunction } from 'node:net';
import ipaddr from 'ipaddr.js';

/**
 * Where webhooks may go (against SSRF): http(s) URLs whose host resolves only to public unicast
 * addresses, unless private targets are allowed in config (all of them, or some CIDRs). The check
 * runs when the URL is set and again inside every delivery's own DNS lookup, so a name that later
 * resolves to a private address (DNS rebinding) is refused at connect time. Redirects are never
 * followed, so a public target cannot bounce a delivery into the private network.
 */

export interface TargetPolicy {
  allowPrivateTargets: boolean;
  /** CIDRs allowed even though private. */
  privateTargetAllowlist: readonly string[];
}

export type TargetRefusalCode = 'URL_INVALID' | 'URL_SCHEME' | 'URL_CREDENTIALS' | 'TARGET_PRIVATE' | 'TARGET_UNRESOLVABLE';

export class TargetRefusedError extends Error {
  readonly code: TargetRefusalCode;
  constructor(code: TargetRefusalCode, message: string) {
    super(message);
    this.name = 'TargetRefusedError';
    this.code = code;
  }
}

type Lookup = (hostname: string, callback: (err: Error | null, addresses: LookupAddress[]) => void) => void;

const systemLookup: Lookup = (hostname, callback) => dnsLookup(hostname, { all: true, verbatim: true }, callback);

export const MAX_URL_LENGTH = 2048;

export class TargetGuard {
  readonly #allowAll: boolean;
  readonly #allowlist: Array<[ipaddr.IPv4 | ipaddr.IPv6, number]>;
  readonly #lookup: Lookup;

  constructor(policy: TargetPolicy, opts: { lookup?: Lookup } = {}) {
    this.#allowAll = policy.allowPrivateTargets;
    this.#allowlist = policy.privateTargetAllowlist.map((cidr) => ipaddr.parseCIDR(cidr));
    this.#lookup = opts.lookup ?? systemLookup;
  }

  /** Why an address may not be a target, or undefined when it may. */
  refusal(address: string): string | undefined {
    if (!ipaddr.isValid(address)) return `${address} is not an IP address`;
    let addr = ipaddr.parse(address);
    if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress()) addr = (addr as ipaddr.IPv6).toIPv4Address();
    const range = addr.range();
    if (range === 'unicast') return undefined;
    if (this.#allowAll) return undefined;
    if (this.#allowlist.some(([net, bits]) => net.kind() === addr.kind() && addr.match(net, bits))) return undefined;
    return `${address} is in a ${range} range; private targets are not allowed (webhooks.allowPrivateTargets)`;
  }

  /** Parses and checks a notification URL: scheme, no credentials, every resolved address. */
  async check(raw: string): Promise<URL> {
    const url = parseTarget(raw);
    await this.#resolve(url.hostname);
    return url;
  }

  /** A `lookup` for http.request that refuses private addresses at connect time. */
  readonly connectLookup: LookupFunction = (hostname, options, callback) => {
    this.#resolve(hostname).then(
      (addresses) => {
        if (options.all) callback(null, addresses);
        else callback(null, addresses[0]!.address, addresses[0]!.family);
      },
      (error: Error) => callback(error as NodeJS.ErrnoException, '', 0),
    );
  };

  #resolve(hostname: string): Promise<LookupAddress[]> {
    const host = hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
    // An address literal needs no resolver (and must not be handed to one that might rewrite it).
    const lookup: Lookup = ipaddr.isValid(host)
      ? (h, cb) => cb(null, [{ address: h, family: h.includes(':') ? 6 : 4 }])
      : this.#lookup;
    return new Promise((resolve, reject) => {
      lookup(host, (err, addresses) => {
        if (err || addresses.length === 0) {
          reject(new TargetRefusedError('TARGET_UNRESOLVABLE', `${host} does not resolve (${err?.message ?? 'no address'})`));
          return;
        }
        // Every address must pass: a resolver may hand out any of them on the next lookup.
        for (const a of addresses) {
          const why = this.refusal(a.address);
          if (why) {
            reject(new TargetRefusedError('TARGET_PRIVATE', `${host} resolves to ${why}`));
            return;
          }
        }
        resolve(addresses);
      });
    });
  }
}

/** The syntactic part of the check (no DNS). */
export function parseTarget(raw: string): URL {
  if (raw.length > MAX_URL_LENGTH) throw new TargetRefusedError('URL_INVALID', `the URL is longer than ${MAX_URL_LENGTH} characters`);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new TargetRefusedError('URL_INVALID', 'not a valid absolute URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new TargetRefusedError('URL_SCHEME', `scheme ${url.protocol.slice(0, 20)} is not allowed; use http or https`);
  }
  if (url.username || url.password) throw new TargetRefusedError('URL_CREDENTIALS', 'credentials in the URL are not allowed');
  if (!url.hostname) throw new TargetRefusedError('URL_INVALID', 'the URL has no host');
  return url;
}
