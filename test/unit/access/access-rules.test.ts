import { describe, expect, it } from 'vitest';
import { evaluateRules, parseAccessRules, parseCidr, type AccessRule } from '../../../src/access/access-rules.ts';

const ipRule = (action: 'allow' | 'block', ...ip: string[]): AccessRule => ({ type: 'ip.src', action, ip });
const countryRule = (action: 'allow' | 'block', ...country: string[]): AccessRule => ({
  type: 'ip.geoip.country',
  action,
  country,
});
const any = (action: 'allow' | 'block'): AccessRule => ({ type: 'any', action });

describe('evaluateRules', () => {
  const cases: [string, AccessRule[], { ip: string; country?: string }, boolean | string][] = [
    ['no rules allow', [], { ip: '1.2.3.4' }, true],
    ['any allow', [any('allow')], { ip: '1.2.3.4' }, true],
    ['any block', [any('block')], { ip: '1.2.3.4' }, 'ACCESS_RULE_BLOCKED'],
    ['no match allows', [ipRule('block', '10.0.0.0/8')], { ip: '1.2.3.4' }, true],
    ['first match wins (allow before block)', [ipRule('allow', '1.2.3.0/24'), any('block')], { ip: '1.2.3.4' }, true],
    ['first match wins (block before allow)', [ipRule('block', '1.2.3.0/24'), any('allow')], { ip: '1.2.3.4' }, 'ACCESS_RULE_BLOCKED'],
    ['allow-list misses → falls to block', [ipRule('allow', '1.2.3.0/24'), any('block')], { ip: '1.2.4.1' }, 'ACCESS_RULE_BLOCKED'],
    ['/32 exact', [ipRule('block', '203.0.113.7/32')], { ip: '203.0.113.7' }, 'ACCESS_RULE_BLOCKED'],
    ['/32 neighbour', [ipRule('block', '203.0.113.7/32')], { ip: '203.0.113.8' }, true],
    ['bare IPv4 = /32', [ipRule('block', '203.0.113.7')], { ip: '203.0.113.7' }, 'ACCESS_RULE_BLOCKED'],
    ['/0 matches every IPv4', [ipRule('block', '0.0.0.0/0')], { ip: '198.51.100.1' }, 'ACCESS_RULE_BLOCKED'],
    ['IPv4 /0 never matches IPv6', [ipRule('block', '0.0.0.0/0')], { ip: '2001:db8::1' }, true],
    ['::/0 never matches IPv4', [ipRule('block', '::/0')], { ip: '198.51.100.1' }, true],
    ['::/0 matches IPv6', [ipRule('block', '::/0')], { ip: '2001:db8::1' }, 'ACCESS_RULE_BLOCKED'],
    ['IPv6 /128 exact', [ipRule('block', '2001:db8::1/128')], { ip: '2001:db8::1' }, 'ACCESS_RULE_BLOCKED'],
    ['IPv6 /128 neighbour', [ipRule('block', '2001:db8::1/128')], { ip: '2001:db8::2' }, true],
    ['IPv6 /32', [ipRule('block', '2001:db8::/32')], { ip: '2001:db8:ffff::1' }, 'ACCESS_RULE_BLOCKED'],
    ['IPv6 /32 outside', [ipRule('block', '2001:db8::/32')], { ip: '2001:db9::1' }, true],
    ['host bits in rule are masked', [ipRule('block', '10.1.2.3/8')], { ip: '10.200.0.1' }, 'ACCESS_RULE_BLOCKED'],
    ['mapped viewer matches IPv4 rule', [ipRule('block', '1.2.3.0/24')], { ip: '::ffff:1.2.3.4' }, 'ACCESS_RULE_BLOCKED'],
    ['mapped rule matches IPv4 viewer', [ipRule('block', '::ffff:1.2.3.0/120')], { ip: '1.2.3.99' }, 'ACCESS_RULE_BLOCKED'],
    ['mapped rule misses other IPv4', [ipRule('block', '::ffff:1.2.3.0/120')], { ip: '1.2.4.1' }, true],
    ['invalid viewer address fails closed at an ip rule', [ipRule('allow', '1.2.3.0/24')], { ip: 'not-an-ip' }, 'ACCESS_RULE_BLOCKED'],
    ['country allow', [countryRule('allow', 'GB', 'FR'), any('block')], { ip: '1.1.1.1', country: 'FR' }, true],
    ['country allow-list miss', [countryRule('allow', 'GB'), any('block')], { ip: '1.1.1.1', country: 'US' }, 'ACCESS_RULE_BLOCKED'],
    ['country block', [countryRule('block', 'RU')], { ip: '1.1.1.1', country: 'RU' }, 'ACCESS_RULE_BLOCKED'],
    ['unknown country, allow rule → fail closed', [countryRule('allow', 'GB')], { ip: '1.1.1.1' }, 'COUNTRY_UNKNOWN'],
    ['unknown country, block rule → fail closed', [countryRule('block', 'RU')], { ip: '1.1.1.1' }, 'COUNTRY_UNKNOWN'],
    ['unknown country never reached', [ipRule('allow', '1.1.1.0/24'), countryRule('block', 'RU')], { ip: '1.1.1.1' }, true],
  ];
  it.each(cases)('%s', (_name, rules, viewer, expected) => {
    const decision = evaluateRules(rules, viewer);
    if (expected === true) expect(decision).toEqual({ allowed: true });
    else expect(decision).toMatchObject({ allowed: false, code: expected });
  });

  it('names the missing-country reason', () => {
    const d = evaluateRules([countryRule('allow', 'GB')], { ip: '10.0.0.1', countryError: 'no GeoIP database configured' });
    expect(d).toMatchObject({ allowed: false, code: 'COUNTRY_UNKNOWN' });
    expect(!d.allowed && d.message).toContain('no GeoIP database configured');
  });
});

describe('parseCidr', () => {
  it.each(['1.2.3.4/33', '2001:db8::/129', '1.2.3/24', '0x7f.0.0.1', '127.1', '1.2.3.4/', '1.2.3.4/-1', '1.2.3.4/ 8', 'fe80::1%eth0', '', 'example.com'])(
    'rejects %j',
    (text) => expect(parseCidr(text)).toBeUndefined(),
  );
  it.each(['0.0.0.0/0', '255.255.255.255/32', '::/0', '::1/128', '2001:db8::/32', '10.0.0.1'])('accepts %j', (text) =>
    expect(parseCidr(text)).toBeDefined(),
  );
});

describe('parseAccessRules', () => {
  const bad: [string, unknown, RegExp][] = [
    ['not an array', { type: 'any' }, /must be an array/],
    ['too many rules', Array.from({ length: 6 }, () => ({ type: 'any', action: 'allow' })), /at most 5 rules \(got 6\)/],
    ['unknown type', [{ type: 'ip.asn', action: 'allow' }], /accessRules\[0\]\.type must be one of any, ip\.src, ip\.geoip\.country/],
    ['unknown action', [{ type: 'any', action: 'deny' }], /accessRules\[0\]\.action must be allow or block \(got "deny"\)/],
    ['bad CIDR', [{ type: 'any', action: 'allow' }, { type: 'ip.src', action: 'allow', ip: ['10.0.0.0/33'] }], /accessRules\[1\]\.ip\[0\] "10\.0\.0\.0\/33" is not a valid/],
    ['empty ip list', [{ type: 'ip.src', action: 'allow', ip: [] }], /non-empty array/],
    ['lowercase country', [{ type: 'ip.geoip.country', action: 'allow', country: ['gb'] }], /"gb" is not an ISO 3166-1 alpha-2/],
    ['alpha-3 country', [{ type: 'ip.geoip.country', action: 'allow', country: ['GBR'] }], /"GBR" is not an ISO/],
    ['unassigned country', [{ type: 'ip.geoip.country', action: 'allow', country: ['QQ'] }], /"QQ" is not an ISO/],
    ['field of another type', [{ type: 'any', action: 'allow', ip: ['1.2.3.4'] }], /unknown field "ip" for type any/],
    ['null rule', [null], /must be an object/],
  ];
  it.each(bad)('rejects %s', (_name, value, message) => {
    const r = parseAccessRules(value);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.message).toMatch(message);
  });

  it('accepts Cloudflare\'s examples', () => {
    const r = parseAccessRules([
      { type: 'ip.geoip.country', action: 'allow', country: ['US', 'MX'] },
      { type: 'ip.src', action: 'allow', ip: ['93.184.216.0/24', '2400:cb00::/32'] },
      { type: 'any', action: 'block' },
    ]);
    expect(r.ok).toBe(true);
    expect(r.ok && r.rules).toHaveLength(3);
  });
});
