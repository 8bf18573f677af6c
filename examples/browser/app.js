// Runs a Gemma model in this tab with the web build of gemma-ts (no server inference): pick a
// model (a URL or local files; the demo by default), load it with progress, chat with streaming.
// `gemma serve` serves this page at /local/ with the bundle as ./gemma-ts.js.
import { ChatSession, loadModel } from './gemma-ts.js';

const $ = (id) => document.getElementById(id);
const ui = {
  status: $('status'), stats: $('stats'), messages: $('messages'), input: $('input'), send: $('send'), stop: $('stop'), clear: $('clear'),
  error: $('error'), url: $('model_url'), files: $('model_files'), backend: $('backend'), load: $('load'), progress: $('progress'), notices: $('notices'),
};

const params = new URLSearchParams(location.search);
if (params.get('model')) ui.url.value = params.get('model');
if (params.get('backend')) ui.backend.value = params.get('backend');

let loaded;
let session;
let abort;

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
  ui.load.disabled = true;
  session?.dispose();
  loaded?.model.dispose();
  loaded = session = undefined;
  ui.messages.textContent = '';
  ui.notices.textContent = '';
  const files = ui.files.files;
  const input = files && files.length > 0 ? files : ui.url.value.trim();
  const t0 = performance.now();
  let network = 0;
  const downloaded = new Map();
  try {
    ui.status.textContent = 'loading…';
    loaded = await loadModel(input, {
      backend: ui.backend.value,
      onDownloadProgress: (p) => {
        downloaded.set(p.url, p.loadedBytes);
        network = [...downloaded.values()].reduce((a, b) => a + b, 0);
        ui.status.textContent = `downloading ${p.url.split('/').pop()}: ${fmtBytes(p.loadedBytes)} / ${fmtBytes(p.totalBytes)}${p.fromCache ? ' (cached)' : ''}`;
      },
      onProgress: (done, total) => {
        ui.progress.value = total ? done / total : 0;
      },
    });
    if (!loaded.tokenizer) throw new Error('this checkpoint has no tokenizer: the page needs one to chat');
    ui.progress.value = 1;
    const secs = (performance.now() - t0) / 1000;
    const backend = loaded.model.backend;
    ui.status.textContent = `${loaded.path.split('/').filter(Boolean).pop() ?? 'model'} · ${loaded.config.numLayers} layers · ${fmtBytes(loaded.weightBytes)} · ${backend.name}${backend.threads ? ` × ${backend.threads} threads` : ''} · loaded in ${secs.toFixed(1)} s (${network ? fmtBytes(network) + ' from the network' : 'no network bytes'})`;
    ui.notices.textContent = loaded.notices.join('\n');
    newSession();
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
  session?.dispose();
  ui.messages.textContent = '';
  const system = $('system').value.trim();
  session = new ChatSession(loaded.model, loaded.tokenizer, system ? { system } : {});
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
  if (!text || !session || abort) return;
  showError();
  ui.input.value = '';
  addMessage('user', text);
  const reply = addMessage('assistant', '');
  const body = reply.querySelector('.text');
  abort = new AbortController();
  ui.send.disabled = true;
  ui.stop.disabled = false;
  let tokens = 0;
  let first;
  const t0 = performance.now();
  try {
    for await (const chunk of session.send(text, { ...sampling(), signal: abort.signal })) {
      if (chunk.id >= 0) {
        tokens++;
        first ??= performance.now();
      }
      body.textContent += chunk.text;
      const secs = (performance.now() - (first ?? t0)) / 1000;
      if (tokens > 1 && secs > 0) ui.stats.textContent = `${((tokens - 1) / secs).toFixed(1)} tokens/s`;
    }
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
    abort = undefined;
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
ui.stop.addEventListener('click', () => abort?.abort());
ui.clear.addEventListener('click', () => newSession());

// The demo model (or ?model=URL) loads at once; ?autoload=0 waits for the Load button.
if (params.get('autoload') !== '0') void load();
