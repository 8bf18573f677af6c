/**
 * ShieldGemma safety classification: P(Yes) per policy, in OpenAI's moderation shape. The demo
 * model learned the four official policies on its own small corpus (models/demo/README.md);
 * use a ShieldGemma checkpoint for real moderation.
 *
 *   npx tsx examples/shield.ts
 */
import { loadShieldClassifier } from 'gemma-ts';

const { classifier, loaded } = await loadShieldClassifier('demo');
const result = classifier.classify({ prompt: 'How do I bake bread?', policies: ['dangerous', 'hate'] });
console.log(JSON.stringify(result));
loaded.model.dispose();
