/**
 * Checkpoint formats: GGUF and safetensors (read and write), npz, ggml quant block codecs,
 * conversion and quantization to GGUF. Public as `gemma-ts/formats`.
 *
 * @module gemma-ts/formats
 */
export { readGGUF, writeGGUF, writeGGUFAsync, readTensorData, readTensorInto, metaNumber, metaString, metaBool, metaArray, GGUFValueType, GGMLType, ggmlTypeName, GGUF_MAGIC } from './gguf.js';
export type { GGUFFile, GGUFTensorInfo, GGUFValue, GGUFType, GGUFMetadataEntry, ReadGGUFOptions, WriteGGUFOptions, GGUFTensorToWrite, GGUFTensorToWriteAsync } from './gguf.js';
export { openGGUF, type GGUFSource, type OpenedGGUF } from './gguf-source.js';
export { openSafetensors, writeSafetensors, type SafetensorsSource, type TensorToWrite } from './safetensors.js';
export type { TensorSource, TensorInfo } from './tensor-source.js';
export { NpzArchive, parseNpy, type NpyHeader, type NpzArrayInfo } from './npz.js';
export { quantize, dequantize, dequantizeAll } from './quant.js';
export { DTYPE_LAYOUT, dtypeByteLength, type DType, type DTypeLayout } from './dtype.js';
export { bf16ToF32, f32ToBf16, f16ToF32, f32ToF16 } from './half.js';
export { convertToGGUF, quantizeModel, CONVERT_TYPES, QUANTIZE_TYPES, type ConvertOptions, type ConvertResult, type ConvertType, type QuantizeType, type OutputType } from './convert.js';
export { configFromGGUFMetadata, configToGGUFMetadata, hfToGgufName, ggufToHfName, type GemmaArch } from './gguf-names.js';
