/**
 * --apply-chat-template with and without fewshot_as_multiturn renders as the harness: the fixture
 * (test/fixtures/eval/chat-rendered.json) was made by scripts/eval-fixtures.py with the harness's
 * own fewshot_context / build_qa_turn / multiple_input_context / multiturn_to_singleturn and the demo
 * model's chat template rendered as transformers renders it.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { BUILTIN_TASK_FILES } from '../src/eval/builtin.js';
import { evaluate } from '../src/eval/evaluate.js';
import type { EvalLM } from '../src/eval/lm.js';
import { TaskRegistry } from '../src/eval/registry.js';
import { Task, continuingChatTemplate } from '../src/eval/task.js';
import { renderChat } from '../src/tokenizer/chat.js';
import { loadTokenizer } from '../src/tokenizer/load.js';
import { registerEvalCommand } from '../src/cli/eval.js';
import { runCli } from './helpers/cli.js';
import { repoRoot } from './helpers/paths.js';

interface ChatFixture {
  task: string;
  num_fewshot: number;
  doc: Record<string, unknown>;
  fewshot_docs: Array<Record<string, unknown>>;
  system_instruction: string | null;
  fewshot_as_multiturn: boolean;
  context: string | string[];
}
const { fixtures } = JSON.parse(fs.readFileSync(path.join(repoRoot(), 'test/fixtures/eval/chat-rendered.json'), 'utf8')) as { fixtures: ChatFixture[] };
const tokenizer = await loadTokenizer(path.join(repoRoot(), 'models/demo'));
const chatTemplate = continuingChatTemplate((messages, add) => renderChat(tokenizer, messages, { addGenerationPrompt: add }));

function builtinTask(name: string): Task {
  const r = new TaskRegistry();
  r.addFiles(BUILTIN_TASK_FILES);
  const res = r.resolve([name]);
  assert.deepEqual(res.errors, []);
  return new Task(res.tasks[0]!);
}

for (const fx of fixtures) {
  test(`${fx.task} ${fx.num_fewshot}-shot, chat template, fewshot_as_multiturn ${fx.fewshot_as_multiturn}${fx.system_instruction ? ', system instruction' : ''}: as the harness`, async () => {
    const task = builtinTask(fx.task);
    task.useDocs([fx.doc], fx.fewshot_docs);
    await task.prepareFewshot(fx.num_fewshot, 1234);
    const ctx = task.fewshotContext(task.docs[0]!, {
      numFewshot: fx.num_fewshot,
      chatTemplate,
      fewshotAsMultiturn: fx.fewshot_as_multiturn,
      ...(fx.system_instruction ? { systemInstruction: fx.system_instruction } : {}),
    });
    assert.deepEqual(ctx, fx.context);
  });
}

test('a final assistant message (gen_prefix) is continued, not closed, as transformers continue_final_message does', () => {
  const t = chatTemplate([{ role: 'user', content: 'Q?' }, { role: 'assistant', content: 'The answer is' }], false);
  assert.ok(t.endsWith('<start_of_turn>model\nThe answer is'), JSON.stringify(t));
});

test('evaluate(): fewshot_as_multiturn defaults to true with applyChatTemplate and is refused without it', async () => {
  const dir = fs.mkdtempSync(path.join(repoRoot(), 'dist', 'eval-chat-'));
  try {
    fs.writeFileSync(path.join(dir, 'd.jsonl'), ['{"q": "1+1", "a": "2"}', '{"q": "2+2", "a": "4"}', '{"q": "3+3", "a": "6"}'].join('\n') + '\n');
    fs.writeFileSync(path.join(dir, 't.yaml'), 'task: chat_gen\ndataset_path: json\ndataset_kwargs: {data_files: {test: d.jsonl, train: d.jsonl}}\ntest_split: test\nfewshot_split: train\nfewshot_config: {sampler: first_n}\noutput_type: generate_until\ndoc_to_text: "{{q}}="\ndoc_to_target: "{{a}}"\ngeneration_kwargs: {until: ["\\n"], max_gen_toks: 2}\n');
    const contexts: string[] = [];
    const lm: EvalLM & { chatTemplate: typeof chatTemplate } = {
      id: 'x',
      chatTemplate,
      loglikelihood: async () => [],
      loglikelihoodRolling: async () => [],
      generateUntil: async (reqs) => reqs.map((r) => (contexts.push(r.context), '2')),
    };
    const file = path.join(dir, 't.yaml');
    const res = await evaluate(lm, [file], { applyChatTemplate: true, numFewshot: 1, limit: 1 });
    assert.equal(res.fewshot_as_multiturn, true);
    // the first document of the few-shot split (first_n; a split other than the test split is not filtered) as its own user / model turns
    assert.equal(contexts[0], '<bos><start_of_turn>user\n1+1=<end_of_turn>\n<start_of_turn>model\n2<end_of_turn>\n<start_of_turn>user\n1+1=<end_of_turn>\n<start_of_turn>model\n');
    await evaluate(lm, [file], { applyChatTemplate: true, fewshotAsMultiturn: false, numFewshot: 1, limit: 1 });
    assert.equal(contexts[1], '<bos><start_of_turn>user\n1+1= 2\n\n1+1=<end_of_turn>\n<start_of_turn>model\n');
    await assert.rejects(evaluate(lm, [file], { fewshotAsMultiturn: true }), /needs --apply-chat-template/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('gemma eval --apply-chat-template --fewshot-as-multiturn false: one user turn; the flag alone is refused', async () => {
  const dir = fs.mkdtempSync(path.join(repoRoot(), 'dist', 'eval-chat-cli-'));
  try {
    fs.writeFileSync(path.join(dir, 'd.jsonl'), ['{"q": "1+1", "a": "2"}', '{"q": "2+2", "a": "4"}'].join('\n') + '\n');
    fs.writeFileSync(path.join(dir, 't.yaml'), 'task: chat_cli\ndataset_path: json\ndataset_kwargs: {data_files: {test: d.jsonl}}\noutput_type: generate_until\nfewshot_config: {sampler: first_n}\ndoc_to_text: "What is {{q}}?"\ndoc_to_target: "{{a}}"\ngeneration_kwargs: {until: ["\\n"], max_gen_toks: 2}\n');
    const out = path.join(dir, 'out');
    const args = ['eval', '--backend', 'js', '--model', 'demo', '--tasks', path.join(dir, 't.yaml'), '--output-path', out, '--num-fewshot', '1', '--limit', '1', '--log-samples', '--no-cache'];
    const r = await runCli(registerEvalCommand, [...args, '--apply-chat-template', '--fewshot-as-multiturn', 'false']);
    assert.equal(r.error, undefined, String(r.error));
    assert.equal(JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8')).fewshot_as_multiturn, false);
    const sample = JSON.parse(fs.readFileSync(path.join(out, 'samples_chat_cli.jsonl'), 'utf8').split('\n')[0]!);
    // the same split: the evaluated document is left out of its own examples
    assert.equal(sample.arguments.gen_args_0.arg_0, '<bos><start_of_turn>user\nWhat is 2+2? 4\n\nWhat is 1+1?<end_of_turn>\n<start_of_turn>model\n');
    const bad = await runCli(registerEvalCommand, [...args, '--fewshot-as-multiturn']);
    assert.match(String((bad.error as Error)?.message), /needs --apply-chat-template/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
