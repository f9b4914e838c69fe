"""Exercise checkers: run a learner's function against the reference and print a verdict.

Each ``check_<name>(fn)`` calls fn on several cases (ordinary shapes and edge cases) and prints
one line: [PASS] when every case matches the reference, or [FAIL] with the first failing case, what
is wrong with it and, when the output matches a known mistake, a hint. It returns a Verdict
(``llmbook.checks.verdict``), true or false, that displays nothing of its own in a notebook.
``check_<name>(fn, cases="visible")`` or ``cases="hidden"`` runs only the ordinary or only the edge
cases, as the test cells of a graded nbgrader assignment do (tools/make_nbgrader_course.py).
A wrong answer, or an exception raised by the learner's code, is reported, never raised:
a learner needs a message, not a traceback.

One module per topic of the book; every checker is importable from here.

Used in every chapter, by its exercises.
"""
from .adaptation import check_dpo_loss, check_lora_forward, check_prompt_mask
from .applications import check_confusion_matrix, check_few_shot_prompt
from .attention import check_causal_mask, check_scaled_dot_product_attention, check_sinusoidal_encoding
from .emergence import check_answer_log_likelihood, check_exact_match, check_induction_score
from .encoder_decoder import check_kv_head_of, check_layer_norm, check_residual_sublayer, check_teacher_forcing_targets
from .inference import check_kv_cache_bytes, check_quantize_int8, check_top_p_filter
from .pretraining import check_lr_schedule, check_mlm_mask, check_nsp_pairs
from .probability import check_cross_entropy, check_perplexity, check_perplexity_conversion, check_softmax
from .scaling import check_compute_optimal, check_fp8_round, check_power_law_fit
from .serving import check_block_lookup, check_online_softmax_step, check_speculative_accept

__all__ = [
    "check_causal_mask", "check_cross_entropy", "check_layer_norm", "check_mlm_mask", "check_perplexity",
    "check_perplexity_conversion",
    "check_scaled_dot_product_attention", "check_sinusoidal_encoding", "check_softmax",
    "check_residual_sublayer", "check_teacher_forcing_targets", "check_kv_head_of",
    "check_compute_optimal", "check_fp8_round", "check_power_law_fit",
    "check_kv_cache_bytes", "check_quantize_int8", "check_top_p_filter",
    "check_block_lookup", "check_online_softmax_step", "check_speculative_accept",
    "check_lr_schedule", "check_nsp_pairs",
    "check_answer_log_likelihood", "check_exact_match", "check_induction_score",
    "check_confusion_matrix", "check_few_shot_prompt",
    "check_dpo_loss", "check_lora_forward", "check_prompt_mask",
]
