/**
 * Debian's nginx, running deploy/nginx.conf on loopback ports in front of three real `gemma serve`
 * replicas: requests spread, a session sticks to one replica (its second turn finds its prefix
 * cached), SIGTERM to a replica mid-stream loses nothing (its streams finish, new requests go to
 * the others), and SIGKILL fails only the killed replica's in-flight streams.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { repoRoot } from './helpers/paths.js';
import { openStream, spawnServe, until, type ServeProcess } from './helpers/serve-process.js';

const NGINX = '/usr/sbin/nginx';
const haveNginx = fs.existsSync(NGINX);
if (!haveNginx) console.log(`# notice: ${NGINX} not found (Debian package nginx): the nginx tests are skipped`);

const replicas: ServeProcess[] = [];
let nginx: ChildProcess | undefined;
let lb = '';
let tmp = '';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** deploy/nginx.conf with loopback upstreams and a private prefix (no root, no daemon). */
function nginxConfig(listenPort: number, upstreamPorts: number[]): string {
  let conf = fs.readFileSync(path.join(repoRoot(), 'deploy', 'nginx.conf'), 'utf8');
  const servers = [...conf.matchAll(/^\s*server gemma-\d+:8080 (.*);$/gm)];
  assert.equal(servers.length, 3, 'deploy/nginx.conf names three replicas');
  const params = servers[0]![1]!;
  conf = conf.replace(/^(\s*)server gemma-1:8080 .*;$/m, upstreamPorts.map((p) => `$1server 127.0.0.1:${p} ${params};`).join('\n'));
  conf = conf.replace(/^\s*server gemma-[23]:8080 .*;\n/gm, '');
  assert.match(conf, /listen 8080;/);
  conf = conf.replace('listen 8080;', `listen 127.0.0.1:${listenPort};`);
  const temps = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `    ${t}_temp_path ${path.join(tmp, t)};`).join('\n');
  conf = conf.replace(/^http \{$/m, `http {\n${temps}`);
  return `daemon off;\npid ${path.join(tmp, 'nginx.pid')};\nerror_log ${path.join(tmp, 'error.log')} warn;\n${conf}`;
}

before(async () => {
  if (!haveNginx) return;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gemma-nginx-'));
  const started = await Promise.all(['r1', 'r2', 'r3'].map((name) => spawnServe(['--replica-name', name, '--parallel', '4'])));
  replicas.push(...started);
  await Promise.all(replicas.map((r) => r.ready(60000)));
  const port = await freePort();
  fs.writeFileSync(path.join(tmp, 'nginx.conf'), nginxConfig(port, replicas.map((r) => r.port)));
  nginx = spawn(NGINX, ['-p', tmp, '-c', path.join(tmp, 'nginx.conf'), '-e', path.join(tmp, 'error.log')], { stdio: ['ignore', 'ignore', 'pipe'] });
  lb = `http://127.0.0.1:${port}`;
  const end = Date.now() + 10000;
  for (;;) {
    const r = await fetch(`${lb}/nginx-health`).catch(() => undefined);
    if (r?.ok) break;
    if (Date.now() > end || nginx.exitCode !== null) throw new Error(`nginx did not start: ${fs.existsSync(path.join(tmp, 'error.log')) ? fs.readFileSync(path.join(tmp, 'error.log'), 'utf8') : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
});

after(async () => {
  nginx?.kill('SIGTERM');
  for (const r of replicas) r.kill();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

const opts = { skip: !haveNginx };

async function complete(session?: string): Promise<{ status: number; replica: string | null }> {
  const r = await fetch(`${lb}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(session ? { 'x-session-id': session } : {}) },
    body: JSON.stringify({ model: 'demo', prompt: 'Hello', max_tokens: 1 }),
  });
  await r.arrayBuffer();
  return { status: r.status, replica: r.headers.get('x-gemma-replica') };
}

/** A session id that nginx routes to `replica` (consistent hash: found by trying a few). */
async function sessionOn(replica: string): Promise<string> {
  for (let i = 0; i < 60; i++) {
    const s = `session-${replica}-${i}`;
    if ((await complete(s)).replica === replica) return s;
  }
  throw new Error(`no session id routed to ${replica} in 60 tries`);
}

test('requests without a session spread over the replicas', opts, async () => {
  const seen = new Map<string, number>();
  for (let i = 0; i < 15; i++) {
    const r = await complete();
    assert.equal(r.status, 200);
    seen.set(r.replica!, (seen.get(r.replica!) ?? 0) + 1);
  }
  assert.ok(seen.size >= 2, `15 requests all went to ${[...seen.keys()]}`);
});

test('a session sticks to one replica: its second turn reports cached prompt tokens', opts, async () => {
  for (const session of ['conv-a', 'conv-b', 'conv-c']) {
    const ask = async (messages: Array<{ role: string; content: string }>) => {
      const r = await fetch(`${lb}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-session-id': session },
        body: JSON.stringify({ model: 'demo', messages, max_tokens: 6, temperature: 0 }),
      });
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('x-gemma-affinity'), session, 'the affinity key is the session id');
      const body = (await r.json()) as { choices: Array<{ message: { content: string } }>; usage: { prompt_tokens: number; prompt_tokens_details: { cached_tokens: number } } };
      return { replica: r.headers.get('x-gemma-replica'), body };
    };
    const turn1: Array<{ role: string; content: string }> = [{ role: 'user', content: `Tell me about ${session}.` }];
    const a = await ask(turn1);
    const b = await ask([...turn1, { role: 'assistant', content: a.body.choices[0]!.message.content }, { role: 'user', content: 'And then?' }]);
    assert.equal(b.replica, a.replica, `${session}: both turns on one replica`);
    assert.ok(b.body.usage.prompt_tokens_details.cached_tokens > 0, `${session}: the second turn found its prefix cached`);
    assert.ok(b.body.usage.prompt_tokens_details.cached_tokens >= a.body.usage.prompt_tokens - 1);
  }
});

test('SIGTERM to a replica mid-stream: its streams finish, new requests of its sessions go elsewhere, no client error', opts, async () => {
  const victim = replicas[0]!;
  const session = await sessionOn('r1');
  const streams = await Promise.all(
    [0, 1].map(() => openStream(lb, { model: 'demo', prompt: 'Once upon a time', max_tokens: 300, ignore_eos: true, stream_options: { include_usage: true } }, { 'x-session-id': session })),
  );
  for (const s of streams) assert.equal(s.status, 200);
  await until(() => streams.every((s) => s.events.length >= 3), 30000, 'the first tokens');
  victim.kill('SIGTERM');
  await until(() => /SIGTERM: draining/.test(victim.stderr()), 5000, 'the replica to drain');
  for (let i = 0; i < 6; i++) {
    const r = await complete(session);
    assert.equal(r.status, 200, 'the balancer retried elsewhere');
    assert.notEqual(r.replica, 'r1');
  }
  for (const s of streams) {
    assert.equal(await s.done, undefined, 'no connection error');
    assert.equal(s.events.at(-1), '[DONE]');
    const usage = JSON.parse(s.events.at(-2)!) as { usage: { completion_tokens: number } };
    assert.equal(usage.usage.completion_tokens, 300, 'the stream ran to its end');
  }
  assert.equal(await victim.exited, 0);
});

test('SIGKILL of a replica: only its in-flight streams fail, the next requests succeed', opts, async () => {
  const victim = replicas[1]!;
  const session = await sessionOn('r2');
  const s = await openStream(lb, { model: 'demo', prompt: 'Once upon a time', max_tokens: 2000, ignore_eos: true }, { 'x-session-id': session });
  await until(() => s.events.length >= 3, 30000, 'the first tokens');
  victim.kill('SIGKILL');
  assert.equal(await victim.exited, 'SIGKILL');
  const err = await s.done;
  assert.ok(err instanceof Error || s.events.at(-1) !== '[DONE]', 'the in-flight stream failed');
  assert.notEqual(s.events.at(-1), '[DONE]');
  for (let i = 0; i < 6; i++) {
    const r = await complete(i % 2 ? session : undefined);
    assert.equal(r.status, 200);
    assert.equal(r.replica, 'r3');
  }
});
