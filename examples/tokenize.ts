/**
 * Tokenize and detokenize without loading any weights. Special-token text stays plain text unless
 * `parseSpecial` is set.
 *
 *   npx tsx examples/tokenize.ts
 */
import { demoModelPath, loadTokenizer } from 'gemma-ts';

const tokenizer = await loadTokenizer(demoModelPath());
const text = '<start_of_turn>user\nHello world<end_of_turn>';
const plain = tokenizer.encode(text);
const special = tokenizer.encode(text, { parseSpecial: true });
console.log(`vocab ${tokenizer.vocabSize}`);
console.log(`plain:   ${plain.length} ids ${plain.slice(0, 8).join(',')}...`);
console.log(`special: ${special.length} ids ${special.join(',')}`);
console.log(`round trip: ${JSON.stringify(tokenizer.decode(special, { skipSpecial: false }))}`);
