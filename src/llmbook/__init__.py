"""llmbook: the small, tested Transformer package behind the interactive LLM textbook.

Used in every chapter.
"""
from .attention import MultiHeadAttention, causal_mask, padding_mask, scaled_dot_product_attention
from .models import BERT, GPT, BERTConfig, GPTConfig, Seq2Seq, Seq2SeqConfig

__version__ = "0.1.0"
__all__ = [
    "BERT", "BERTConfig", "GPT", "GPTConfig", "MultiHeadAttention", "Seq2Seq", "Seq2SeqConfig",
    "causal_mask", "padding_mask", "scaled_dot_product_attention",
]
