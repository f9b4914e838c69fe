"""Exercise checkers: run a learner's function against the reference and print a verdict.

Each ``check_<name>(fn)`` calls fn on several cases (ordinary shapes and edge cases) and prints
one line: ✅ when every case matches the reference, or ❌ with the first failing case, what is
wrong with it and, when the output matches a known mistake, a hint. It returns True or False.
A wrong answer, or an exception raised by the learner's code, is reported, never raised:
a learner needs a message, not a traceback.

One module per topic of the book; every checker is importable from here.
"""
from .attention import check_causal_mask, check_scaled_dot_product_attention, check_sinusoidal_encoding
from .encoder_decoder import check_layer_norm
from .pretraining import check_mlm_mask
from .probability import check_cross_entropy, check_perplexity, check_softmax

__all__ = [
    "check_causal_mask", "check_cross_entropy", "check_layer_norm", "check_mlm_mask", "check_perplexity",
    "check_scaled_dot_product_attention", "check_sinusoidal_encoding", "check_softmax",
]
