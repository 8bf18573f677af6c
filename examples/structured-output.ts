/**
 * Structured output: the answer is constrained to one JSON value valid under a JSON schema
 * (whatever the model would have written, only valid JSON can come out here).
 *
 *   npx tsx examples/structured-output.ts
 */
import { loadModel, generateText, encodeChat, type JsonSchema } from 'gemma-ts';

const schema: JsonSchema = {
  type: 'object',
  properties: { name: { type: 'string' }, colors: { type: 'array', items: { enum: ['red', 'green', 'blue'] }, maxItems: 3 } },
  required: ['name', 'colors'],
};
const { model, tokenizer } = await loadModel('demo');
const ids = encodeChat(tokenizer!, [{ role: 'user', content: 'Name a flag and its colors, as JSON.' }]);
const result = await generateText(model, tokenizer, ids, { maxTokens: 200, temperature: 0.8, seed: 7, responseFormat: { type: 'json_schema', schema } });
console.log(result.text);
console.log(JSON.stringify({ finishReason: result.finishReason, value: JSON.parse(result.text) }));
model.dispose();
