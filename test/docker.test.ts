/**
 * The container image: Dockerfile and compose.yaml keep their contract (multi-stage, non-root,
 * `gemma serve` entrypoint, /health healthcheck, /models volume), and where a Docker daemon is
 * usable the image is built and run: healthy, serving the demo model, as a non-root user.
 * Without a daemon (`docker info` fails) the build-and-run test is skipped with a printed notice.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import YAML from 'yaml';
import { repoRoot } from './helpers/paths.js';

const exec = promisify(execFile);
const dockerfile = fs.readFileSync(path.join(repoRoot(), 'Dockerfile'), 'utf8');
/** Instructions with continuation lines joined. */
const instructions = dockerfile.replace(/\\\n/g, ' ').split('\n').filter((l) => l.trim() && !l.trim().startsWith('#'));
const runtimeStage = instructions.slice(instructions.findLastIndex((l) => l.startsWith('FROM ')));
/** Stays well above today's estimate (node:24-bookworm-slim ~ 200 MB + production dependencies ~ 200 MB). */
const MAX_IMAGE_BYTES = 700 * 1024 * 1024;

test('Dockerfile: multi-stage, runs `gemma serve` as a non-root user, healthcheck on /health, /models volume', () => {
  assert.ok(instructions.filter((l) => l.startsWith('FROM ')).length >= 2, 'a build stage and a runtime stage');
  assert.ok(runtimeStage.some((l) => /^COPY --from=build /.test(l)), 'the runtime stage copies the build');
  assert.ok(runtimeStage.some((l) => /npm install --omit=dev/.test(l)), 'production dependencies only');
  const user = runtimeStage.filter((l) => l.startsWith('USER ')).at(-1);
  assert.ok(user && !/^USER (root|0)(:|$)/.test(user.slice(5).trim()), `non-root USER (${user})`);
  assert.deepEqual(JSON.parse(runtimeStage.find((l) => l.startsWith('ENTRYPOINT '))!.slice(11)), ['gemma', 'serve']);
  const health = runtimeStage.find((l) => l.startsWith('HEALTHCHECK '))!;
  assert.match(health, /http:\/\/127\.0\.0\.1:8080\/health/);
  const cmd = JSON.parse(runtimeStage.find((l) => l.startsWith('CMD '))!.slice(4)) as string[];
  assert.deepEqual(cmd.slice(cmd.indexOf('--port'), cmd.indexOf('--port') + 2), ['--port', '8080'], 'the port the healthcheck asks');
  assert.equal(cmd[cmd.indexOf('--model') + 1], '/models');
  assert.equal(cmd[cmd.indexOf('--host') + 1], '0.0.0.0');
  assert.ok(runtimeStage.some((l) => /^VOLUME \["\/models"\]/.test(l)));
});

test('compose.yaml: serves the image with the model directory mounted read-only at /models', () => {
  const compose = YAML.parse(fs.readFileSync(path.join(repoRoot(), 'compose.yaml'), 'utf8')) as {
    services: Record<string, { build: string; ports: string[]; volumes: string[]; command: string[] }>;
  };
  const [svc] = Object.values(compose.services);
  assert.ok(svc, 'one service');
  assert.equal(svc.build, '.');
  assert.ok(svc.volumes.some((v) => /:\/models:ro$/.test(v)), svc.volumes.join());
  assert.ok(svc.ports.some((p) => p.endsWith(':8080')));
  assert.equal(svc.command[svc.command.indexOf('--model') + 1], '/models');
});

/** Why Docker cannot be used here, or undefined when `docker info` reaches a daemon. */
async function dockerUnusable(): Promise<string | undefined> {
  try {
    await exec('docker', ['info', '--format', '{{.ServerVersion}}'], { timeout: 30_000 });
    return undefined;
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    if (err.code === 'ENOENT') return 'the docker CLI is not installed';
    return `docker info failed: ${(err.stderr ?? err.message).trim().split('\n').at(-1)}`;
  }
}

test('image: builds, becomes healthy, serves the demo model as a non-root user', async (t) => {
  const why = await dockerUnusable();
  if (why) {
    process.stdout.write(`# notice: skipping the container image test: ${why}\n`);
    t.skip(why);
    return;
  }
  const tag = `gemma-ts-test:${process.pid}`;
  const name = `gemma-ts-test-${process.pid}`;
  await exec('docker', ['build', '-t', tag, '.'], { cwd: repoRoot(), timeout: 900_000, maxBuffer: 64 << 20 });
  try {
    const size = Number((await exec('docker', ['image', 'inspect', '--format', '{{.Size}}', tag])).stdout.trim());
    assert.ok(size < MAX_IMAGE_BYTES, `image ${size} bytes < ${MAX_IMAGE_BYTES}`);
    await exec('docker', ['run', '-d', '--name', name, '-p', '127.0.0.1::8080', '--health-interval', '2s', '--health-start-period', '60s', tag, '--model', 'demo', '--host', '0.0.0.0', '--port', '8080']);
    let status = '';
    for (let i = 0; i < 60 && status !== 'healthy'; i++) {
      await new Promise((r) => setTimeout(r, 1000));
      status = (await exec('docker', ['inspect', '--format', '{{.State.Health.Status}}', name])).stdout.trim();
    }
    assert.equal(status, 'healthy');
    const port = (await exec('docker', ['port', name, '8080/tcp'])).stdout.trim().split(':').at(-1);
    const res = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'demo', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4, temperature: 0 }),
    });
    assert.equal(res.status, 200);
    const uid = (await exec('docker', ['exec', name, 'id', '-u'])).stdout.trim();
    assert.notEqual(uid, '0', 'runs as a non-root user');
    await exec('docker', ['stop', '-t', '20', name]);
    assert.equal((await exec('docker', ['inspect', '--format', '{{.State.ExitCode}}', name])).stdout.trim(), '0', 'stops cleanly on SIGTERM');
  } finally {
    await exec('docker', ['rm', '-f', name]).catch(() => undefined);
    await exec('docker', ['rmi', '-f', tag]).catch(() => undefined);
  }
});

test('deploy/: every compose service and Kubernetes container of this image passes serve flags (the entrypoint is `gemma serve`)', () => {
  const deploy = path.join(repoRoot(), 'deploy');
  // merge: compose's `<<: *anchor` keys.
  const compose = YAML.parse(fs.readFileSync(path.join(deploy, 'compose.yaml'), 'utf8'), { merge: true }) as {
    services: Record<string, { build?: { dockerfile?: string }; command?: string[] }>;
  };
  const built = Object.entries(compose.services).filter(([, s]) => s.build?.dockerfile === 'Dockerfile');
  assert.ok(built.length > 0);
  for (const [name, s] of built) assert.match(s.command?.[0] ?? '--', /^--/, `deploy/compose.yaml ${name}: ${s.command?.join(' ')}`);
  const k8s = YAML.parseAllDocuments(fs.readFileSync(path.join(deploy, 'k8s', 'deployment.yaml'), 'utf8')).map((d) => d.toJS() as { kind: string; spec: { template: { spec: { containers: Array<{ image: string; args?: string[] }> } } } });
  for (const c of k8s.find((d) => d.kind === 'Deployment')!.spec.template.spec.containers.filter((c) => c.image.startsWith('gemma-ts'))) {
    assert.match(c.args?.[0] ?? '--', /^--/, `deploy/k8s/deployment.yaml: ${c.args?.join(' ')}`);
  }
});
