/* global document, location, window, fetch, setTimeout, clearTimeout, URL, URLSearchParams, Hls, TributaryLatencyKeeper, RTCPeerConnection, MediaStream */
// Tributary embed player (served at /assets/embed-player.js, loaded by /{id}/iframe).
// Plays manifest/video.m3u8 relative to the page, so a token standing in for the id covers
// every request. While the master playlist 404s the stream is not live yet: show that and poll;
// playback starts by itself when the stream goes live. The page's state is in body[data-state]
// (loading | waiting | playing | ended | denied | unsupported) for styling and for tests.
// `?protocol=webrtc` plays over WHEP (webRTC/play next to the page: sub-second latency),
// `?protocol=auto` tries WHEP and falls back to HLS for good if it fails; the default is HLS.
// body[data-protocol] says which one plays.
(function () {
  'use strict';
  var RETRY_MS = 2000;
  var video = document.getElementById('video');
  var status = document.getElementById('status');
  var src = new URL('manifest/video.m3u8', location.href.split('?')[0]).toString();
  var whepUrl = new URL('webRTC/play', location.href.split('?')[0]).toString();
  var protocol = new URLSearchParams(location.search).get('protocol') || 'hls';
  var WHEP_START_MS = 8000;
  var hls = null;
  var keeper = null;
  var pc = null;
  var whepLocation = null;
  var whepFailed = false;
  var timer = null;
  // After a broadcast ends, its final playlist stays up for a while: only a 404 (the old stream
  // is gone) followed by a 200 means a new broadcast.
  var needGone = false;

  function setState(state, text) {
    document.body.setAttribute('data-state', state);
    status.textContent = text;
  }

  function later() {
    clearTimeout(timer);
    timer = setTimeout(probe, RETRY_MS);
  }

  function teardown() {
    if (pc) {
      pc.close();
      pc = null;
    }
    if (whepLocation) {
      fetch(whepLocation, { method: 'DELETE', keepalive: true }).catch(function () {});
      whepLocation = null;
    }
    video.srcObject = null;
    if (keeper) {
      keeper.stop();
      keeper = null;
    }
    if (hls) {
      hls.destroy();
      hls = null;
    }
    video.removeAttribute('src');
    video.load();
  }

  function probe() {
    fetch(src, { cache: 'no-store', credentials: 'same-origin' }).then(
      function (res) {
        if (res.ok && !needGone) return start();
        if (res.ok || res.status === 404) {
          if (res.status === 404) needGone = false;
          if (document.body.getAttribute('data-state') !== 'ended') {
            setState('waiting', 'This stream is not live yet. It will start playing as soon as it goes live.');
          }
          return later();
        }
        if (res.status === 401 || res.status === 403) {
          return res.json().then(
            function (body) {
              var code = body && body.errors && body.errors[0] ? body.errors[0].code : String(res.status);
              setState('denied', 'You cannot watch this stream (' + code + ').');
            },
            function () {
              setState('denied', 'You cannot watch this stream (' + res.status + ').');
            },
          );
        }
        setState('waiting', 'Connecting to the stream…');
        return later();
      },
      function () {
        setState('waiting', 'Connecting to the stream…');
        later();
      },
    );
  }

  /** WHEP: a recvonly offer POSTed next to the page; the answer holds every server candidate. */
  function startWhep() {
    setState('loading', 'Starting…');
    document.body.setAttribute('data-protocol', 'webrtc');
    var peer = (pc = new RTCPeerConnection());
    var stream = new MediaStream();
    var settled = false;
    function fail(why) {
      if (settled || pc !== peer) return;
      settled = true;
      teardown();
      if (protocol === 'auto') {
        whepFailed = true; // HLS from now on
        document.body.setAttribute('data-whep-error', String(why).slice(0, 80));
        return start();
      }
      setState('waiting', 'Reconnecting to the stream…');
      later();
    }
    var deadline = setTimeout(function () {
      fail('no media');
    }, WHEP_START_MS);
    video.addEventListener('playing', function () {
      settled = true;
      clearTimeout(deadline);
    }, { once: true });
    peer.addTransceiver('video', { direction: 'recvonly' });
    peer.addTransceiver('audio', { direction: 'recvonly' });
    peer.ontrack = function (event) {
      stream.addTrack(event.track);
      if (video.srcObject !== stream) video.srcObject = stream;
      var played = video.play();
      if (played && played.catch) played.catch(function () {});
    };
    peer.onconnectionstatechange = function () {
      if (pc !== peer) return;
      if (peer.connectionState === 'failed' || peer.connectionState === 'closed') {
        if (!settled) return fail('connection ' + peer.connectionState);
        teardown();
        setState('waiting', 'Reconnecting to the stream…');
        later();
      }
    };
    peer
      .createOffer()
      .then(function (offer) {
        return peer.setLocalDescription(offer);
      })
      .then(function () {
        // The server is ICE-lite and learns our address from our checks: no need to wait long.
        return new Promise(function (resolve) {
          if (peer.iceGatheringState === 'complete') return resolve();
          var t = setTimeout(resolve, 500);
          peer.onicegatheringstatechange = function () {
            if (peer.iceGatheringState === 'complete') {
              clearTimeout(t);
              resolve();
            }
          };
        });
      })
      .then(function () {
        return fetch(whepUrl, { method: 'POST', headers: { 'content-type': 'application/sdp' }, body: peer.localDescription.sdp, credentials: 'same-origin' });
      })
      .then(function (res) {
        if (res.status !== 201) throw new Error('WHEP ' + res.status);
        whepLocation = new URL(res.headers.get('location'), whepUrl).toString();
        return res.text();
      })
      .then(function (answer) {
        if (pc !== peer) return undefined;
        return peer.setRemoteDescription({ type: 'answer', sdp: answer });
      })
      .catch(function (err) {
        clearTimeout(deadline);
        fail(err && err.message ? err.message : 'error');
      });
  }

  function start() {
    if (typeof RTCPeerConnection === 'function' && (protocol === 'webrtc' || (protocol === 'auto' && !whepFailed))) return startWhep();
    setState('loading', 'Starting…');
    document.body.setAttribute('data-protocol', 'hls');
    if (window.Hls && Hls.isSupported()) {
      // Low-latency mode, no worker (fMP4 needs no transmuxing, and the page's CSP allows no blob:
      // scripts); the latency keeper (latency-keeper.js) holds hls.js at PART-HOLD-BACK.
      hls = new Hls(TributaryLatencyKeeper.hlsConfig);
      keeper = TributaryLatencyKeeper.keep(hls, video);
      hls.on(Hls.Events.ERROR, function (_event, data) {
        if (!data.fatal) return;
        // The stream went away or the network failed: back to waiting for it.
        teardown();
        setState('waiting', 'Reconnecting to the stream…');
        later();
      });
      hls.loadSource(src);
      hls.attachMedia(video);
    } else if (video.canPlayType('application/vnd.apple.mpegurl')) {
      video.src = src; // Safari and iOS play LL-HLS natively
    } else {
      setState('unsupported', 'This browser cannot play HLS video.');
      return;
    }
    var played = video.play();
    if (played && played.catch) played.catch(function () {});
  }

  video.addEventListener('playing', function () {
    setState('playing', '');
  });

  video.addEventListener('ended', function () {
    teardown();
    needGone = true;
    setState('ended', 'The broadcast has ended.');
    later();
  });

  window.addEventListener('pagehide', teardown);
  probe();
})();
