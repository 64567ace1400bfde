import { describe, expect, it } from 'vitest';
import { originAllowed } from '../../../src/access/allowed-origins.ts';

describe('originAllowed', () => {
  const cases: [string, string[], string | undefined, boolean][] = [
    ['empty list allows all', [], 'https://evil.test', true],
    ['empty list allows no header', [], undefined, true],
    ['exact host', ['example.com'], 'https://example.com', true],
    ['exact host, any scheme', ['example.com'], 'http://example.com', true],
    ['exact host, any port', ['example.com'], 'https://example.com:8443', true],
    ['referer with path', ['example.com'], 'https://example.com/watch/123?x=1', true],
    ['exact host does not cover www', ['example.com'], 'https://www.example.com', false],
    ['suffix trick refused', ['example.com'], 'https://notexample.com', false],
    ['host as prefix refused', ['example.com'], 'https://example.com.evil.test', false],
    ['case-insensitive', ['Example.COM'], 'https://EXAMPLE.com', true],
    ['trailing dot', ['example.com.'], 'https://example.com./', true],
    ['wildcard subdomain', ['*.example.com'], 'https://a.example.com', true],
    ['wildcard deep subdomain', ['*.example.com'], 'https://a.b.example.com', true],
    ['wildcard not the bare domain', ['*.example.com'], 'https://example.com', false],
    ['wildcard not a lookalike', ['*.example.com'], 'https://badexample.com', false],
    ['entry written as URL', ['https://example.com/'], 'http://example.com:3000', true],
    ['localhost any port', ['localhost'], 'http://localhost:5173', true],
    ['IDN entry matches punycode origin', ['bücher.de'], 'https://xn--bcher-kva.de', true],
    ['second entry matches', ['a.test', 'b.test'], 'https://b.test', true],
    ['lone star allows any present origin', ['*'], 'https://anything.test', true],
    ['no Origin/Referer is allowed (native players)', ['example.com'], undefined, true],
    ['blank header counts as none', ['example.com'], '  ', true],
    ['Origin null refused', ['example.com'], 'null', false],
    ['garbage refused', ['example.com'], 'not a url', false],
    ['non-http scheme refused', ['example.com'], 'file://example.com/x', false],
    ['unusable entries ignored', ['*.', 'exa mple.com', 'ok.test'], 'https://ok.test', true],
  ];
  it.each(cases)('%s', (_name, list, header, expected) => {
    expect(originAllowed(list, header)).toBe(expected);
  });
});
