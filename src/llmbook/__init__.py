"""llmbook: the small, tested Transformer package behind the interactive LLM textbook.

Used in every chapter.
"""
# First, before any module computes with torch: one set of CPU kernels and one thread, so that the
# book's numbers reproduce on every x86-64 machine with AVX2 (see llmbook.numerics).
from . import numerics

numerics.pin()

from .attention import MultiHeadAttention, causal_mask, padding_mask, scaled_dot_product_attention  # noqa: E402
from .models import BERT, GPT, BERTConfig, GPTConfig, Seq2Seq, Seq2SeqConfig  # noqa: E402

__version__ = "0.1.0"
__all__ = [
    "BERT", "BERTConfig", "GPT", "GPTConfig", "MultiHeadAttention", "Seq2Seq", "Seq2SeqConfig",
    "causal_mask", "padding_mask", "scaled_dot_product_attention",
]
