/**
 * Typed errors. Every bad input (malformed file, unknown config, bad flag) surfaces as one of
 * these, with a message that names the problem; callers can switch on `code`.
 */
export type GemmaErrorCode =
  | 'FORMAT_ERROR'
  | 'CONFIG_ERROR'
  | 'TOKENIZER_ERROR'
  | 'TEMPLATE_ERROR'
  | 'MODEL_ERROR'
  | 'USAGE_ERROR'
  | 'NETWORK_ERROR';

/** The base of every error gemma-ts throws on bad input; `code` says which kind. */
export class GemmaError extends Error {
  readonly code: GemmaErrorCode;
  constructor(code: GemmaErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A file does not follow its format (safetensors, GGUF, tokenizer.model, tokenizer.json ...). */
export class FormatError extends GemmaError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('FORMAT_ERROR', message, options);
  }
}

/** A model config is unknown, incomplete or inconsistent; `field` names the culprit. */
export class ConfigError extends GemmaError {
  readonly field: string | undefined;
  constructor(message: string, field?: string) {
    super('CONFIG_ERROR', field ? `${field}: ${message}` : message);
    this.field = field;
  }
}

/** A tokenizer file is missing or invalid, or a tokenizer was used wrongly. */
export class TokenizerError extends GemmaError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('TOKENIZER_ERROR', message, options);
  }
}

/** A chat template raised (e.g. a system role where the template forbids it) or failed to render. */
export class TemplateError extends GemmaError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('TEMPLATE_ERROR', message, options);
  }
}

/** A model cannot be loaded or run (missing files, unsupported tensor types, a disposed model, resource limits). */
export class ModelError extends GemmaError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('MODEL_ERROR', message, options);
  }
}

/** Bad command-line or API usage (missing flag, value out of range). */
export class UsageError extends GemmaError {
  constructor(message: string) {
    super('USAGE_ERROR', message);
  }
}
