/* global document, sessionStorage, location, fetch, setInterval, clearInterval, setTimeout, clearTimeout, navigator, confirm, URL, Hls */
// Tributary web console: a client of the public REST API (/v1) only, with the API key the user
// enters, kept in sessionStorage. Every value from the server reaches the page as text
// (textContent / value), never as HTML.

const KEY_STORAGE = 'tributary.apiKey';
const STATUS_POLL_MS = 2000;
const LIST_POLL_MS = 5000;

const $ = (id) => document.getElementById(id);
const state = { selected: null, input: null, pollers: [], previewHls: null, previewSrc: null, vodHls: null };

// ---------------------------------------------------------------- API

class ApiFailure extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const headers = { authorization: `Bearer ${sessionStorage.getItem(KEY_STORAGE) ?? ''}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`../v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
  let parsed = null;
  try {
    parsed = await res.json();
  } catch {
    // not JSON
  }
  if (!res.ok) {
    const err = parsed?.errors?.[0];
    if (res.status === 401 && path !== '/live_inputs?limit=1') signOut('Your API key was refused; sign in again.');
    throw new ApiFailure(res.status, err?.code ?? String(res.status), err?.message ?? `${method} ${path} failed (${res.status})`);
  }
  return parsed?.result;
}

function notify(message, kind = 'error') {
  const el = $('notice');
  el.textContent = message;
  el.className = kind;
  el.hidden = false;
  clearTimeout(notify.timer);
  notify.timer = setTimeout(() => (el.hidden = true), 6000);
}

/** Runs an action, showing its failure instead of throwing. */
async function attempt(fn) {
  try {
    return await fn();
  } catch (err) {
    notify(err.message);
    return undefined;
  }
}

// ---------------------------------------------------------------- helpers

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node[k] = v;
  }
  for (const c of children) node.append(c);
  return node;
}

const nameOf = (input) => (typeof input.meta?.name === 'string' && input.meta.name) || input.uid.slice(0, 8);
const stateOf = (status) => status?.current?.state ?? 'idle';
const isLive = (s) => s === 'connected' || s === 'reconnected';

function every(ms, fn) {
  const id = setInterval(fn, ms);
  state.pollers.push(id);
  return id;
}

async function copyField(id) {
  const input = $(id);
  try {
    await navigator.clipboard.writeText(input.value);
  } catch {
    input.select();
    document.execCommand('copy');
  }
  notify('Copied', 'ok');
}

// ---------------------------------------------------------------- sign in / out

async function signIn(key) {
  sessionStorage.setItem(KEY_STORAGE, key);
  try {
    await api('GET', '/live_inputs?limit=1');
  } catch (err) {
    sessionStorage.removeItem(KEY_STORAGE);
    notify(err.status === 401 ? 'That API key was refused.' : err.message);
    return;
  }
  showApp();
}

function signOut(message) {
  sessionStorage.removeItem(KEY_STORAGE);
  for (const id of state.pollers) clearInterval(id);
  state.pollers = [];
  stopPreview();
  $('login').hidden = false;
  $('tabs').hidden = true;
  $('logout').hidden = true;
  for (const t of document.querySelectorAll('.tab')) t.hidden = true;
  if (message) notify(message);
}

function showApp() {
  $('login').hidden = true;
  $('tabs').hidden = false;
  $('logout').hidden = false;
  showTab('inputs');
  every(LIST_POLL_MS, () => {
    void refreshInputs();
    if (state.selected && !$('tab-inputs').hidden) void refreshInputVideos(state.selected);
  });
  every(STATUS_POLL_MS, () => void refreshDetail());
}

function showTab(name) {
  for (const b of $('tabs').querySelectorAll('button')) b.classList.toggle('active', b.dataset.tab === name);
  for (const t of document.querySelectorAll('.tab')) t.hidden = t.id !== `tab-${name}`;
  if (name === 'inputs') void refreshInputs();
  if (name === 'videos') void refreshVideos();
  if (name === 'keys') void refreshKeys();
  if (name === 'webhooks') void refreshWebhook();
}

// ---------------------------------------------------------------- live inputs

async function refreshInputs() {
  const page = await attempt(() => api('GET', '/live_inputs?limit=200'));
  if (!page) return;
  $('inputs-total').textContent = `(${page.total})`;
  const list = $('inputs');
  list.replaceChildren(
    ...page.liveInputs.map((input) => {
      const s = stateOf(input.status);
      return el(
        'li',
        { className: input.uid === state.selected ? 'selected' : '', dataset: { uid: input.uid }, onclick: () => select(input.uid) },
        el('span', { className: 'name', textContent: nameOf(input) }),
        el('span', { className: `badge ${isLive(s) ? 'live' : ''}`, textContent: isLive(s) ? 'live' : s }),
        input.enabled ? '' : el('span', { className: 'badge off', textContent: 'disabled' }),
      );
    }),
  );
}

async function select(uid) {
  state.selected = uid;
  for (const li of $('inputs').children) li.classList.toggle('selected', li.dataset.uid === uid);
  stopPreview();
  $('d-stream-key').type = 'password';
  $('d-reveal').textContent = 'Show';
  await refreshDetail(true);
}

async function refreshDetail(fillForm = false) {
  const uid = state.selected;
  if (!uid || $('tab-inputs').hidden) return;
  let input;
  try {
    input = await api('GET', `/live_inputs/${uid}`);
  } catch (err) {
    if (err.status === 404) {
      state.selected = null;
      $('input-detail').hidden = true;
      stopPreview();
    }
    return;
  }
  if (state.selected !== uid) return;
  state.input = input;
  $('input-detail').hidden = false;
  $('d-name').textContent = nameOf(input);
  $('d-uid').textContent = input.uid;
  const s = stateOf(input.status);
  const badge = $('d-state');
  badge.textContent = isLive(s) ? 'live' : s;
  badge.className = `badge ${isLive(s) ? 'live' : ''}`;
  $('d-rtmp-url').value = input.rtmp.url;
  $('d-stream-key').value = input.rtmp.streamKey;
  $('d-whip-url').value = input.webRTC.url;
  $('d-hls-url').value = new URL(`../${input.uid}/manifest/video.m3u8`, location.href).toString();
  renderHealth(input.status);
  if (fillForm) {
    const f = $('edit-form').elements;
    f.name.value = typeof input.meta?.name === 'string' ? input.meta.name : '';
    f.enabled.checked = input.enabled;
    f.record.checked = input.recording.mode === 'automatic';
    f.signed.checked = input.recording.requireSignedURLs;
    f.timeout.value = String(input.recording.timeoutSeconds);
    void refreshInputVideos(uid);
  }
  if (isLive(s)) void startPreview(input);
  else if (state.previewSrc) stopPreview('Not live');
}

function renderHealth(status) {
  const current = status?.current;
  const h = current?.health ?? {};
  const rows = [
    ['State', current?.state ?? 'idle'],
    ['Since', current?.statusEnteredAt ? new Date(current.statusEnteredAt).toLocaleTimeString() : '—'],
    ['Protocol', current?.ingestProtocol ?? '—'],
    ['Video', h.videoCodec ? `${h.videoCodec} ${h.width ?? '?'}×${h.height ?? '?'}` : '—'],
    ['Audio', h.audioCodec ?? '—'],
    ['Bitrate', h.bitrateKbps !== undefined ? `${h.bitrateKbps} kb/s` : '—'],
    ['Keyframes', h.keyframeIntervalSeconds !== undefined ? `every ${h.keyframeIntervalSeconds} s` : '—'],
    ['Renditions', h.renditions?.length ? h.renditions.join(', ') : '—'],
  ];
  $('d-health').replaceChildren(...rows.flatMap(([k, v]) => [el('dt', { textContent: k }), el('dd', { textContent: String(v) })]));
  $('d-issues').replaceChildren(...(h.issues ?? []).map((i) => el('li', { textContent: `${i.code}: ${i.message}` })));
}

/** Playback URL of a uid: the uid itself, or a fresh signed token when the asset requires one. */
async function playbackUrl(kind, uid, requireSigned) {
  if (!requireSigned) return new URL(`../${uid}/manifest/video.m3u8`, location.href).toString();
  const { token } = await api('POST', `/${kind}/${uid}/token`, {});
  return new URL(`../${token}/manifest/video.m3u8`, location.href).toString();
}

function attach(video, src, onState) {
  if (typeof Hls !== 'undefined' && Hls.isSupported()) {
    const hls = new Hls({ lowLatencyMode: true, liveSyncDurationCount: 2 });
    hls.on(Hls.Events.ERROR, (_e, data) => {
      if (data.fatal) onState?.(`Playback error: ${data.details}`);
    });
    hls.loadSource(src);
    hls.attachMedia(video);
    void video.play().catch(() => {});
    return hls;
  }
  video.src = src; // Safari plays HLS natively
  void video.play().catch(() => {});
  return null;
}

async function startPreview(input) {
  const key = `${input.uid}/${input.recording.requireSignedURLs}`;
  if (state.previewKey === key) return;
  stopPreview('Connecting…');
  state.previewKey = key;
  let src;
  try {
    src = await playbackUrl('live_inputs', input.uid, input.recording.requireSignedURLs);
  } catch (err) {
    state.previewKey = null;
    $('preview-status').textContent = `Cannot sign a preview token: ${err.message}`;
    return;
  }
  if (state.previewKey !== key) return;
  state.previewSrc = src;
  const video = $('preview');
  video.dataset.src = src;
  // A stream that has just connected may not have a playlist yet: a fatal error tears the
  // preview down, and the next status poll starts it again.
  state.previewHls = attach(video, src, (text) => {
    if (state.previewSrc === src) stopPreview(text);
  });
  video.onplaying = () => ($('preview-status').hidden = true);
}

function stopPreview(text = 'Not live') {
  state.previewHls?.destroy();
  state.previewHls = null;
  state.previewSrc = null;
  state.previewKey = null;
  const video = $('preview');
  video.removeAttribute('src');
  delete video.dataset.src;
  video.load();
  $('preview-status').hidden = false;
  $('preview-status').textContent = text;
}

async function refreshInputVideos(uid) {
  const videos = await attempt(() => api('GET', `/live_inputs/${uid}/videos`));
  if (!videos || state.selected !== uid) return;
  $('d-videos').replaceChildren(...(videos.length ? videos.map(videoItem) : [el('li', { className: 'muted', textContent: 'No recordings yet' })]));
}

// ---------------------------------------------------------------- videos

function videoItem(v) {
  const when = new Date(v.created).toLocaleString();
  const duration = typeof v.duration === 'number' && v.duration > 0 ? ` · ${Math.round(v.duration)} s` : '';
  return el(
    'li',
    { dataset: { uid: v.uid } },
    el('span', { className: 'name', textContent: `${when}${duration}` }),
    el('span', { className: 'badge', textContent: v.status?.state ?? '?' }),
    el('button', { className: 'ghost', textContent: 'Play', onclick: () => void playVideo(v) }),
    el('button', { className: 'danger', textContent: 'Delete', onclick: () => void deleteVideo(v) }),
  );
}

async function refreshVideos() {
  const page = await attempt(() => api('GET', '/videos?limit=200'));
  if (!page) return;
  $('videos-total').textContent = `(${page.total})`;
  $('videos').replaceChildren(...page.videos.map(videoItem));
}

async function playVideo(v) {
  showTab('videos');
  $('v-title').textContent = `${new Date(v.created).toLocaleString()} · ${v.uid}`;
  state.vodHls?.destroy();
  const src = await attempt(() => playbackUrl('videos', v.uid, v.requireSignedURLs === true));
  if (!src) return;
  const video = $('vod');
  video.dataset.src = src;
  state.vodHls = attach(video, src, (text) => notify(text));
}

async function deleteVideo(v) {
  if (!confirm('Delete this video and its media?')) return;
  if ((await attempt(() => api('DELETE', `/videos/${v.uid}`))) === undefined) return;
  notify('Video deleted', 'ok');
  void refreshVideos();
  if (state.selected) void refreshInputVideos(state.selected);
}

// ---------------------------------------------------------------- signing keys

async function refreshKeys() {
  const keys = await attempt(() => api('GET', '/keys'));
  if (!keys) return;
  $('keys').replaceChildren(
    ...(keys.length ? keys : []).map((k) =>
      el(
        'li',
        { dataset: { id: k.id } },
        el('span', { className: 'name mono', textContent: k.id }),
        el('span', { className: 'badge', textContent: k.algorithm }),
        el('span', { className: 'muted', textContent: new Date(k.created).toLocaleString() }),
        el('button', {
          className: 'danger',
          textContent: 'Revoke',
          onclick: async () => {
            if (!confirm('Revoke this key? Every token it signed stops working at once.')) return;
            if ((await attempt(() => api('DELETE', `/keys/${k.id}`))) !== undefined) void refreshKeys();
          },
        }),
      ),
    ),
  );
  if (keys.length === 0) $('keys').append(el('li', { className: 'muted', textContent: 'No signing keys yet' }));
}

// ---------------------------------------------------------------- webhooks

async function refreshWebhook() {
  try {
    const hook = await api('GET', '/webhook');
    $('webhook-missing').hidden = true;
    $('webhook-form').hidden = false;
    $('webhook-form').elements.url.value = hook?.notificationUrl ?? '';
    $('webhook-secret').value = hook?.secret ?? '';
  } catch (err) {
    // No such route (this server has no webhook API) vs. no webhook set yet.
    const noRoute = err.status === 404 && err.code === 'NOT_FOUND';
    $('webhook-missing').hidden = !noRoute;
    $('webhook-form').hidden = noRoute;
    if (!noRoute && err.status !== 404) notify(err.message);
  }
}

// ---------------------------------------------------------------- wiring

function wire() {
  $('login-form').addEventListener('submit', (e) => {
    e.preventDefault();
    void signIn($('api-key').value.trim());
    $('api-key').value = '';
  });
  $('logout').addEventListener('click', () => signOut());
  for (const b of $('tabs').querySelectorAll('button')) b.addEventListener('click', () => showTab(b.dataset.tab));
  document.addEventListener('click', (e) => {
    const target = e.target.closest?.('button.copy');
    if (target) void copyField(target.dataset.copy);
  });
  $('d-reveal').addEventListener('click', () => {
    const field = $('d-stream-key');
    field.type = field.type === 'password' ? 'text' : 'password';
    $('d-reveal').textContent = field.type === 'password' ? 'Show' : 'Hide';
  });

  $('create-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const f = e.target.elements;
    const body = {
      meta: f.name.value.trim() ? { name: f.name.value.trim() } : {},
      recording: { mode: f.record.checked ? 'automatic' : 'off', requireSignedURLs: f.signed.checked },
    };
    const created = await attempt(() => api('POST', '/live_inputs', body));
    if (!created) return;
    e.target.reset();
    await refreshInputs();
    await select(created.uid);
  });

  $('edit-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const uid = state.selected;
    const f = e.target.elements;
    const meta = { ...(state.input?.meta ?? {}), name: f.name.value.trim() };
    const body = {
      meta,
      enabled: f.enabled.checked,
      recording: {
        mode: f.record.checked ? 'automatic' : 'off',
        requireSignedURLs: f.signed.checked,
        timeoutSeconds: Number(f.timeout.value) || 0,
      },
    };
    if (!(await attempt(() => api('PUT', `/live_inputs/${uid}`, body)))) return;
    notify('Saved', 'ok');
    await refreshDetail(true);
    void refreshInputs();
  });

  $('d-rotate').addEventListener('click', async () => {
    if (!confirm('Issue a new stream key? The current one stops working at once.')) return;
    if (await attempt(() => api('POST', `/live_inputs/${state.selected}/rotate_keys`))) await refreshDetail();
  });

  $('d-delete').addEventListener('click', async () => {
    if (!confirm('Delete this live input? Its stream key stops working at once.')) return;
    if ((await attempt(() => api('DELETE', `/live_inputs/${state.selected}`))) === undefined) return;
    state.selected = null;
    $('input-detail').hidden = true;
    stopPreview();
    void refreshInputs();
  });

  $('key-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const created = await attempt(() => api('POST', '/keys', { algorithm: e.target.elements.algorithm.value }));
    if (!created) return;
    $('key-pem').value = created.pem;
    $('key-created').hidden = false;
    void refreshKeys();
  });

  $('webhook-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const url = e.target.elements.url.value.trim();
    if (await attempt(() => api('PUT', '/webhook', { notificationUrl: url }))) {
      notify('Webhook saved', 'ok');
      void refreshWebhook();
    }
  });
  $('webhook-delete').addEventListener('click', async () => {
    if ((await attempt(() => api('DELETE', '/webhook'))) !== undefined) void refreshWebhook();
  });
}

wire();
if (sessionStorage.getItem(KEY_STORAGE)) void signIn(sessionStorage.getItem(KEY_STORAGE));
