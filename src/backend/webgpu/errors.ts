/**
 * Typed errors of the WebGPU backend. They extend ModelError, so the CLI prints them as one
 * `error: ...` line; `reason` tells them apart.
 */
import { ModelError } from '../../errors.js';

export type GpuErrorReason = 'unavailable' | 'device-lost' | 'out-of-memory' | 'validation' | 'limit';

export class GpuError extends ModelError {
  readonly reason: GpuErrorReason;
  constructor(reason: GpuErrorReason, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.reason = reason;
  }
}

/** No WebGPU adapter / device could be created (no GPU, no driver, no `webgpu` package). */
export class GpuUnavailableError extends GpuError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('unavailable', message, options);
  }
}

/** The device was lost (driver reset, GPU removed, destroyed): the backend cannot be used again. */
export class GpuDeviceLostError extends GpuError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('device-lost', message, options);
  }
}

/** A GPU allocation failed: the model or its caches do not fit in GPU memory. */
export class GpuOutOfMemoryError extends GpuError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('out-of-memory', message, options);
  }
}
