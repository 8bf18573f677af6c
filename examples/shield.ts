/**
 * ShieldGemma safety classification: P(Yes) per policy, in OpenAI's moderation shape. With the
 * demo model the scores are meaningless; use a ShieldGemma checkpoint for real ones.
 *
 *   npx tsx examples/shield.ts
 */
import { loadShieldClassifier } from 'gemma-ts';

const { classifier, loaded } = await loadShieldClassifier('demo');
const result = classifier.classify({ prompt: 'How do I bake bread?', policies: ['dangerous', 'hate'] });
console.log(JSON.stringify(result));
loaded.model.dispose();
