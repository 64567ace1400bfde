import ipaddr from 'ipaddr.js';

/**
 * Token access rules, Cloudflare's shape: `{ type: any | ip.src | ip.geoip.country, action:
 * allow | block, ip?: [CIDR], country?: [ISO2] }`. Pure: parsing (shared by the signing route and
 * the verifier) and evaluation. First match wins; no match allows.
 *
 * Decisions:
 * - IPv4 and IPv6 are separate families: an IPv4 rule never matches an IPv6 viewer and `::/0`
 *   matches only IPv6 viewers. An IPv4-mapped IPv6 address (`::ffff:1.2.3.4`, what a dual-stack
 *   socket reports for an IPv4 client) is the IPv4 address it maps, both as a viewer address and
 *   in a rule (`::ffff:1.2.3.0/120` is `1.2.3.0/24`).
 * - A CIDR may have host bits set (`10.1.2.3/8` is `10.0.0.0/8`); a bare address is /32 or /128.
 *   IPv4 must be dotted four-part decimal (no `0x7f.1` or `127.1` forms).
 * - A country rule that is reached while the viewer's country is unknown fails closed with
 *   `COUNTRY_UNKNOWN`, whatever its action: an allow-list must not let unknown viewers in, and a
 *   block-list cannot tell that the viewer is not in a blocked country.
 */

export const MAX_ACCESS_RULES = 5;
export const MAX_RULE_ENTRIES = 256;

export type RuleAction = 'allow' | 'block';
export type AccessRule =
  | { type: 'any'; action: RuleAction }
  | { type: 'ip.src'; action: RuleAction; ip: string[] }
  | { type: 'ip.geoip.country'; action: RuleAction; country: string[] };

export interface Viewer {
  ip: string;
  country?: string | undefined;
  /** Why the country is unknown (no GeoIP database, no record for the address), for the message. */
  countryError?: string;
}

export type RuleDecision =
  | { allowed: true }
  | { allowed: false; code: 'ACCESS_RULE_BLOCKED' | 'COUNTRY_UNKNOWN'; message: string };

export type ParseRulesResult = { ok: true; rules: AccessRule[] } | { ok: false; message: string };

const RULE_TYPES = ['any', 'ip.src', 'ip.geoip.country'] as const;

// ISO 3166-1 alpha-2 assigned codes, plus XK (Kosovo), which GeoIP databases use.
const COUNTRY_CODES = new Set(
  (
    'AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ ' +
    'CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR ' +
    'GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP ' +
    'KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS ' +
    'MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS ' +
    'RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW ' +
    'TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW XK'
  ).split(' '),
);

export function isCountryCode(code: string): boolean {
  return COUNTRY_CODES.has(code);
}

type Addr = ipaddr.IPv4 | ipaddr.IPv6;
type Range = [Addr, number];

/** Parses an address, mapping `::ffff:a.b.c.d` to IPv4; undefined when not a valid address. */
export function parseAddress(text: string): Addr | undefined {
  if (text.length > 64) return undefined;
  // A zone id (fe80::1%eth0) means nothing here.
  const bare = text.includes('%') ? text.slice(0, text.indexOf('%')) : text;
  try {
    if (ipaddr.IPv4.isValidFourPartDecimal(bare)) return ipaddr.IPv4.parse(bare);
    if (!bare.includes(':') || !ipaddr.IPv6.isValid(bare)) return undefined;
    const v6 = ipaddr.IPv6.parse(bare);
    return v6.isIPv4MappedAddress() ? v6.toIPv4Address() : v6;
  } catch {
    return undefined;
  }
}

/** Parses `addr/prefix` or a bare address into a range, normalising IPv4-mapped ranges to IPv4. */
export function parseCidr(text: string): Range | undefined {
  const slash = text.indexOf('/');
  const addrText = slash === -1 ? text : text.slice(0, slash);
  const prefixText = slash === -1 ? undefined : text.slice(slash + 1);
  if (addrText.includes('%')) return undefined;
  let addr: Addr;
  try {
    if (ipaddr.IPv4.isValidFourPartDecimal(addrText)) addr = ipaddr.IPv4.parse(addrText);
    else if (addrText.includes(':') && ipaddr.IPv6.isValid(addrText)) addr = ipaddr.IPv6.parse(addrText);
    else return undefined;
  } catch {
    return undefined;
  }
  const max = addr.kind() === 'ipv4' ? 32 : 128;
  let prefix = max;
  if (prefixText !== undefined) {
    if (!/^\d{1,3}$/.test(prefixText)) return undefined;
    prefix = Number(prefixText);
    if (prefix > max) return undefined;
  }
  if (addr instanceof ipaddr.IPv6 && addr.isIPv4MappedAddress() && prefix >= 96) {
    return [addr.toIPv4Address(), prefix - 96];
  }
  return [addr, prefix];
}

/**
 * Checks an untrusted value (a signing request body or a token claim) and returns typed rules, or
 * a message naming the first problem: `accessRules[1].ip[0] "10.0.0.0/33" is not a valid CIDR`.
 */
export function parseAccessRules(value: unknown, where = 'accessRules'): ParseRulesResult {
  if (!Array.isArray(value)) return { ok: false, message: `${where} must be an array` };
  if (value.length > MAX_ACCESS_RULES) {
    return { ok: false, message: `${where} may have at most ${MAX_ACCESS_RULES} rules (got ${value.length})` };
  }
  const rules: AccessRule[] = [];
  for (const [i, raw] of value.entries()) {
    const at = `${where}[${i}]`;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      return { ok: false, message: `${at} must be an object` };
    }
    const r = raw as Record<string, unknown>;
    const type = r['type'];
    const action = r['action'];
    if (typeof type !== 'string' || !(RULE_TYPES as readonly string[]).includes(type)) {
      return { ok: false, message: `${at}.type must be one of ${RULE_TYPES.join(', ')} (got ${show(type)})` };
    }
    if (action !== 'allow' && action !== 'block') {
      return { ok: false, message: `${at}.action must be allow or block (got ${show(action)})` };
    }
    const allowed = type === 'any' ? ['type', 'action'] : type === 'ip.src' ? ['type', 'action', 'ip'] : ['type', 'action', 'country'];
    const extra = Object.keys(r).find((k) => !allowed.includes(k));
    if (extra !== undefined) return { ok: false, message: `${at} has unknown field "${extra}" for type ${type}` };

    if (type === 'any') {
      rules.push({ type: 'any', action });
    } else if (type === 'ip.src') {
      const list = checkList(r['ip'], `${at}.ip`);
      if (typeof list === 'string') return { ok: false, message: list };
      for (const [j, cidr] of list.entries()) {
        if (!parseCidr(cidr)) return { ok: false, message: `${at}.ip[${j}] ${show(cidr)} is not a valid IPv4 or IPv6 CIDR` };
      }
      rules.push({ type: 'ip.src', action, ip: list });
    } else {
      const list = checkList(r['country'], `${at}.country`);
      if (typeof list === 'string') return { ok: false, message: list };
      for (const [j, code] of list.entries()) {
        if (!isCountryCode(code)) {
          return {
            ok: false,
            message: `${at}.country[${j}] ${show(code)} is not an ISO 3166-1 alpha-2 country code (two uppercase letters, e.g. "GB")`,
          };
        }
      }
      rules.push({ type: 'ip.geoip.country', action, country: list });
    }
  }
  return { ok: true, rules };
}

function checkList(value: unknown, at: string): string[] | string {
  if (!Array.isArray(value) || value.length === 0) return `${at} must be a non-empty array of strings`;
  if (value.length > MAX_RULE_ENTRIES) return `${at} may have at most ${MAX_RULE_ENTRIES} entries`;
  if (!value.every((v): v is string => typeof v === 'string' && v.length <= 64)) {
    return `${at} must contain only strings (at most 64 characters each)`;
  }
  return value;
}

function show(v: unknown): string {
  const s = typeof v === 'string' ? JSON.stringify(v) : v === undefined ? 'nothing' : JSON.stringify(v) ?? String(v);
  return s.length > 70 ? `${s.slice(0, 70)}…` : s;
}

// Parsed CIDRs per rule object: a cached token's rules are parsed once, not on every request.
const compiled = new WeakMap<object, Range[]>();

function rangesOf(rule: { ip: string[] }): Range[] {
  let ranges = compiled.get(rule);
  if (!ranges) {
    ranges = rule.ip.map(parseCidr).filter((r): r is Range => r !== undefined);
    compiled.set(rule, ranges);
  }
  return ranges;
}

/** Whether any rule needs the viewer's country (so the caller can skip the lookup). */
export function needsCountry(rules: readonly AccessRule[] | undefined): boolean {
  return rules?.some((r) => r.type === 'ip.geoip.country') ?? false;
}

/**
 * First match wins; no match allows. Rules are expected to have passed parseAccessRules (invalid
 * CIDRs in an unchecked rule simply never match). An unparseable viewer address fails closed at the
 * first ip.src rule (it cannot happen with a socket address; it is not worth a way around a rule).
 */
export function evaluateRules(rules: readonly AccessRule[] | undefined, viewer: Viewer): RuleDecision {
  if (!rules || rules.length === 0) return { allowed: true };
  let addr: Addr | undefined | null = null;
  for (const [i, rule] of rules.entries()) {
    let matched = false;
    if (rule.type === 'any') {
      matched = true;
    } else if (rule.type === 'ip.src') {
      if (addr === null) addr = parseAddress(viewer.ip);
      const a = addr;
      if (!a) {
        return { allowed: false, code: 'ACCESS_RULE_BLOCKED', message: `access rule ${i} needs a valid viewer address` };
      }
      matched = rangesOf(rule).some(([net, bits]) => net.kind() === a.kind() && a.match(net, bits));
    } else {
      if (viewer.country === undefined) {
        return {
          allowed: false,
          code: 'COUNTRY_UNKNOWN',
          message: `access rule ${i} needs the viewer's country, which is unknown${viewer.countryError ? ` (${viewer.countryError})` : ''}`,
        };
      }
      matched = rule.country.includes(viewer.country);
    }
    if (matched) {
      return rule.action === 'allow'
        ? { allowed: true }
        : { allowed: false, code: 'ACCESS_RULE_BLOCKED', message: `blocked by access rule ${i} (${rule.type})` };
    }
  }
  return { allowed: true };
}
