/**
 * Debian's Chromium (/usr/bin/chromium) for the browser tests, driven by playwright-core: the
 * presence check, the web build the pages import, and the launch flags every test uses.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { packageRoot } from '../../src/util/package-root.js';

export const CHROMIUM = '/usr/bin/chromium';

/** Headless, no sandbox (root in CI), no network of its own. */
const BASE_ARGS = ['--headless', '--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
/** 'none': no GPU; 'webgpu': WebGPU on SwiftShader (no GPU here). */
const GPU_ARGS = { none: ['--disable-gpu'], webgpu: ['--enable-unsafe-webgpu', '--enable-unsafe-swiftshader', '--use-webgpu-adapter=swiftshader'] };

/** The launch flags: the base set, the GPU mode's, then `extra`. */
export function chromiumArgs(gpu: keyof typeof GPU_ARGS, extra: readonly string[] = []): string[] {
  return [...BASE_ARGS, ...GPU_ARGS[gpu], ...extra];
}

/** Throw, naming the package, when Chromium is not installed (CI installs it). */
export function requireChromium(): void {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: install Debian's chromium package (apt-get install -y chromium)`);
}

/** Build dist/web (the bundle the test pages import). */
export function buildWeb(): void {
  execFileSync(process.execPath, [path.join(packageRoot(), 'scripts', 'build-web.mjs')], { stdio: 'pipe' });
}

/** A headless Chromium with chromiumArgs(gpu, extra). */
export function launchChromium(gpu: keyof typeof GPU_ARGS, extra: readonly string[] = []): Promise<Browser> {
  requireChromium();
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: chromiumArgs(gpu, extra) });
}
