/**
 * A two-turn conversation: ChatSession keeps the KV cache between turns, so the second turn
 * only prefills its new tokens.
 *
 *   npx tsx examples/chat.ts
 */
import { loadModel, ChatSession } from 'gemma-ts';

const { model, tokenizer } = await loadModel('demo');
const chat = new ChatSession(model, tokenizer!, { maxTokens: 16, temperature: 0 });
for (const question of ['Hello! Who are you?', 'Tell me more.']) {
  const answer = await chat.ask(question);
  console.log(`user: ${question}\nmodel: ${answer.text}\n[${answer.ids.length} tokens, ${answer.finishReason}]`);
}
chat.dispose();
model.dispose();
