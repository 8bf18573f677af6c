/** Training: the backward pass, loss, optimizers, data and the fine-tuning loop. */
export { finetune, evaluateLoss, countTargets, type FinetuneOptions, type FinetuneReport, type StepReport, type EvalReport } from './finetune.js';
export { loadTrainModel, saveFullModel, type LoadTrainOptions } from './checkpoint-io.js';
export { TrainModel, type Param, type TrainLinear } from './params.js';
export { loadDataset, loadJsonl, encodeLine, packExamples, type TrainExample, type Dataset, type DataOptions } from './data.js';
export { Optimizer, learningRate, globalGradNorm, clipGradients, type OptimizerName, type ScheduleName } from './optim.js';
export { sequenceForwardBackward, sequenceLoss } from './backward.js';
export { addLoraLayers, resolveTargets, loraScale, LoraLinear, ALL_LINEAR, type LoraConfig, type LoraModule } from './lora.js';
export { loadAdapter, applyLora, mergeAdapter, savePeftAdapter, saveGgufAdapter, checkAdapter, parseLoraSpec, type Adapter } from './adapter.js';
export { saveCheckpoint, loadCheckpoint, latestCheckpoint } from './checkpoint.js';
