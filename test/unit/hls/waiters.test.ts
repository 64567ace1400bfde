import { describe, expect, it } from 'vitest';
import { Waiters } from '../../../src/hls/waiters.ts';

describe('Waiters', () => {
  it('resolves at once when ready, else at the notify() after which it holds', async () => {
    const w = new Waiters();
    let value = 0;
    await expect(w.wait('a', () => true)).resolves.toBe('ready');
    let checks = 0;
    const ready = () => (checks++, value >= 2);
    const held = [w.wait('v2', ready), w.wait('v2', ready), w.wait('v2', ready)];
    expect(w.size).toBe(3);
    checks = 0;
    value = 1;
    w.notify();
    expect(checks).toBe(1); // one check for the three waiters sharing the key
    value = 2;
    w.notify();
    await expect(Promise.all(held)).resolves.toEqual(['ready', 'ready', 'ready']);
    expect(w.size).toBe(0);
  });

  it('releases everything at releaseAll()', async () => {
    const w = new Waiters();
    const held = [w.wait('x', () => false), w.wait('y', () => false)];
    w.releaseAll();
    await expect(Promise.all(held)).resolves.toEqual(['released', 'released']);
    expect(w.size).toBe(0);
  });

  it('drops an aborted waiter at once and leaves the others', async () => {
    const w = new Waiters();
    const c = new AbortController();
    const aborted = w.wait('k', () => false, c.signal);
    const other = w.wait('k', () => false);
    c.abort(new Error('client gone'));
    await expect(aborted).rejects.toThrow('client gone');
    expect(w.size).toBe(1);
    w.releaseAll();
    await expect(other).resolves.toBe('released');
    await expect(w.wait('k', () => true, c.signal)).rejects.toThrow('client gone');
    expect(w.size).toBe(0);
  });
});
