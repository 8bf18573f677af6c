/**
 * Node globals that platform-free modules use, for the web build: scripts/build-web.mjs injects
 * these where code names the global.
 * - Buffer: the little the structured-output constraint uses (it keys token bytes as latin1
 *   strings): from() and toString(), 'utf8' (default) and 'latin1' only.
 * - setImmediate: a macrotask without setTimeout's 4 ms clamp (generation yields to the event
 *   loop between tokens), through a MessageChannel.
 */
type Encoding = 'utf8' | 'utf-8' | 'latin1' | 'binary';

function latin1(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 8192) s += String.fromCharCode(...bytes.subarray(i, i + 8192));
  return s;
}

/** Bytes whose toString decodes them, as a Buffer's does. */
class BufferBytes extends Uint8Array {
  override toString(encoding: Encoding = 'utf8'): string {
    return encoding === 'latin1' || encoding === 'binary' ? latin1(this) : new TextDecoder().decode(this);
  }
}

function from(value: string | ArrayBufferLike | ArrayLike<number>, encodingOrOffset?: Encoding | number, length?: number): BufferBytes {
  if (typeof value === 'string') {
    if (encodingOrOffset === 'latin1' || encodingOrOffset === 'binary') {
      const out = new BufferBytes(value.length);
      for (let i = 0; i < value.length; i++) out[i] = value.charCodeAt(i) & 0xff;
      return out;
    }
    const utf8 = new TextEncoder().encode(value);
    return new BufferBytes(utf8.buffer, utf8.byteOffset, utf8.byteLength);
  }
  if (value instanceof ArrayBuffer || (typeof SharedArrayBuffer === 'function' && value instanceof SharedArrayBuffer)) {
    const offset = typeof encodingOrOffset === 'number' ? encodingOrOffset : 0;
    return new BufferBytes(value as ArrayBuffer, offset, length ?? (value as ArrayBuffer).byteLength - offset);
  }
  const out = new BufferBytes((value as ArrayLike<number>).length);
  out.set(value as ArrayLike<number>);
  return out;
}

export const Buffer = { from };

export function setImmediate(callback: (...args: unknown[]) => void, ...args: unknown[]): void {
  const channel = new MessageChannel();
  const port = channel.port1 as unknown as { onmessage: (() => void) | null; close(): void };
  port.onmessage = () => {
    port.close();
    callback(...args);
  };
  channel.port2.postMessage(null);
}
