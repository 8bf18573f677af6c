/**
 * The WebGPU backend for tests. Where no adapter can be created (no GPU, no driver), a test
 * fails under CI (CI=1: CI installs Mesa, so an adapter must exist) and is skipped with a
 * printed notice elsewhere.
 */
import type { TestContext } from 'node:test';
import { createWebGpuBackend, GpuUnavailableError, type WebGpuBackendInstance, type WebGpuBackendOptions } from '../../src/backend/webgpu/index.js';

let notice: string | undefined;

/** A fresh WebGPU backend, or undefined after t.skip(...) when none can be made outside CI. */
export async function webgpuBackend(t: TestContext, options: WebGpuBackendOptions = {}): Promise<WebGpuBackendInstance | undefined> {
  if (notice !== undefined && !process.env.CI) {
    t.skip(notice);
    return undefined;
  }
  try {
    return await createWebGpuBackend(options);
  } catch (e) {
    if (!(e instanceof GpuUnavailableError) || process.env.CI) throw e;
    notice = `WebGPU unavailable, skipped (CI fails here): ${e.message}`;
    process.stderr.write(`notice: ${notice}\n`);
    t.skip(notice);
    return undefined;
  }
}
