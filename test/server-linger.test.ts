/**
 * Lingering close: an answer the server gives before it has read the request body (413 for a body
 * over the limit, 415, 401) must reach a client that is still sending, as nginx's lingering_close
 * ensures. Closing at once resets the connection under the client's writes, and fetch() then fails
 * with "fetch failed" instead of returning the 413 (seen in the soak under CPU contention).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startDemoServer } from './helpers/server.js';

/**
 * A raw HTTP/1.1 request that declares `length` body bytes and sends them in 64 KiB pieces,
 * `gapMs` apart, as a slow client would; resolves with what the server sent and whether every
 * byte could be written (a reset or EPIPE under the client's writes means the server closed at
 * once, and a real client may then lose the answer).
 */
function slowRawPost(url: string, path: string, contentType: string, length: number, gapMs: number): Promise<{ response: string; error?: string; written: number }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect(Number(port), hostname);
    let response = '';
    let written = 0;
    let error: string | undefined;
    socket.on('data', (d) => (response += d.toString('latin1')));
    socket.on('error', (e: NodeJS.ErrnoException) => (error ??= e.code ?? e.message));
    socket.on('close', () => resolve({ response, error, written }));
    socket.on('connect', async () => {
      socket.write(`POST ${path} HTTP/1.1\r\nHost: ${hostname}\r\nContent-Type: ${contentType}\r\nContent-Length: ${length}\r\n\r\n`);
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      while (written < length && error === undefined && !socket.destroyed) {
        const n = Math.min(chunk.length, length - written);
        socket.write(chunk.subarray(0, n));
        written += n;
        await new Promise((r) => setTimeout(r, gapMs));
      }
      socket.end();
    });
  });
}

/** A request body sent slowly: `chunks` pieces of 64 KiB, `gapMs` apart. */
function slowBody(chunks: number, gapMs: number): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream({
    async pull(controller) {
      if (sent === 0) controller.enqueue(new TextEncoder().encode('{"model":"demo","prompt":"'));
      if (sent === chunks) {
        controller.enqueue(new TextEncoder().encode('"}'));
        controller.close();
        return;
      }
      await new Promise((r) => setTimeout(r, gapMs));
      controller.enqueue(new Uint8Array(64 * 1024).fill(0x61));
      sent++;
    },
  });
}

test('a body over the limit, still being sent, gets its 413 (no connection reset)', async () => {
  const srv = await startDemoServer({ bodyLimit: 256 * 1024 });
  try {
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${srv.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: slowBody(24, 5),
        duplex: 'half',
      } as RequestInit);
      assert.equal(res.status, 413);
      assert.match(await res.text(), /too large/);
    }
    // The server still answers normally afterwards.
    const ok = await fetch(`${srv.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'demo', prompt: 'a', max_tokens: 1 }) });
    assert.equal(ok.status, 200);
  } finally {
    await srv.close();
  }
});

test('a declared Content-Length over the limit: the 413 comes while the client still sends, and the connection is not reset under its writes', async () => {
  const srv = await startDemoServer({ bodyLimit: 256 * 1024 });
  try {
    const r = await slowRawPost(srv.url, '/v1/completions', 'application/json', 2 * 1024 * 1024, 4);
    assert.match(r.response, /^HTTP\/1\.1 413 /);
    assert.equal(r.error, undefined, `the connection failed under the client's writes after ${r.written} bytes`);
    assert.equal(r.written, 2 * 1024 * 1024);
  } finally {
    await srv.close();
  }
});

test('a wrong content type, with a large body still being sent, gets its 415', async () => {
  const srv = await startDemoServer({ bodyLimit: 256 * 1024 });
  try {
    const res = await fetch(`${srv.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: slowBody(8, 5), duplex: 'half' } as RequestInit);
    assert.equal(res.status, 415);
  } finally {
    await srv.close();
  }
});
