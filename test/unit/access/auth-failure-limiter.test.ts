import { describe, expect, it } from 'vitest';
import { AuthFailureLimiter } from '../../../src/access/auth-failure-limiter.ts';

function limiter(extra: Partial<ConstructorParameters<typeof AuthFailureLimiter>[0]> = {}) {
  let now = 1_000_000;
  const l = new AuthFailureLimiter({ maxFailures: 3, windowMs: 60_000, blockMs: 300_000, now: () => now, ...extra });
  return { l, advance: (ms: number) => (now += ms) };
}

describe('AuthFailureLimiter', () => {
  it('blocks an address after maxFailures within the window, for blockMs', () => {
    const { l, advance } = limiter();
    expect([l.fail('203.0.113.7'), l.fail('203.0.113.7'), l.fail('203.0.113.7')]).toEqual([false, false, false]);
    expect(l.retryAfterSeconds('203.0.113.7')).toBe(0);
    expect(l.fail('203.0.113.7')).toBe(true);
    expect(l.retryAfterSeconds('203.0.113.7')).toBe(300);
    expect(l.retryAfterSeconds('203.0.113.8')).toBe(0); // others unaffected
    expect(l.blockedTotal).toBe(1);
    advance(299_001);
    expect(l.retryAfterSeconds('203.0.113.7')).toBe(1);
    advance(1_000);
    expect(l.retryAfterSeconds('203.0.113.7')).toBe(0);
  });

  it('forgets failures once the window has passed', () => {
    const { l, advance } = limiter();
    l.fail('2001:db8::1');
    l.fail('2001:db8::1');
    l.fail('2001:db8::1');
    advance(60_000);
    expect(l.fail('2001:db8::1')).toBe(false);
    expect(l.retryAfterSeconds('2001:db8::1')).toBe(0);
  });

  it('never blocks exempt ranges, empty addresses, or when disabled', () => {
    const { l } = limiter({ exemptCidrs: ['127.0.0.0/8', '::1/128'] });
    for (let i = 0; i < 10; i++) {
      expect(l.fail('127.0.0.1')).toBe(false);
      expect(l.fail('::1')).toBe(false);
      expect(l.fail('')).toBe(false);
    }
    const off = limiter({ maxFailures: 0 }).l;
    for (let i = 0; i < 10; i++) expect(off.fail('198.51.100.1')).toBe(false);
    expect(off.retryAfterSeconds('198.51.100.1')).toBe(0);
  });

  it('bounds memory: only maxTracked addresses are remembered', () => {
    const { l } = limiter({ maxTracked: 2, maxFailures: 1 });
    l.fail('198.51.100.1');
    l.fail('198.51.100.2');
    l.fail('198.51.100.3'); // evicts .1
    expect(l.fail('198.51.100.1')).toBe(false); // first failure again
    expect(l.fail('198.51.100.3')).toBe(true);
  });

  it('refuses an invalid exempt CIDR at construction', () => {
    expect(() => limiter({ exemptCidrs: ['not-a-cidr'] })).toThrow(/not a valid/);
  });
});
