import { existsSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { countryFromRecord, defaultDatabasePath, GeoIp } from '../../../src/access/geoip.ts';

let geo: GeoIp;
beforeAll(async () => {
  geo = await GeoIp.open();
});

describe('GeoIp with the bundled DB-IP Lite database', () => {
  it('resolves the bundled file', () => {
    expect(existsSync(defaultDatabasePath())).toBe(true);
    expect(geo.metadata.databaseType).toMatch(/country/i);
  });

  // Long-lived anycast / root-server addresses whose registration country is stable.
  it.each([
    ['8.8.8.8', 'US'], // Google Public DNS
    ['9.9.9.9', 'US'], // Quad9
    ['193.0.14.129', 'NL'], // k.root-servers.net (RIPE NCC)
    ['202.12.27.33', 'JP'], // m.root-servers.net (WIDE)
    ['2001:dc3::35', 'JP'], // m.root-servers.net IPv6
  ])('%s → %s', (ip, country) => {
    expect(geo.lookupCountry(ip)).toBe(country);
  });

  it('looks up IPv4-mapped IPv6 as the IPv4 address', () => {
    expect(geo.lookupCountry('::ffff:8.8.8.8')).toBe('US');
  });

  it.each(['127.0.0.1', '10.1.2.3', '192.168.0.1', 'not-an-ip', ''])('%j has no country', (ip) => {
    expect(geo.lookupCountry(ip)).toBeUndefined();
  });

  it('refuses a file that is not an mmdb', async () => {
    await expect(GeoIp.open(new URL(import.meta.url).pathname)).rejects.toThrow();
  });
});

describe('countryFromRecord', () => {
  it.each([
    ['DB-IP (ip-location-db)', { country_code: 'de' }, 'DE'],
    ['GeoLite2', { country: { iso_code: 'FR', names: { en: 'France' } }, continent: { code: 'EU' } }, 'FR'],
    ['GeoLite2 registered country only', { registered_country: { iso_code: 'US' } }, 'US'],
    ['no country', { continent: { code: 'EU' } }, undefined],
    ['null', null, undefined],
    ['malformed', { country_code: 42 }, undefined],
  ])('%s', (_name, record, expected) => {
    expect(countryFromRecord(record)).toBe(expected);
  });
});
