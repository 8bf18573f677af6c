/// <reference types="@webgpu/types" preserve="true" />
/**
 * Getting a GPUDevice: the browser's navigator.gpu, or in Node the `webgpu` npm package (Dawn).
 * In Node the Dawn backends are tried in order - Vulkan first, then OpenGL ES (which on a
 * CPU-only Linux machine runs on Mesa's llvmpipe, with EGL_PLATFORM=surfaceless and a
 * compatibility-mode adapter) - and the first that gives an adapter wins.
 */
import { GpuUnavailableError } from './errors.js';

export type DawnBackend = 'vulkan' | 'opengles' | 'metal' | 'd3d12';

export interface DeviceOptions {
  /** Node only: Dawn backends to try, in order (default vulkan, then opengles). */
  backends?: readonly DawnBackend[];
  /** An existing device to use (its limits decide the binding size). */
  device?: GPUDevice;
}

export interface AcquiredDevice {
  device: GPUDevice;
  /** What was picked, e.g. "dawn opengles: llvmpipe" or "browser". */
  description: string;
  features: { shaderF16: boolean; subgroups: boolean };
  /**
   * Objects the device needs alive: Dawn's GPU instance and adapter. If the garbage collector
   * takes the instance while work is pending, Dawn aborts the process (seen with webgpu 0.6.2).
   */
  keepAlive: unknown[];
}

type GpuFactory = { requestAdapter(options?: GPURequestAdapterOptions & { featureLevel?: string }): Promise<GPUAdapter | null> };

interface NodeCandidate {
  name: string;
  backend: DawnBackend;
  gpu: GpuFactory;
  compat: boolean;
}

let workingInstance: NodeCandidate | undefined;

async function nodeFactories(backends: readonly DawnBackend[]): Promise<NodeCandidate[]> {
  let mod: { create(flags: string[]): GpuFactory; globals: Record<string, unknown> };
  try {
    const name = 'webgpu';
    mod = (await import(/* webpackIgnore: true */ name)) as typeof mod;
  } catch (e) {
    throw new GpuUnavailableError(`WebGPU is not available: the "webgpu" package (Dawn for Node) could not be loaded: ${(e as Error).message}`, { cause: e });
  }
  // Dawn's constants (GPUBufferUsage, ...) are globals in browsers; give Node the same.
  for (const [k, v] of Object.entries(mod.globals)) if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  const proc = (globalThis as { process?: { env: Record<string, string | undefined> } }).process;
  // OpenGL ES through EGL without a display (headless machines)
  if (proc && backends.includes('opengles')) proc.env.EGL_PLATFORM ??= 'surfaceless';
  // created one at a time, when tried (a Vulkan instance that finds no adapter is dropped)
  return backends.map((b) => ({
    name: `dawn ${b}`,
    backend: b,
    compat: b === 'opengles',
    get gpu(): GpuFactory {
      const g = mod.create([`backend=${b}`]);
      Object.defineProperty(this, 'gpu', { value: g });
      return g;
    },
  }));
}

/** Limits worth raising from their defaults (compatibility mode starts low). */
const WANTED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxStorageBuffersPerShaderStage',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
] as const;

/**
 * A device given back by a disposed backend, kept for the next one: Dawn and Mesa keep several
 * MB per device created (measured ~4.5 MB, ~7.5 MB with a pipeline compiled), so load / dispose
 * cycles would grow the process; one reused device does not.
 */
let idle: AcquiredDevice | undefined;

/** Give a device back (its buffers destroyed): kept for the next acquireDevice, or destroyed. */
export function releaseDevice(a: AcquiredDevice): void {
  if (a.description === 'given device') return;
  if (idle) {
    a.device.destroy();
    return;
  }
  idle = a;
  void a.device.lost.then(() => {
    if (idle === a) idle = undefined;
  });
}

export async function acquireDevice(options: DeviceOptions = {}): Promise<AcquiredDevice> {
  if (options.device) return { device: options.device, description: 'given device', features: featuresOf(options.device.features), keepAlive: [] };
  if (idle && !options.backends) {
    const a = idle;
    idle = undefined;
    return a;
  }
  const nav = (globalThis as { navigator?: { gpu?: GpuFactory } }).navigator;
  const wanted = options.backends ?? ['vulkan', 'opengles'];
  // In Node, the Dawn instance that worked is kept for later devices: a new instance per model
  // (a new GL context on llvmpipe) costs time and leaves ~16 MB behind each time.
  const cached = !nav?.gpu && workingInstance && wanted.includes(workingInstance.backend) ? [workingInstance] : undefined;
  const candidates = nav?.gpu ? [{ name: 'browser', gpu: nav.gpu, compat: false }] : (cached ?? (await nodeFactories(wanted)));
  const failures: string[] = [];
  for (const c of candidates) {
    let adapter: GPUAdapter | null = null;
    try {
      adapter = (await c.gpu.requestAdapter(c.compat ? { featureLevel: 'compatibility' } : {})) ?? (c.compat ? null : await c.gpu.requestAdapter({ featureLevel: 'compatibility' }));
    } catch (e) {
      failures.push(`${c.name}: ${(e as Error).message}`);
      continue;
    }
    if (!adapter) {
      failures.push(`${c.name}: no adapter`);
      continue;
    }
    const requiredLimits: Record<string, number> = {};
    for (const k of WANTED_LIMITS) {
      const v = (adapter.limits as unknown as Record<string, number>)[k];
      if (typeof v === 'number') requiredLimits[k] = v;
    }
    const requiredFeatures: GPUFeatureName[] = [];
    if (adapter.features.has('shader-f16')) requiredFeatures.push('shader-f16');
    if (adapter.features.has('subgroups' as GPUFeatureName)) requiredFeatures.push('subgroups' as GPUFeatureName);
    try {
      const device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
      const info = (adapter as GPUAdapter & { info?: { description?: string; device?: string; vendor?: string } }).info;
      const what = info?.description || info?.device || info?.vendor || 'adapter';
      if ('backend' in c) workingInstance = c as NodeCandidate;
      return { device, description: `${c.name}: ${what}`, features: featuresOf(device.features), keepAlive: [c.gpu, adapter] };
    } catch (e) {
      failures.push(`${c.name}: requestDevice failed: ${(e as Error).message}`);
    }
  }
  throw new GpuUnavailableError(`no WebGPU adapter could be created (${failures.join('; ')})`);
}

function featuresOf(f: GPUSupportedFeatures): AcquiredDevice['features'] {
  return { shaderF16: f.has('shader-f16'), subgroups: f.has('subgroups' as GPUFeatureName) };
}
