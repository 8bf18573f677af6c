// The model runs in this module worker, so the page stays responsive while kernels run (and the
// wasm backend's thread pool may block here, which a page's main thread may not).
// Messages in: load {input, backend}, reset {system}, send {text, options}, stop.
// Messages out: download, progress, loaded, token, done, error.
import { ChatSession, loadModel } from './gemma-ts.js';

let loaded;
let session;
let abort;

function newSession(system) {
  session?.dispose();
  session = new ChatSession(loaded.model, loaded.tokenizer, system ? { system } : {});
}

async function load({ input, backend, system }) {
  session?.dispose();
  loaded?.model.dispose();
  loaded = session = undefined;
  loaded = await loadModel(input, {
    backend,
    onDownloadProgress: (p) => postMessage({ type: 'download', ...p }),
    onProgress: (done, total) => postMessage({ type: 'progress', done, total }),
  });
  if (!loaded.tokenizer) throw new Error('this checkpoint has no tokenizer: the page needs one to chat');
  newSession(system);
  const b = loaded.model.backend;
  postMessage({
    type: 'loaded',
    name: loaded.path.split('/').filter(Boolean).pop() ?? 'model',
    layers: loaded.config.numLayers,
    weightBytes: loaded.weightBytes,
    backend: b.name,
    threads: b.threads,
    notices: loaded.notices,
  });
}

async function send({ text, options }) {
  abort = new AbortController();
  try {
    const it = session.send(text, { ...options, signal: abort.signal });
    for (;;) {
      const r = await it.next();
      if (r.done) {
        postMessage({ type: 'done', finishReason: r.value.finishReason });
        break;
      }
      postMessage({ type: 'token', id: r.value.id, text: r.value.text });
    }
  } finally {
    abort = undefined;
  }
}

onmessage = async ({ data }) => {
  try {
    if (data.type === 'stop') abort?.abort();
    else if (data.type === 'load') await load(data);
    else if (data.type === 'reset') newSession(data.system);
    else if (data.type === 'send') await send(data);
  } catch (e) {
    postMessage({ type: 'error', message: String(e?.message ?? e) });
  }
};
