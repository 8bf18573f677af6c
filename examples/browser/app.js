// Runs a Gemma model in this tab with the web build of gemma-ts (no server inference): pick a
// model (a URL or local files; the demo by default), load it with progress, chat with streaming.
// The model lives in a module worker (worker.js) so the page stays responsive while it computes.
// `gemma serve` serves this page at /local/ with the bundle as ./gemma-ts.js.
const $ = (id) => document.getElementById(id);
const ui = {
  status: $('status'), stats: $('stats'), messages: $('messages'), input: $('input'), send: $('send'), stop: $('stop'), clear: $('clear'),
  error: $('error'), url: $('model_url'), files: $('model_files'), backend: $('backend'), load: $('load'), progress: $('progress'), notices: $('notices'),
};

const params = new URLSearchParams(location.search);
if (params.get('model')) ui.url.value = params.get('model');
if ('gpu' in navigator) ui.backend.add(new Option('WebGPU', 'webgpu'), 0);
if (params.get('backend')) ui.backend.value = params.get('backend');

const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
/** The handler of the request in flight (load or send): gets every message until it returns true. */
let pending;
worker.onmessage = ({ data }) => {
  if (pending?.(data)) pending = undefined;
};
worker.onerror = (e) => showError(e.message ?? 'the model worker failed to start');

/** Post a request and feed its messages to `onMessage` until it says the request is over. */
function request(message, onMessage) {
  return new Promise((resolve, reject) => {
    pending = (data) => {
      if (data.type === 'error') {
        reject(new Error(data.message));
        return true;
      }
      const over = onMessage(data);
      if (over) resolve(data);
      return over;
    };
    worker.postMessage(message);
  });
}

let ready = false;
let busy = false;

function showError(e) {
  ui.error.textContent = e ? String(e.message ?? e) : '';
}

function setChatEnabled(on) {
  for (const el of [ui.input, ui.send, ui.clear]) el.disabled = !on;
}

function fmtBytes(n) {
  return n >= 1 << 30 ? `${(n / (1 << 30)).toFixed(2)} GiB` : n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : `${(n / 1024).toFixed(0)} KiB`;
}

async function load() {
  showError();
  setChatEnabled(false);
  ready = false;
  ui.load.disabled = true;
  ui.messages.textContent = '';
  ui.notices.textContent = '';
  const files = ui.files.files;
  const input = files && files.length > 0 ? [...files] : new URL(ui.url.value.trim(), location.href).href;
  const t0 = performance.now();
  const downloaded = new Map();
  try {
    ui.status.textContent = 'loading…';
    const info = await request({ type: 'load', input, backend: ui.backend.value, system: $('system').value.trim() }, (m) => {
      if (m.type === 'download') {
        downloaded.set(m.url, m.loadedBytes);
        ui.status.textContent = `downloading ${m.url.split('/').pop()}: ${fmtBytes(m.loadedBytes)} / ${fmtBytes(m.totalBytes)}${m.fromCache ? ' (cached)' : ''}`;
      } else if (m.type === 'progress') ui.progress.value = m.total ? m.done / m.total : 0;
      return m.type === 'loaded';
    });
    ui.progress.value = 1;
    const network = [...downloaded.values()].reduce((a, b) => a + b, 0);
    const secs = (performance.now() - t0) / 1000;
    ui.status.textContent = `${info.name} · ${info.layers} layers · ${fmtBytes(info.weightBytes)} · ${info.backend}${info.threads ? ` × ${info.threads} threads` : ''} · loaded in ${secs.toFixed(1)} s (${network ? fmtBytes(network) + ' from the network' : 'no network bytes'})`;
    ui.notices.textContent = info.notices.join('\n');
    ready = true;
    setChatEnabled(true);
    ui.input.focus();
  } catch (e) {
    ui.status.textContent = 'no model loaded';
    showError(e);
  } finally {
    ui.load.disabled = false;
  }
}

function newSession() {
  ui.messages.textContent = '';
  worker.postMessage({ type: 'reset', system: $('system').value.trim() });
}

function addMessage(role, text) {
  const div = document.createElement('div');
  div.className = `msg ${role}`;
  const body = document.createElement('div');
  body.className = 'text';
  body.textContent = text;
  div.append(body);
  ui.messages.append(div);
  return div;
}

function sampling() {
  const num = (id) => Number($(id).value);
  const seed = $('seed').value.trim();
  return { temperature: num('temperature'), topP: num('top_p'), topK: num('top_k'), maxTokens: num('max_tokens'), ...(seed ? { seed: Number(seed) } : {}) };
}

async function send() {
  const text = ui.input.value.trim();
  if (!text || !ready || busy) return;
  showError();
  ui.input.value = '';
  addMessage('user', text);
  const reply = addMessage('assistant', '');
  const body = reply.querySelector('.text');
  busy = true;
  ui.send.disabled = true;
  ui.stop.disabled = false;
  let tokens = 0;
  let first;
  const t0 = performance.now();
  try {
    await request({ type: 'send', text, options: sampling() }, (m) => {
      if (m.type === 'token') {
        if (m.id >= 0) {
          tokens++;
          first ??= performance.now();
        }
        body.textContent += m.text;
        const secs = (performance.now() - (first ?? t0)) / 1000;
        if (tokens > 1 && secs > 0) ui.stats.textContent = `${((tokens - 1) / secs).toFixed(1)} tokens/s`;
      }
      return m.type === 'done';
    });
    const decodeSecs = (performance.now() - (first ?? t0)) / 1000;
    const rate = tokens > 1 && decodeSecs > 0 ? (tokens - 1) / decodeSecs : 0;
    const meta = document.createElement('div');
    meta.className = 'meta';
    meta.textContent = `${tokens} tokens · ${rate.toFixed(1)} tokens/s · first token after ${(((first ?? performance.now()) - t0) / 1000).toFixed(2)} s`;
    reply.append(meta);
    ui.stats.textContent = `${rate.toFixed(1)} tokens/s`;
  } catch (e) {
    showError(e);
  } finally {
    busy = false;
    ui.send.disabled = false;
    ui.stop.disabled = true;
  }
}

ui.load.addEventListener('click', load);
$('composer').addEventListener('submit', (e) => {
  e.preventDefault();
  void send();
});
ui.input.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey) {
    e.preventDefault();
    void send();
  }
});
ui.stop.addEventListener('click', () => worker.postMessage({ type: 'stop' }));
ui.clear.addEventListener('click', () => newSession());

// The demo model (or ?model=URL) loads at once; ?autoload=0 waits for the Load button.
if (params.get('autoload') !== '0') void load();
