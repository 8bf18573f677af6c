/**
 * The deployment files in deploy/ agree with the server: probe paths answer as the probes expect,
 * the HPA's metric is one /metrics exports, the grace period covers preStop + --drain-timeout,
 * compose runs nginx.conf in front of the replicas it names.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { repoRoot } from './helpers/paths.js';
import { parseMetrics, startDemoServer, type RunningServer } from './helpers/server.js';

const deploy = (...p: string[]) => path.join(repoRoot(), 'deploy', ...p);
const docs = (file: string) => parseAllDocuments(fs.readFileSync(deploy(file), 'utf8'), { merge: true }).map((d) => d.toJS() as Record<string, any>); // eslint-disable-line @typescript-eslint/no-explicit-any

let srv: RunningServer;
before(async () => {
  srv = await startDemoServer({ prebuildConstraint: false });
});
after(() => srv.close());

test('k8s Deployment: probes hit routes that answer 200 when ready, preStop + drain fit the grace period', async () => {
  const [dep] = docs('k8s/deployment.yaml');
  assert.equal(dep!.kind, 'Deployment');
  const spec = dep!.spec.template.spec;
  const c = spec.containers[0];
  for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
    const p = c[probe].httpGet.path as string;
    const r = await fetch(`${srv.url}${p}`);
    assert.equal(r.status, 200, `${probe} ${p}`);
  }
  assert.equal(c.readinessProbe.httpGet.path, '/health', 'readiness turns 503 while draining');
  assert.equal(c.livenessProbe.httpGet.path, '/health/live', 'liveness stays 200 while draining');
  const drain = Number(/--drain-timeout=(\d+)/.exec(c.args.join(' '))![1]);
  const preStop = Number(c.lifecycle.preStop.exec.command.at(-1));
  assert.ok(spec.terminationGracePeriodSeconds > drain + preStop, 'SIGKILL comes after the drain');
  assert.ok(c.resources.requests.cpu && c.resources.requests.memory && c.resources.limits.memory);
});

test('k8s HPA scales on a gauge that /metrics exports', async () => {
  const [hpa] = docs('k8s/hpa.yaml');
  assert.equal(hpa!.kind, 'HorizontalPodAutoscaler');
  const name = hpa!.spec.metrics[0].pods.metric.name as string;
  const text = await (await fetch(`${srv.url}/metrics`)).text();
  assert.ok(parseMetrics(text).has(name), `${name} is in /metrics`);
  assert.match(text, new RegExp(`# TYPE ${name} gauge`));
  assert.equal(hpa!.spec.scaleTargetRef.name, docs('k8s/deployment.yaml')[0]!.metadata.name);
});

test('compose: nginx with deploy/nginx.conf in front of the replicas that nginx.conf names, built from the root Dockerfile', () => {
  const [compose] = docs('compose.yaml');
  const services = compose!.services as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  const conf = fs.readFileSync(deploy('nginx.conf'), 'utf8');
  const upstreams = [...conf.matchAll(/server (gemma-\d+):8080/g)].map((m) => m[1]);
  for (const u of upstreams) {
    assert.ok(services[u!], `compose has ${u}`);
    assert.equal(services[u!].build.dockerfile, 'Dockerfile');
    assert.equal(services[u!].build.context, '..');
    assert.ok(services[u!].command.includes('--host=0.0.0.0'));
  }
  assert.ok(services.nginx.volumes.some((v: string) => v.startsWith('./nginx.conf:/etc/nginx/nginx.conf')));
  assert.match(conf, /hash \$gemma_affinity consistent;/);
  assert.match(conf, /proxy_buffering off;/);
  assert.match(conf, /proxy_next_upstream error timeout http_502 http_503 http_504 non_idempotent;/);
});
