/** Physical core count (Linux /proc/cpuinfo), else os.availableParallelism(); logical processors in browsers. */
export { physicalCores } from '../platform/threads.js';
