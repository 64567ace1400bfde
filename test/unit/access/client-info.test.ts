import { describe, expect, it } from 'vitest';
import { clientInfo, countryFromHeader, TrustedProxies } from '../../../src/access/client-info.ts';

const proxies = new TrustedProxies(['10.0.0.0/8', '2001:db8:aaaa::/48']);
const opts = { trustedProxies: proxies, countryHeader: 'CF-IPCountry' };

describe('clientInfo', () => {
  it('uses the socket address when the peer is not a trusted proxy, ignoring XFF and the country header', () => {
    const info = clientInfo('203.0.113.9', { 'x-forwarded-for': '198.51.100.1', 'cf-ipcountry': 'GB' }, opts);
    expect(info).toEqual({ ip: '203.0.113.9' });
  });

  it('honours XFF from a trusted proxy', () => {
    expect(clientInfo('10.1.1.1', { 'x-forwarded-for': '198.51.100.1' }, opts).ip).toBe('198.51.100.1');
  });

  it('walks right to left over trusted hops; a spoofed left-most entry is ignored', () => {
    const headers = { 'x-forwarded-for': '1.1.1.1, 198.51.100.7, 10.2.2.2' };
    expect(clientInfo('10.1.1.1', headers, opts).ip).toBe('198.51.100.7');
  });

  it('with every hop trusted, the left-most is the client', () => {
    expect(clientInfo('10.1.1.1', { 'x-forwarded-for': '10.9.9.9, 10.2.2.2' }, opts).ip).toBe('10.9.9.9');
  });

  it('joins repeated XFF headers in order', () => {
    expect(clientInfo('10.1.1.1', { 'x-forwarded-for': ['1.1.1.1', '198.51.100.8, 10.2.2.2'] }, opts).ip).toBe('198.51.100.8');
  });

  it('stops at a malformed entry and keeps the last trusted hop', () => {
    expect(clientInfo('10.1.1.1', { 'x-forwarded-for': '198.51.100.1, garbage, 10.2.2.2' }, opts).ip).toBe('10.2.2.2');
  });

  it('strips ports and brackets from XFF entries', () => {
    expect(clientInfo('10.1.1.1', { 'x-forwarded-for': '198.51.100.1:5555' }, opts).ip).toBe('198.51.100.1');
    expect(clientInfo('10.1.1.1', { 'x-forwarded-for': '[2001:db8::5]:443' }, opts).ip).toBe('2001:db8::5');
  });

  it('normalises IPv4-mapped socket addresses, and trusts a mapped trusted proxy', () => {
    expect(clientInfo('::ffff:203.0.113.9', {}, opts).ip).toBe('203.0.113.9');
    expect(clientInfo('::ffff:10.1.1.1', { 'x-forwarded-for': '198.51.100.1' }, opts).ip).toBe('198.51.100.1');
  });

  it('trusts IPv6 proxies by CIDR', () => {
    expect(clientInfo('2001:db8:aaaa::1', { 'x-forwarded-for': '2001:db8:bbbb::1' }, opts).ip).toBe('2001:db8:bbbb::1');
    expect(clientInfo('2001:db8:cccc::1', { 'x-forwarded-for': '198.51.100.1' }, opts).ip).toBe('2001:db8:cccc::1');
  });

  it('with no trusted proxies, XFF is never read', () => {
    const none = { trustedProxies: new TrustedProxies([]), countryHeader: 'CF-IPCountry' };
    expect(clientInfo('127.0.0.1', { 'x-forwarded-for': '198.51.100.1', 'cf-ipcountry': 'GB' }, none)).toEqual({ ip: '127.0.0.1' });
  });

  it('reads the CDN country header only from a trusted proxy', () => {
    expect(clientInfo('10.1.1.1', { 'x-forwarded-for': '198.51.100.1', 'cf-ipcountry': 'gb' }, opts)).toEqual({
      ip: '198.51.100.1',
      headerCountry: 'GB',
    });
    const cloudfront = { trustedProxies: proxies, countryHeader: 'CloudFront-Viewer-Country' };
    expect(clientInfo('10.1.1.1', { 'cloudfront-viewer-country': 'DE' }, cloudfront).headerCountry).toBe('DE');
  });

  it('rejects invalid trusted proxy config', () => {
    expect(() => new TrustedProxies(['10.0.0.0/33'])).toThrow(/not a valid/);
  });
});

describe('countryFromHeader', () => {
  it.each([
    ['GB', 'GB'],
    [' fr ', 'FR'],
    ['XX', undefined],
    ['T1', undefined],
    ['GBR', undefined],
    ['', undefined],
    [undefined, undefined],
  ] as const)('%j → %j', (value, expected) => {
    expect(countryFromHeader(value)).toBe(expected);
  });
});
