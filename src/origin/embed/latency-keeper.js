/* global window */
// Tributary's latency keeper for hls.js (a browser script, no build step): the embed player uses
// it, and scripts/bench/latency.ts loads this same file for its `embed` setup.
//
// hls.js (low-latency mode) starts PART-HOLD-BACK behind the live edge *as of its first playlist*,
// then spends 0.3–0.6 s fetching, appending and decoding before playback really runs; at playback
// rate 1 that delay stays for the whole session. Its own catch-up (maxLiveSyncPlaybackRate) only
// speeds up while more than 1 s is buffered, i.e. never below ~1.1 s glass-to-player with 0.2 s
// parts. The keeper holds hls.js at its own target latency (hls.targetLatency: PART-HOLD-BACK,
// plus what hls.js adds after each stall, so it backs off by itself on a bad network):
//   - once playback runs, skip the start-up delay (seek forward inside what is buffered);
//   - then play at `rate` (1.1×, pitch preserved) while more than `band` behind the target and
//     more than `minAhead` is buffered, else at 1×;
//   - far behind (more than `jumpOver`, after a long stall), seek forward again.
// It never seeks past `minAhead` short of the buffered end, so it cannot cause a stall by itself,
// and it leaves VOD and ended streams alone.
(function () {
  'use strict';

  /** The hls.js config the embed player runs with; the keeper replaces hls.js's catch-up. */
  var HLS_CONFIG = { lowLatencyMode: true, maxLiveSyncPlaybackRate: 1, enableWorker: false, backBufferLength: 30 };

  function keep(hls, video, options) {
    var o = options || {};
    var rate = o.rate || 1.1;
    var band = o.band === undefined ? 0.1 : o.band;
    var minAhead = o.minAhead === undefined ? 0.3 : o.minAhead;
    var jumpOver = o.jumpOver === undefined ? 1 : o.jumpOver;
    var started = false;
    var skips = 0;

    function bufferedAhead() {
      var b = video.buffered;
      for (var i = 0; i < b.length; i++) {
        if (b.start(i) <= video.currentTime + 0.05 && video.currentTime < b.end(i)) return b.end(i) - video.currentTime;
      }
      return 0;
    }

    // Only a live playlist has a latency to keep (hls.js reports one for VOD and ended streams too).
    function isLive() {
      var d = hls.latestLevelDetails;
      if (d === undefined && hls.levels && hls.currentLevel >= 0 && hls.levels[hls.currentLevel]) d = hls.levels[hls.currentLevel].details;
      return !!(d && d.live);
    }

    function setRate(r) {
      if (video.playbackRate !== r) video.playbackRate = r;
    }

    function skip(by) {
      skips++;
      video.currentTime = video.currentTime + by;
    }

    function tick() {
      if (video.paused || video.seeking || video.readyState < 3) return;
      if (!isLive()) return setRate(1);
      var latency = hls.latency;
      var target = hls.targetLatency;
      if (!(latency > 0) || !(target > 0)) return;
      var excess = latency - target;
      var ahead = bufferedAhead();
      if (!started) {
        // The first time update after playback runs: hls.js now knows how late it started.
        started = true;
        var by = Math.min(excess, ahead - minAhead);
        if (excess > band && by > 0.05) return skip(by);
      } else if (excess > jumpOver && ahead - excess >= minAhead) {
        return skip(excess);
      }
      if (excess > band && ahead > minAhead) setRate(rate);
      else if (excess <= band / 2 || ahead <= minAhead) setRate(1);
    }

    video.addEventListener('timeupdate', tick);
    return {
      /** Seeks the keeper made so far (the start-up skip included). */
      skips: function () {
        return skips;
      },
      stop: function () {
        video.removeEventListener('timeupdate', tick);
        setRate(1);
      },
    };
  }

  window.TributaryLatencyKeeper = { hlsConfig: HLS_CONFIG, keep: keep };
})();
