/**
 * Structured output: the answer is constrained to one JSON value valid under a JSON schema
 * (whatever the model would have written, only valid JSON can come out here).
 *
 *   npx tsx examples/structured-output.ts
 */
import { loadModel, generateText, encodeChat, type JsonSchema } from 'gemma-ts';

const schema: JsonSchema = {
  type: 'object',
  properties: { answer: { type: 'integer', minimum: -99, maximum: 198 } },
  required: ['answer'],
  additionalProperties: false,
};
const { model, tokenizer } = await loadModel('demo');
const ids = encodeChat(tokenizer!, [{ role: 'user', content: 'What is 48 + 27? Answer in JSON.' }]);
const result = await generateText(model, tokenizer, ids, { maxTokens: 40, temperature: 0, responseFormat: { type: 'json_schema', schema } });
console.log(result.text);
console.log(JSON.stringify({ finishReason: result.finishReason, value: JSON.parse(result.text) }));
model.dispose();
