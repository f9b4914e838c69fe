"""Three Transformer models with dataclass configs: GPT (decoder-only), BERT (encoder), Seq2Seq.

They share one vocabulary: every config extends ``TransformerConfig`` (``context_length``, ``d_model``,
...); token ids come in as ``input_ids`` (Seq2Seq's decoder: ``decoder_input_ids``), per-position
targets as ``targets`` (-100 = ignore); ``return_attention=True`` asks for attention weights,
``new_kv_cache()`` builds a cache for generation and ``num_parameters()`` counts parameters.
Every model returns an output object with ``.logits``, ``.loss`` (when targets or labels are given)
and ``.attentions`` (one (B, H, T, T_k) tensor per layer with ``return_attention=True``, else None;
T_k = T unless a KV cache holds earlier keys). A GPT with a mixture of experts (``GPTConfig(n_experts=8)``)
also returns its load-balancing loss as ``.aux_loss``; ``num_active_parameters()`` counts what one token uses.

Taught in chapters 4, Encoder and decoder, and 5, Pretraining; the mixture of experts in chapter 8,
Scaling and unit scaling.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import NORMS, DecoderBlock, EncoderBlock, MoEFeedForward, activation_fn, norm_layer
from .kv_cache import KVCache
from .positional import LearnedPositions, RotaryEmbedding, SinusoidalPositions

POS_ENCODINGS = ("learned", "sinusoidal", "rope")


def _check_config(cfg) -> None:
    """Raise ValueError naming the first setting that cannot build a model."""
    for name in ("vocab_size", "src_vocab_size", "tgt_vocab_size", "context_length", "d_model", "n_heads"):
        value = getattr(cfg, name, 1)
        if value < 1:
            raise ValueError(f"{name}={value} must be at least 1")
    if cfg.d_model % cfg.n_heads:
        raise ValueError(f"d_model={cfg.d_model} must be divisible by n_heads={cfg.n_heads}")
    if cfg.pos_encoding not in POS_ENCODINGS:
        raise ValueError(f"pos_encoding={cfg.pos_encoding!r}; choose one of {POS_ENCODINGS}")
    if not 0.0 <= cfg.dropout < 1.0:
        raise ValueError(f"dropout={cfg.dropout} must lie in [0, 1)")
    activation_fn(cfg.activation)
    for name, value in asdict(cfg).items():
        if isinstance(value, int) and not isinstance(value, bool) and value < 0:
            raise ValueError(f"{name}={value} must not be negative")


def check_token_ids(ids: torch.Tensor, vocab_size: int, name: str = "token ids") -> None:
    """Raise TypeError/ValueError unless ids is an integer (B, T) tensor with values in [0, vocab_size)."""
    if not isinstance(ids, torch.Tensor) or ids.dtype not in (torch.long, torch.int):
        raise TypeError(f"{name} must be an integer torch.Tensor, got {type(ids).__name__} "
                        f"{getattr(ids, 'dtype', '')}")
    if ids.dim() != 2:
        raise ValueError(f"{name} must have shape (B, T), got {tuple(ids.shape)}")
    if ids.numel():
        lo, hi = (int(v) for v in torch.aminmax(ids))  # one reduction, one wait for the device
        if lo < 0 or hi >= vocab_size:
            bad = lo if lo < 0 else hi
            raise ValueError(f"{name} contain {bad}, outside the vocabulary [0, {vocab_size})")


def _check_length(T: int, context_length: int, what: str = "sequence") -> None:
    if T > context_length:
        raise ValueError(f"{what} of length {T} is longer than the context length {context_length}")


def _key_mask(attention_mask, B, T_k):
    """(B, T_k) 1/0 or bool -> bool (B, 1, 1, T_k), True for real tokens; None stays None."""
    if attention_mask is None:
        return None
    if attention_mask.shape != (B, T_k):
        raise ValueError(f"attention_mask must have shape (B, T) = {(B, T_k)}, got {tuple(attention_mask.shape)}")
    return attention_mask.bool()[:, None, None, :]


def _positions_from_mask(attention_mask, T):
    """Position ids that skip padding: with left padding the first real token gets position 0."""
    pos = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    return pos[:, -T:]


def _position_module(cfg):
    if cfg.pos_encoding == "learned":
        return LearnedPositions(cfg.context_length, cfg.d_model)
    if cfg.pos_encoding == "sinusoidal":
        return SinusoidalPositions(cfg.context_length, cfg.d_model)
    return None  # rope: applied inside attention


def _embedding_scale(cfg) -> float:
    """Factor on token embeddings. A fixed sinusoidal table has entries of size ~1; token vectors
    initialised at std 0.02 would drown in it, so (as in Vaswani et al.) they are initialised at
    std 1/sqrt(d_model) and multiplied by sqrt(d_model), entering at the same scale."""
    return math.sqrt(cfg.d_model) if cfg.pos_encoding == "sinusoidal" else 1.0


def _init_token_embedding(emb: nn.Embedding, cfg) -> None:
    if cfg.pos_encoding == "sinusoidal":
        nn.init.normal_(emb.weight, 0.0, cfg.d_model ** -0.5)


def _rotary(cfg, base=10000.0, scale=1.0):
    if cfg.pos_encoding != "rope":
        return None
    return RotaryEmbedding(cfg.d_model // cfg.n_heads, cfg.context_length, base, scale)


def _init_weights(module: nn.Module, std: float = 0.02) -> None:
    """GPT-2/BERT initialisation: normal(0, std) weights (std 0.02 by default), zero biases, unit LayerNorm."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, std)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, LearnedPositions):
            nn.init.normal_(m.weight, 0.0, std)


def _lm_loss(logits, targets):
    """Mean cross-entropy over positions whose target is not -100."""
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100)


def count_parameters(module: nn.Module) -> int:
    """Number of parameters of any module; a weight shared by two layers counts once."""
    return sum(p.numel() for p in module.parameters())


@dataclass
class ModelOutput:
    """What every model returns: logits, the loss when targets are given, attention weights when asked.

    aux_loss: a GPT with a mixture of experts (n_experts > 0) puts here, on every forward, the mean over
    its layers of the load-balancing loss (llmbook.blocks.load_balancing_loss); None for other models.
    It is not part of .loss (see GPT.forward).
    """

    logits: torch.Tensor
    loss: torch.Tensor | None = None
    attentions: list | None = None
    aux_loss: torch.Tensor | None = field(default=None, kw_only=True)  # keyword: subclasses add positional fields


# ----------------------------------------------------------------------------- what all share
@dataclass
class TransformerConfig:
    """The settings every model has; GPTConfig, BERTConfig and Seq2SeqConfig add vocabulary and
    layer counts and change some defaults. Raises ValueError for a setting that cannot build a model."""

    context_length: int = 128  # the most positions the model can see
    n_heads: int = 4
    d_model: int = 128
    d_ff: int | None = None  # default 4 * d_model
    dropout: float = 0.0
    bias: bool = True
    norm_first: bool = True  # pre-LN (GPT-2); False gives post-LN (the original Transformer, BERT)
    pos_encoding: str = "learned"
    activation: str = "gelu"
    layer_norm_eps: float = 1e-5

    def __post_init__(self):
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model
        _check_config(self)


def _run_blocks(blocks, x, return_attention, kv_cache=None, cross_cache=None, **kwargs):
    """Run x through the blocks, giving block i layer i of each cache.

    Returns (x, self-attention weights, cross-attention weights): lists with one tensor (or None)
    per block when return_attention, else None.
    """
    attentions, cross_attentions = ([], []) if return_attention else (None, None)
    for i, block in enumerate(blocks):
        caches = {}
        if kv_cache is not None:
            caches["kv_cache"] = kv_cache[i]
        if cross_cache is not None:
            caches["cross_cache"] = cross_cache[i]
        x, weights, cross_weights = block(x, return_attention=return_attention, **kwargs, **caches)
        if return_attention:
            attentions.append(weights)
            cross_attentions.append(cross_weights)
    return x, attentions, cross_attentions


class _Transformer(nn.Module):
    """What the three models share: the embedding step and the parameter count.

    A subclass sets pos_emb, drop and emb_scale, and type_emb and emb_norm (both None except in BERT).
    """

    def num_parameters(self, non_embedding: bool = False) -> int:
        """Number of parameters (a tied weight counts once). non_embedding=True leaves out the token,
        segment and learned position tables: the N of the scaling laws (Kaplan et al., 2020)."""
        n = count_parameters(self)
        if non_embedding:
            tables = {id(m.weight): m.weight for m in self.modules()
                      if isinstance(m, (nn.Embedding, LearnedPositions))}
            n -= sum(w.numel() for w in tables.values())
        return n

    def _embed(self, token_emb, ids, positions, token_type_ids=None):
        """Token vectors (times emb_scale), plus segment vectors (BERT) and position vectors (learned or
        sinusoidal; rope turns queries and keys inside attention instead), then BERT's LayerNorm and dropout."""
        x = token_emb(ids)
        if self.emb_scale != 1.0:  # skip the no-op multiplication on the hot path
            x = x * self.emb_scale
        if token_type_ids is not None:
            x = x + self.type_emb(token_type_ids)
        if self.pos_emb is not None:
            x = x + self.pos_emb(positions)
        if self.emb_norm is not None:
            x = self.emb_norm(x)
        return self.drop(x)


# ----------------------------------------------------------------------------------------- GPT
@dataclass
class GPTConfig(TransformerConfig):
    """A decoder-only language model: GPT-2's block (pre-LN, tanh GELU, tied output layer) by default.

    The options of a modern decoder (Llama: norm="rmsnorm", gated_ffn=True, activation="silu",
    pos_encoding="rope", bias=False, tie_weights=False, and often n_kv_heads < n_heads) change
    nothing while left at their defaults. So does the mixture of experts: n_experts > 0 replaces every
    feed-forward network by n_experts of them (each d_ff wide, gated with gated_ffn=True) and a router
    that sends each token to moe_top_k of them (Mixtral: n_experts=8, moe_top_k=2; Switch: moe_top_k=1).
    """

    vocab_size: int = 65
    n_layers: int = 4
    activation: str = "gelu_tanh"
    tie_weights: bool = True  # the output layer reuses the token embedding matrix
    norm: str = "layernorm"  # or "rmsnorm", in every block and before the output layer (eps: layer_norm_eps)
    gated_ffn: bool = False  # W_down(act(W_gate x) * W_up x); with activation="silu" this is SwiGLU
    n_kv_heads: int | None = None  # key/value heads; None = n_heads; fewer: grouped-query attention, 1: multi-query
    rope_theta: float = 10000.0  # the base of the rotary angles (pos_encoding="rope")
    rope_interpolation: float = 1.0  # position interpolation: rotary positions are divided by this factor
    n_experts: int = 0  # > 0: a mixture of experts in every block (llmbook.blocks.MoEFeedForward); 0 = dense
    moe_top_k: int = 2  # the experts each token is sent to (n_experts > 0 only)

    def __post_init__(self):
        super().__post_init__()
        _check_gpt_options(self)


def _check_gpt_options(cfg) -> None:
    """Raise ValueError naming the first option of a modern decoder that cannot build a model."""
    if cfg.norm not in NORMS:
        raise ValueError(f"norm={cfg.norm!r}; choose one of {NORMS}")
    if cfg.n_kv_heads is not None and (not 1 <= cfg.n_kv_heads <= cfg.n_heads or cfg.n_heads % cfg.n_kv_heads):
        raise ValueError(f"n_kv_heads={cfg.n_kv_heads} must divide n_heads={cfg.n_heads} "
                         f"(1 <= n_kv_heads <= n_heads)")
    if cfg.gated_ffn and cfg.d_ff == 0:
        raise ValueError("gated_ffn=True needs a feed-forward network, but d_ff=0")
    _check_moe_options(cfg)
    if not cfg.rope_theta > 1:
        raise ValueError(f"rope_theta={cfg.rope_theta} must be > 1")
    if not cfg.rope_interpolation >= 1:
        raise ValueError(f"rope_interpolation={cfg.rope_interpolation} must be >= 1 (it divides the positions)")
    rope_defaults = (cfg.rope_theta, cfg.rope_interpolation) == (10000.0, 1.0)
    if cfg.pos_encoding != "rope" and not rope_defaults:
        raise ValueError(f"rope_theta={cfg.rope_theta} and rope_interpolation={cfg.rope_interpolation} apply to "
                         f"pos_encoding='rope' only, not {cfg.pos_encoding!r}")


def _check_moe_options(cfg) -> None:
    """Raise ValueError naming the mixture-of-experts setting that cannot build a model."""
    if cfg.n_experts == 0:
        if cfg.moe_top_k != 2:
            raise ValueError(f"moe_top_k={cfg.moe_top_k} applies to a mixture of experts only, but n_experts=0")
        return
    if cfg.d_ff == 0:
        raise ValueError(f"n_experts={cfg.n_experts} needs a feed-forward network, but d_ff=0")
    if not 1 <= cfg.moe_top_k <= cfg.n_experts:
        raise ValueError(f"moe_top_k={cfg.moe_top_k} must lie in [1, n_experts={cfg.n_experts}]")


class GPT(_Transformer):
    """Decoder-only language model: predicts token t+1 from tokens 0..t."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = c = config
        self.tok_emb = nn.Embedding(c.vocab_size, c.d_model)
        self.pos_emb = _position_module(c)
        self.type_emb = self.emb_norm = None  # BERT's segment table and embedding LayerNorm
        rotary = _rotary(c, c.rope_theta, c.rope_interpolation)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(
            DecoderBlock(c.d_model, c.n_heads, c.d_ff, c.dropout, c.norm_first, c.activation,
                         c.layer_norm_eps, c.bias, rotary=rotary, n_kv_heads=c.n_kv_heads, norm=c.norm,
                         gated_ffn=c.gated_ffn, n_experts=c.n_experts, moe_top_k=c.moe_top_k)
            for _ in range(c.n_layers)
        )
        self.ln_f = norm_layer(c.norm, c.d_model, c.layer_norm_eps) if c.norm_first else nn.Identity()
        self.lm_head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        _init_weights(self)
        _init_token_embedding(self.tok_emb, c)
        self.emb_scale = _embedding_scale(c)
        if c.tie_weights:
            self.lm_head.weight = self.tok_emb.weight

    def new_kv_cache(self) -> KVCache:
        """An empty cache of keys and values for every layer, for step-by-step generation."""
        return KVCache(self.config.n_layers, self.config.context_length)

    def num_active_parameters(self, non_embedding: bool = False) -> int:
        """Parameters one token passes through: num_parameters(non_embedding) less, in every mixture-of-
        experts layer, the n_experts - moe_top_k experts it is not sent to (the router counts). The N of
        C ~ 6 N D for a mixture of experts; for a dense model the same as num_parameters."""
        idle = sum((len(b.ff.experts) - b.ff.top_k) * count_parameters(b.ff.experts[0])
                   for b in self.blocks if isinstance(b.ff, MoEFeedForward))
        return self.num_parameters(non_embedding) - idle

    def _aux_loss(self):
        """Mean over the layers of the load-balancing losses of the last forward; None for a dense model."""
        if not self.config.n_experts:
            return None
        losses = [b.ff.aux_loss for b in self.blocks]
        return sum(losses) / len(losses)

    def forward(self, input_ids, targets=None, return_attention=False, kv_cache=None, attention_mask=None):
        """input_ids: (B, T) token ids; targets: (B, T) next-token ids (-100 = ignore).

        kv_cache: a KVCache holding earlier positions (input_ids are the new tokens after them).
        attention_mask: (B, past + T), 1 for real tokens, 0 for padding (left padding for batches).
        Returns ModelOutput with logits (B, T, vocab_size). With n_experts > 0, .aux_loss holds the
        load-balancing loss (mean over layers), and .loss stays the language-model cross-entropy alone:
        it is what perplexity and every evaluation read. Training adds the weighted aux_loss itself
        (llmbook.train: TrainConfig.aux_loss_weight), where Hugging Face's Mixtral, asked for its router
        logits, adds router_aux_loss_coef * aux to its loss.
        """
        c = self.config
        check_token_ids(input_ids, c.vocab_size)
        B, T = input_ids.shape
        past = len(kv_cache) if kv_cache is not None else 0
        _check_length(past + T, c.context_length, "prompt plus cached tokens" if past else "input sequence")
        mask = _key_mask(attention_mask, B, past + T)
        if attention_mask is not None:
            positions = _positions_from_mask(attention_mask, T)
        else:
            positions = torch.arange(past, past + T, device=input_ids.device)
        x = self._embed(self.tok_emb, input_ids, positions)
        x, attentions, _ = _run_blocks(self.blocks, x, return_attention, kv_cache, mask=mask, positions=positions)
        logits = self.lm_head(self.ln_f(x))
        loss = _lm_loss(logits, targets) if targets is not None else None
        return ModelOutput(logits, loss, attentions, aux_loss=self._aux_loss())

    def generate(self, input_ids, max_new_tokens, temperature=1.0, top_k=None, top_p=None, use_cache=True,
                 generator=None, eos_id=None, attention_mask=None, min_p=None, kv_cache=None):
        """Continue input_ids (B, T) by max_new_tokens tokens; see llmbook.generate.generate."""
        from .generate import generate

        return generate(self, input_ids, max_new_tokens, temperature, top_k, top_p, use_cache, generator, eos_id,
                        attention_mask, min_p, kv_cache)


# ---------------------------------------------------------------------------------------- BERT
@dataclass
class BERTConfig(TransformerConfig):
    """A bidirectional encoder as in BERT (post-LN, exact GELU, segment embeddings) by default."""

    vocab_size: int = 1000
    n_layers: int = 2
    type_vocab_size: int = 2  # segment A / segment B
    norm_first: bool = False  # BERT is post-LN
    layer_norm_eps: float = 1e-12
    num_labels: int = 0  # > 0 adds a sequence-classification head
    pad_id: int | None = 0  # with no attention_mask given, keys equal to pad_id are masked


@dataclass
class BERTOutput(ModelOutput):
    nsp_logits: torch.Tensor | None = None  # (B, 2): 0 = IsNext, 1 = NotNext
    class_logits: torch.Tensor | None = None  # (B, num_labels)
    hidden_states: torch.Tensor | None = None  # (B, T, d_model), the encoder's output
    pooled: torch.Tensor | None = None  # (B, d_model), tanh(W h_[CLS] + b)


class BERT(_Transformer):
    """Bidirectional encoder with masked-LM, next-sentence and (optional) classification heads."""

    def __init__(self, config: BERTConfig):
        super().__init__()
        self.config = c = config
        self.tok_emb = nn.Embedding(c.vocab_size, c.d_model)
        self.pos_emb = _position_module(c)
        self.type_emb = nn.Embedding(c.type_vocab_size, c.d_model)
        self.emb_norm = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps)
        self.drop = nn.Dropout(c.dropout)
        rotary = _rotary(c)
        self.blocks = nn.ModuleList(
            EncoderBlock(c.d_model, c.n_heads, c.d_ff, c.dropout, c.norm_first, c.activation,
                         c.layer_norm_eps, c.bias, rotary=rotary)
            for _ in range(c.n_layers)
        )
        self.final_norm = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps) if c.norm_first else nn.Identity()
        # masked-LM head: transform, then a decoder tied to the token embeddings
        self.mlm_dense = nn.Linear(c.d_model, c.d_model)
        self.mlm_act = activation_fn(c.activation)
        self.mlm_norm = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps)
        self.mlm_bias = nn.Parameter(torch.zeros(c.vocab_size))
        self.pooler = nn.Linear(c.d_model, c.d_model)
        self.nsp_head = nn.Linear(c.d_model, 2)
        self.classifier = nn.Linear(c.d_model, c.num_labels) if c.num_labels > 0 else None
        _init_weights(self)
        _init_token_embedding(self.tok_emb, c)
        self.emb_scale = _embedding_scale(c)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, targets=None,
                nsp_labels=None, class_labels=None, return_attention=False):
        """input_ids: (B, T); token_type_ids: (B, T) segment ids; attention_mask: (B, T) 1 = real token.

        targets: (B, T) masked-LM targets, -100 where no prediction is asked; nsp_labels: (B,)
        0 = IsNext, 1 = NotNext; class_labels: (B,). The loss is the sum of the losses whose targets or
        labels are given. Returns BERTOutput with logits (B, T, vocab_size) from the masked-LM head.
        """
        h, attentions = self.encode(input_ids, token_type_ids, attention_mask, return_attention)
        logits = F.linear(self.mlm_norm(self.mlm_act(self.mlm_dense(h))), self.tok_emb.weight, self.mlm_bias)
        pooled = torch.tanh(self.pooler(h[:, 0]))
        nsp_logits = self.nsp_head(pooled)
        class_logits = self.classifier(self.drop(pooled)) if self.classifier is not None else None
        loss = self._loss(logits, nsp_logits, class_logits, targets, nsp_labels, class_labels)
        return BERTOutput(logits, loss, attentions, nsp_logits, class_logits, h, pooled)

    def encode(self, input_ids, token_type_ids=None, attention_mask=None, return_attention=False):
        """(hidden states (B, T, d_model), attention weights per layer or None): embed, then the blocks."""
        c = self.config
        check_token_ids(input_ids, c.vocab_size, "input_ids")
        B, T = input_ids.shape
        _check_length(T, c.context_length)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        check_token_ids(token_type_ids, c.type_vocab_size, "token_type_ids")
        if attention_mask is None and c.pad_id is not None:
            attention_mask = input_ids != c.pad_id
        mask = _key_mask(attention_mask, B, T)
        positions = torch.arange(T, device=input_ids.device)
        x = self._embed(self.tok_emb, input_ids, positions, token_type_ids)
        x, attentions, _ = _run_blocks(self.blocks, x, return_attention, mask=mask, positions=positions)
        return self.final_norm(x), attentions

    @staticmethod
    def _loss(logits, nsp_logits, class_logits, targets, nsp_labels, class_labels):
        """Sum of the masked-LM, next-sentence and classification losses whose labels are given, or None."""
        losses = []
        if targets is not None:
            losses.append(_lm_loss(logits, targets))
        if nsp_labels is not None:
            losses.append(F.cross_entropy(nsp_logits, nsp_labels))
        if class_labels is not None:
            if class_logits is None:
                raise ValueError("class_labels given but the config has num_labels=0 (no classifier)")
            losses.append(F.cross_entropy(class_logits, class_labels))
        return sum(losses) if losses else None


# ------------------------------------------------------------------------------------- Seq2Seq
@dataclass
class Seq2SeqConfig(TransformerConfig):
    """An encoder-decoder with separate source and target vocabularies; sinusoidal positions by default."""

    src_vocab_size: int = 64
    tgt_vocab_size: int = 64
    context_length: int = 64  # of the source and of the target
    n_encoder_layers: int = 2
    n_decoder_layers: int = 2
    pos_encoding: str = "sinusoidal"
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2


@dataclass
class Seq2SeqOutput(ModelOutput):
    encoder_attentions: list | None = None  # per encoder layer (B, H, S, S)
    cross_attentions: list | None = None  # per decoder layer (B, H, T, S): target -> source
    # .attentions holds the decoder's masked self-attention, (B, H, T, T) per layer


class Seq2Seq(_Transformer):
    """Encoder-decoder Transformer: the encoder reads the source, the decoder writes the target
    one token at a time, looking at the source through cross-attention."""

    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        self.config = c = config
        self.src_emb = nn.Embedding(c.src_vocab_size, c.d_model)
        self.tgt_emb = nn.Embedding(c.tgt_vocab_size, c.d_model)
        self.pos_emb = _position_module(c)
        self.type_emb = self.emb_norm = None  # BERT's segment table and embedding LayerNorm
        rotary = _rotary(c)
        self.drop = nn.Dropout(c.dropout)
        common = (c.d_model, c.n_heads, c.d_ff, c.dropout, c.norm_first, c.activation, c.layer_norm_eps, c.bias)
        self.encoder = nn.ModuleList(EncoderBlock(*common, rotary=rotary) for _ in range(c.n_encoder_layers))
        self.decoder = nn.ModuleList(
            DecoderBlock(*common, cross_attention=True, rotary=rotary) for _ in range(c.n_decoder_layers))
        norm = (lambda: nn.LayerNorm(c.d_model, eps=c.layer_norm_eps)) if c.norm_first else nn.Identity
        self.enc_norm, self.dec_norm = norm(), norm()
        self.lm_head = nn.Linear(c.d_model, c.tgt_vocab_size, bias=False)
        _init_weights(self, std=c.d_model ** -0.5)  # every weight, linear layers too; embeddings x sqrt(d_model)
        self.emb_scale = math.sqrt(c.d_model)  # (Vaswani et al.), whatever the position encoding

    def encode(self, input_ids, return_attention=False):
        """input_ids: (B, S) source ids -> (memory (B, S, d_model), source mask (B, 1, 1, S), encoder attentions)."""
        c = self.config
        check_token_ids(input_ids, c.src_vocab_size, "source ids")
        _check_length(input_ids.size(1), c.context_length, "source sequence")
        src_mask = input_ids.ne(c.pad_id)[:, None, None, :]
        positions = torch.arange(input_ids.size(1), device=input_ids.device)
        x = self._embed(self.src_emb, input_ids, positions)
        x, attentions, _ = _run_blocks(self.encoder, x, return_attention, mask=src_mask, positions=positions)
        return self.enc_norm(x), src_mask, attentions

    def decode(self, decoder_input_ids, memory, src_mask, return_attention=False, kv_cache=None, cross_cache=None):
        """decoder_input_ids: (B, T) target ids so far, starting with bos.

        Returns (logits (B, T, V), self-attention weights, cross-attention weights)."""
        c = self.config
        check_token_ids(decoder_input_ids, c.tgt_vocab_size, "target ids")
        past = len(kv_cache) if kv_cache is not None else 0
        T = decoder_input_ids.size(1)
        _check_length(past + T, c.context_length, "target sequence")
        positions = torch.arange(past, past + T, device=decoder_input_ids.device)
        x = self._embed(self.tgt_emb, decoder_input_ids, positions)
        x, self_w, cross_w = _run_blocks(self.decoder, x, return_attention, kv_cache, cross_cache, memory=memory,
                                         memory_mask=src_mask, positions=positions)
        return self.lm_head(self.dec_norm(x)), self_w, cross_w

    def forward(self, input_ids, decoder_input_ids, targets=None, return_attention=False):
        """Teacher forcing: input_ids (B, S) the source, decoder_input_ids (B, T) = bos + target[:-1],
        targets (B, T) = target.

        All T positions are predicted in one parallel pass; padding targets should be -100 or pad_id
        (pad_id targets are ignored in the loss).
        """
        memory, src_mask, enc_w = self.encode(input_ids, return_attention)
        logits, self_w, cross_w = self.decode(decoder_input_ids, memory, src_mask, return_attention)
        loss = None
        if targets is not None:
            loss = _lm_loss(logits, targets.masked_fill(targets == self.config.pad_id, -100))
        return Seq2SeqOutput(logits, loss, self_w, enc_w, cross_w)

    def new_kv_cache(self) -> tuple[KVCache, KVCache]:
        """(self-attention cache, cross-attention cache) for step-by-step decoding."""
        n, L = self.config.n_decoder_layers, self.config.context_length
        return KVCache(n, L), KVCache(n, L)

    def greedy_decode(self, input_ids, max_new_tokens=None, use_cache=True):
        """Decode input_ids (B, S) greedily; returns (B, 1 + n) ids starting with bos. Rows that emitted
        eos are padded with pad_id afterwards; decoding stops when every row has emitted eos."""
        from .generate import greedy_seq2seq

        return greedy_seq2seq(self, input_ids, max_new_tokens, use_cache)

    def beam_search(self, input_ids, beam_size=4, max_new_tokens=None, length_penalty=1.0):
        """Beam search for each source row; returns a list of 1-D id tensors (bos ... eos)."""
        from .generate import beam_search_seq2seq

        return [beam_search_seq2seq(self, row[None], beam_size, max_new_tokens, length_penalty)
                for row in input_ids]


CONFIGS = {"GPT": GPTConfig, "BERT": BERTConfig, "Seq2Seq": Seq2SeqConfig}
MODELS = {"GPT": GPT, "BERT": BERT, "Seq2Seq": Seq2Seq}
