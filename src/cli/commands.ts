import type { Command } from 'commander';
import { registerChatCommand } from './chat.js';
import { registerConvertCommands } from './convert.js';
import { registerFinetuneCommand } from './finetune.js';
import { registerEvalCommand } from './eval.js';
import { registerForwardCommand } from './forward.js';
import { registerMergeCommand } from './merge.js';
import { registerInfoCommand } from './info.js';
import { registerPullCommand } from './pull.js';
import { registerRunCommand } from './run.js';
import { registerSaeCommands } from './sae.js';
import { registerServeCommand } from './serve.js';
import { registerShieldCommands } from './shield.js';
import { registerTokenizeCommands } from './tokenize.js';

/** Every command's register function, in help order. */
export const ALL_COMMANDS: Array<(program: Command) => void> = [
  (p) => registerRunCommand(p),
  (p) => registerChatCommand(p),
  (p) => registerServeCommand(p),
  (p) => registerInfoCommand(p),
  (p) => registerForwardCommand(p),
  (p) => registerTokenizeCommands(p),
  (p) => registerConvertCommands(p),
  (p) => registerPullCommand(p),
  (p) => registerShieldCommands(p),
  (p) => registerSaeCommands(p),
  (p) => registerFinetuneCommand(p),
  (p) => registerMergeCommand(p),
  (p) => registerEvalCommand(p),
];
