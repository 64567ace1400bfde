import type { LookupAddress } from 'node:dns';
import { describe, expect, it } from 'vitest';
import { parseTarget, TargetGuard, TargetRefusedError } from '../../../src/webhooks/target-guard.ts';

/** A resolver with fixed answers, so that DNS names can be tested without a network. */
function fakeDns(table: Record<string, string[]>) {
  return (host: string, cb: (err: Error | null, addrs: LookupAddress[]) => void) => {
    const addrs = table[host];
    if (!addrs) return cb(Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' }), []);
    cb(null, addrs.map((address) => ({ address, family: address.includes(':') ? 6 : 4 })));
  };
}

const dns = fakeDns({
  'hooks.example.com': ['93.184.216.34'],
  'localhost': ['127.0.0.1', '::1'],
  'mixed.example.com': ['93.184.216.34', '10.0.0.5'],
  'metadata.example.com': ['169.254.169.254'],
  'v6.example.com': ['2606:4700::6810:84e5'],
  'mapped.example.com': ['::ffff:192.168.1.1'],
});
const strict = new TargetGuard({ allowPrivateTargets: false, privateTargetAllowlist: [] }, { lookup: dns });

async function refusal(guard: TargetGuard, url: string): Promise<string | undefined> {
  try {
    await guard.check(url);
    return undefined;
  } catch (error) {
    if (error instanceof TargetRefusedError) return error.code;
    throw error;
  }
}

describe('webhook target guard', () => {
  it.each([
    ['https://hooks.example.com/tributary', undefined],
    ['http://hooks.example.com:8080/x?y=1', undefined],
    ['https://v6.example.com/', undefined],
    ['https://93.184.216.34/', undefined],
  ])('accepts the public target %s', async (url, code) => {
    expect(await refusal(strict, url)).toBe(code);
  });

  it.each([
    ['ftp://hooks.example.com/', 'URL_SCHEME'],
    ['file:///etc/passwd', 'URL_SCHEME'],
    ['javascript:alert(1)', 'URL_SCHEME'],
    ['gopher://hooks.example.com:70/', 'URL_SCHEME'],
    ['not a url', 'URL_INVALID'],
    ['/relative/path', 'URL_INVALID'],
    [`https://hooks.example.com/${'a'.repeat(2100)}`, 'URL_INVALID'],
    ['https://user:pass@hooks.example.com/', 'URL_CREDENTIALS'],
    ['http://127.0.0.1:6379/', 'TARGET_PRIVATE'],
    ['http://localhost/', 'TARGET_PRIVATE'],
    ['http://[::1]/', 'TARGET_PRIVATE'],
    ['http://10.1.2.3/', 'TARGET_PRIVATE'],
    ['http://172.16.0.1/', 'TARGET_PRIVATE'],
    ['http://192.168.0.10/', 'TARGET_PRIVATE'],
    ['http://100.64.0.1/', 'TARGET_PRIVATE'],
    ['http://169.254.169.254/latest/meta-data/', 'TARGET_PRIVATE'],
    ['http://metadata.example.com/', 'TARGET_PRIVATE'],
    ['http://0.0.0.0/', 'TARGET_PRIVATE'],
    ['http://2130706433/', 'TARGET_PRIVATE'], // 127.0.0.1 as one number
    ['http://0x7f.1/', 'TARGET_PRIVATE'],
    ['http://[fd00::1]/', 'TARGET_PRIVATE'],
    ['http://[fe80::1]/', 'TARGET_PRIVATE'],
    ['http://[::ffff:127.0.0.1]/', 'TARGET_PRIVATE'],
    ['http://mapped.example.com/', 'TARGET_PRIVATE'],
    ['http://224.0.0.1/', 'TARGET_PRIVATE'],
    ['http://mixed.example.com/', 'TARGET_PRIVATE'], // one private address among public ones is enough
    ['http://nowhere.invalid/', 'TARGET_UNRESOLVABLE'],
  ])('refuses %s (%s)', async (url, code) => {
    expect(await refusal(strict, url)).toBe(code);
  });

  it('allows private targets only when configured, all of them or by CIDR', async () => {
    const all = new TargetGuard({ allowPrivateTargets: true, privateTargetAllowlist: [] }, { lookup: dns });
    expect(await refusal(all, 'http://127.0.0.1:9000/')).toBeUndefined();
    const some = new TargetGuard({ allowPrivateTargets: false, privateTargetAllowlist: ['127.0.0.1/32', 'fd00::/8'] }, { lookup: dns });
    expect(await refusal(some, 'http://127.0.0.1:9000/')).toBeUndefined();
    expect(await refusal(some, 'http://[fd00::2]/')).toBeUndefined();
    expect(await refusal(some, 'http://127.0.0.2/')).toBe('TARGET_PRIVATE');
    expect(await refusal(some, 'http://10.0.0.1/')).toBe('TARGET_PRIVATE');
    // Still no scheme other than http(s), whatever the address.
    expect(await refusal(all, 'ftp://127.0.0.1/')).toBe('URL_SCHEME');
  });

  it('checks at connect time too: a name that now resolves privately is refused by the lookup', async () => {
    let answer = '93.184.216.34';
    const guard = new TargetGuard(
      { allowPrivateTargets: false, privateTargetAllowlist: [] },
      { lookup: (_h, cb) => cb(null, [{ address: answer, family: 4 }]) },
    );
    await expect(guard.check('http://rebind.example.com/')).resolves.toBeInstanceOf(URL);
    answer = '127.0.0.1'; // DNS rebinding
    const result = await new Promise<{ err: Error | null; address: unknown }>((resolve) =>
      guard.connectLookup('rebind.example.com', {}, (err, address) => resolve({ err, address })),
    );
    expect(result.err?.message).toMatch(/loopback/);
  });

  it('parses without DNS', () => {
    expect(parseTarget('HTTPS://Hooks.Example.com/a').href).toBe('https://hooks.example.com/a');
  });
});
