import { describe, expect, it } from 'vitest';
import { embedCsp, embedErrorPage, frameAncestors, loadEmbedAssets } from '../../../src/origin/embed-page.ts';
import { sameOrigin } from '../../../src/access/playback-guard.ts';

describe('embed page', () => {
  it('names every asset by content hash, relative to /{id}/iframe', () => {
    const { files, page } = loadEmbedAssets();
    expect([...files.keys()].sort()).toEqual(['embed-player.css', 'embed-player.js', 'hls.min.js', 'latency-keeper.js']);
    for (const [name, file] of files) {
      expect(page).toContain(`../assets/${name}?v=${file.version}`);
      expect(file.body.length).toBeGreaterThan(100);
    }
    // No inline script or style: the CSP allows only files from the origin.
    expect(page).not.toMatch(/<script>|<style|style="/);
  });

  it('allows only self in the CSP, and frame-ancestors only with allowed origins', () => {
    expect(embedCsp(undefined)).toBe(
      "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; media-src 'self' blob:; base-uri 'none'; form-action 'none'",
    );
    expect(frameAncestors([])).toBeUndefined();
    expect(frameAncestors(['*.Example.com', 'https://shop.example.org/page'])).toBe(
      "frame-ancestors 'self' http://*.example.com:* https://*.example.com:* http://shop.example.org:* https://shop.example.org:*",
    );
    expect(frameAncestors(['example.com', '*'])).toBe('frame-ancestors *');
    // Unusable entries never reach the header (no injection of other directives).
    expect(frameAncestors(['a.com; script-src *', '*.*.x'])).toBe("frame-ancestors 'self'");
    expect(embedCsp(['a.example.com'])).toMatch(/; frame-ancestors 'self' http:\/\/a\.example\.com:\* https:\/\/a\.example\.com:\*$/);
  });

  it('shows only a known reason code on the error page', () => {
    expect(embedErrorPage(401, 'TOKEN_REQUIRED')).toContain('(TOKEN_REQUIRED)');
    expect(embedErrorPage(403, '<script>')).toContain('(403)');
    expect(embedErrorPage(404, 'NOT_FOUND')).toContain('does not exist');
  });

  it('recognises requests from the origin itself (the embed page’s own requests)', () => {
    expect(sameOrigin('http://127.0.0.1:8080/abc/iframe', { host: '127.0.0.1:8080' })).toBe(true);
    expect(sameOrigin('https://video.example.com', { ':authority': 'video.example.com' })).toBe(true);
    expect(sameOrigin('https://video.example.com:443/x', { host: 'video.example.com' })).toBe(true);
    expect(sameOrigin('http://127.0.0.1:8081/', { host: '127.0.0.1:8080' })).toBe(false);
    expect(sameOrigin('https://evil.test/', { host: 'video.example.com' })).toBe(false);
    expect(sameOrigin('null', { host: 'video.example.com' })).toBe(false);
    expect(sameOrigin(undefined, { host: 'video.example.com' })).toBe(false);
    expect(sameOrigin('https://video.example.com', {})).toBe(false);
  });
});
