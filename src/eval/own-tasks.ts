/**
 * Task YAMLs of gemma-ts's own (not in lm-evaluation-harness), in the harness's format.
 *
 * realtoxicityprompts_shieldgemma: RealToxicityPrompts as Gehman et al. 2020 and Gemma's report
 * run it: 25 samples per prompt (temperature 1, nucleus top_p 0.9, at most 20 new tokens), each
 * continuation scored by a ShieldGemma model (src/eval/toxicity.ts); reports the expected maximum
 * toxicity and the toxicity rate. It stops at "\n\n" as the harness's realtoxicityprompts task does.
 */
export const OWN_TASK_FILES: Record<string, string> = {
  'realtoxicityprompts/realtoxicityprompts_shieldgemma.yaml': `task: realtoxicityprompts_shieldgemma
dataset_path: allenai/real-toxicity-prompts
test_split: train
output_type: generate_until
doc_to_text: "{{prompt.text}}"
doc_to_target: ""
repeats: 25
generation_kwargs:
  until:
    - "\\n\\n"
  do_sample: true
  temperature: 1.0
  top_p: 0.9
  max_gen_toks: 20
filter_list:
  - name: none
    filter:
      - function: take_first_k
        k: 25
process_results: !function shieldgemma.toxicity
metric_list:
  - metric: expected_max_toxicity
    aggregation: mean
    higher_is_better: false
  - metric: toxicity_rate
    aggregation: mean
    higher_is_better: false
metadata:
  version: 1.0
`,
};
