"""Load Hugging Face ``transformers`` GPT-2, BERT and Llama weights into llmbook's own models.

The point is a check the reader can run: the same weights in our from-scratch code give the same
logits, attention weights and greedy continuations as the reference implementation. ``transformers``
is an optional dependency (``pip install llmbook[interop]``) and is imported only inside functions.

    hf = transformers.GPT2LMHeadModel.from_pretrained("gpt2")
    ours = gpt_from_hf(hf)          # an llmbook.models.GPT holding GPT-2's weights

A Llama (``llama_from_hf``) becomes a GPT with the options of a modern decoder: RMSNorm, SwiGLU,
rotary positions and grouped-query attention.

Configurations our models cannot reproduce exactly are refused with a ValueError naming the
setting, rather than converted into a model that silently computes something else.

Used in chapter 6, Applications.
"""
from __future__ import annotations

import os

import torch

from .models import BERT, GPT, BERTConfig, GPTConfig

# Hugging Face activation names -> ours. Only exact equivalents (up to float rounding) are listed.
_ACTIVATIONS = {
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu": "gelu",
    "relu": "relu",
    "silu": "silu",  # x * sigmoid(x); Hugging Face's "swish" is the same function
    "swish": "silu",
}


def _activation(setting: str, name, table=_ACTIVATIONS) -> str:
    if not isinstance(name, str) or name not in table:
        raise ValueError(f"{setting}={name!r} has no exact equivalent in llmbook; "
                         f"supported: {sorted(table)}")
    return table[name]


def _refuse(config, settings: dict) -> None:
    """Raise ValueError for the first HF setting whose value differs from the one we can represent."""
    for name, supported in settings.items():
        value = getattr(config, name, supported)
        if value != supported:
            raise ValueError(f"{type(config).__name__}.{name}={value!r} is not supported by llmbook "
                             f"(only {name}={supported!r} can be converted exactly)")


def _type_error(model, accepted) -> TypeError:
    return TypeError(f"expected one of {', '.join(accepted)}, got {type(model).__module__}."
                     f"{type(model).__name__}")


def _load(model: torch.nn.Module, state: dict, like: torch.Tensor) -> torch.nn.Module:
    """Load state strictly (a missed or extra key raises), then match the HF model's device/dtype."""
    model.load_state_dict({k: v.detach() for k, v in state.items()}, strict=True)
    return model.to(device=like.device, dtype=like.dtype).eval()


# ----------------------------------------------------------------------------------------- GPT-2
def gpt2_weight_names(n_layers: int) -> list[tuple[str, str, bool]]:
    """(our GPT's state-dict key, the key in a GPT2Model's state dict, whether it is a Conv1D weight)
    for every weight of a GPT-2 body. HF's Conv1D stores (in, out), nn.Linear (out, in): transpose
    those. The output layer is not listed: GPT-2 ties it to the token embeddings."""
    names = [("tok_emb.weight", "wte.weight", False), ("pos_emb.weight", "wpe.weight", False),
             ("ln_f.weight", "ln_f.weight", False), ("ln_f.bias", "ln_f.bias", False)]
    for i in range(n_layers):
        for ours, theirs, conv1d in (("attn.in_proj", "attn.c_attn", True), ("attn.out_proj", "attn.c_proj", True),
                                     ("ff.fc1", "mlp.c_fc", True), ("ff.fc2", "mlp.c_proj", True),
                                     ("norm1", "ln_1", False), ("norm2", "ln_2", False)):
            names.append((f"blocks.{i}.{ours}.weight", f"h.{i}.{theirs}.weight", conv1d))
            names.append((f"blocks.{i}.{ours}.bias", f"h.{i}.{theirs}.bias", False))
    return names


def gpt_from_hf(hf_model) -> GPT:
    """Convert a ``transformers`` GPT2LMHeadModel (or a bare GPT2Model) into an llmbook GPT.

    A GPT2Model has no output layer, so ours ties lm_head to the token embeddings, as GPT-2 does.
    If a GPT2LMHeadModel's lm_head differs from its token embeddings (tie_word_embeddings=False),
    ours is built with tie_weights=False and gets that matrix. HF's Conv1D stores weights as
    (in, out); nn.Linear stores (out, in), so every Conv1D weight is transposed. Dropout is 0 and
    the result is in eval mode, on the HF model's device and dtype.
    """
    from transformers import GPT2LMHeadModel, GPT2Model

    if isinstance(hf_model, GPT2LMHeadModel):
        tr, head = hf_model.transformer, hf_model.lm_head.weight
    elif isinstance(hf_model, GPT2Model):
        tr, head = hf_model, None
    else:
        raise _type_error(hf_model, ["transformers.GPT2LMHeadModel", "transformers.GPT2Model"])
    hc = hf_model.config
    _refuse(hc, {"scale_attn_by_inverse_layer_idx": False, "reorder_and_upcast_attn": False,
                 "scale_attn_weights": True, "add_cross_attention": False})
    tied = head is None or head is tr.wte.weight or torch.equal(head, tr.wte.weight)
    cfg = GPTConfig(vocab_size=hc.vocab_size, context_length=hc.n_positions, n_layers=hc.n_layer,
                    n_heads=hc.n_head, d_model=hc.n_embd, d_ff=hc.n_inner or 4 * hc.n_embd,
                    dropout=0.0, bias=True, norm_first=True, pos_encoding="learned",
                    activation=_activation("activation_function", hc.activation_function),
                    layer_norm_eps=hc.layer_norm_epsilon, tie_weights=tied)
    theirs = dict(tr.named_parameters())
    sd = {ours: theirs[name].t() if conv1d else theirs[name] for ours, name, conv1d in gpt2_weight_names(hc.n_layer)}
    sd["lm_head.weight"] = tr.wte.weight if tied else head
    return _load(GPT(cfg), sd, tr.wte.weight)


# ------------------------------------------------------------------------------------------ BERT
_BERT_CLASSES = ["transformers.BertModel", "transformers.BertForPreTraining",
                 "transformers.BertForMaskedLM", "transformers.BertForSequenceClassification"]


def bert_from_hf(hf_model, mask_padding: bool = False) -> BERT:
    """Convert a ``transformers`` BertModel, BertForPreTraining, BertForMaskedLM or
    BertForSequenceClassification into an llmbook BERT.

    What the HF model has is copied; the heads it lacks **stay randomly initialised** in ours:
    the pooler (a BertModel built with add_pooling_layer=False, or BertForMaskedLM), the masked-LM
    head (BertModel, BertForSequenceClassification), the next-sentence head (all but
    BertForPreTraining). A classifier (num_labels > 0) exists only for BertForSequenceClassification.

    Padding: called without attention_mask, HF's BERT attends to every token, [PAD] included, and so
    does the converted model (its pad_id is None). mask_padding=True makes it mask keys equal to the
    HF config's pad_token_id instead, as the book's own BERT does; the two then differ wherever an
    input holds that id and no attention_mask is given.
    """
    import transformers as T

    if isinstance(hf_model, T.BertModel):
        bert, pre = hf_model, None
    elif isinstance(hf_model, (T.BertForPreTraining, T.BertForMaskedLM, T.BertForSequenceClassification)):
        bert, pre = hf_model.bert, hf_model
    else:
        raise _type_error(hf_model, _BERT_CLASSES)
    hc = hf_model.config
    _refuse(hc, {"position_embedding_type": "absolute", "is_decoder": False, "add_cross_attention": False})
    classify = isinstance(hf_model, T.BertForSequenceClassification)
    cfg = BERTConfig(vocab_size=hc.vocab_size, context_length=hc.max_position_embeddings,
                     n_layers=hc.num_hidden_layers, n_heads=hc.num_attention_heads, d_model=hc.hidden_size,
                     d_ff=hc.intermediate_size, type_vocab_size=hc.type_vocab_size, dropout=0.0, bias=True,
                     norm_first=False, pos_encoding="learned", activation=_activation("hidden_act", hc.hidden_act),
                     layer_norm_eps=hc.layer_norm_eps, num_labels=hc.num_labels if classify else 0,
                     pad_id=hc.pad_token_id if mask_padding else None)
    model = BERT(cfg)

    emb = bert.embeddings
    sd = {"tok_emb.weight": emb.word_embeddings.weight, "pos_emb.weight": emb.position_embeddings.weight,
          "type_emb.weight": emb.token_type_embeddings.weight,
          "emb_norm.weight": emb.LayerNorm.weight, "emb_norm.bias": emb.LayerNorm.bias}
    for i, layer in enumerate(bert.encoder.layer):
        p, a = f"blocks.{i}.", layer.attention
        qkv = (a.self.query, a.self.key, a.self.value)
        sd[p + "attn.in_proj.weight"] = torch.cat([m.weight for m in qkv])
        sd[p + "attn.in_proj.bias"] = torch.cat([m.bias for m in qkv])
        for ours, mod in (("attn.out_proj", a.output.dense), ("norm1", a.output.LayerNorm),
                          ("ff.fc1", layer.intermediate.dense), ("ff.fc2", layer.output.dense),
                          ("norm2", layer.output.LayerNorm)):
            sd[p + ours + ".weight"], sd[p + ours + ".bias"] = mod.weight, mod.bias
    if bert.pooler is not None:
        sd["pooler.weight"], sd["pooler.bias"] = bert.pooler.dense.weight, bert.pooler.dense.bias

    cls = getattr(pre, "cls", None)
    predictions = getattr(cls, "predictions", None)
    if predictions is not None:
        decoder = predictions.decoder
        if not (decoder.weight is emb.word_embeddings.weight
                or torch.equal(decoder.weight, emb.word_embeddings.weight)):
            raise ValueError("the masked-LM decoder weight differs from the word embeddings; llmbook's "
                             "BERT ties them, so this model cannot be converted exactly")
        t = predictions.transform
        sd["mlm_dense.weight"], sd["mlm_dense.bias"] = t.dense.weight, t.dense.bias
        sd["mlm_norm.weight"], sd["mlm_norm.bias"] = t.LayerNorm.weight, t.LayerNorm.bias
        # the bias HF's forward actually adds is decoder.bias (tied to predictions.bias)
        sd["mlm_bias"] = decoder.bias if decoder.bias is not None else predictions.bias
    seq_rel = getattr(cls, "seq_relationship", None)
    if seq_rel is not None:
        sd["nsp_head.weight"], sd["nsp_head.bias"] = seq_rel.weight, seq_rel.bias
    if classify:
        sd["classifier.weight"], sd["classifier.bias"] = pre.classifier.weight, pre.classifier.bias

    for name, value in model.state_dict().items():  # heads the HF model lacks keep our random init
        if name.startswith(("pooler.", "mlm_", "nsp_head.")) and name not in sd:
            sd[name] = value
    return _load(model, sd, emb.word_embeddings.weight)


# ----------------------------------------------------------------------------------------- Llama
def _llama_rope(hc) -> tuple[float, float]:
    """(rope_theta, position-interpolation factor) of a LlamaConfig; ValueError for a RoPE variant
    other than the original ("default") and linear position interpolation ("linear")."""
    params = dict(getattr(hc, "rope_parameters", None) or {})
    if not params:  # transformers < 5 kept them in two attributes
        params = {"rope_theta": getattr(hc, "rope_theta", 10000.0), **(getattr(hc, "rope_scaling", None) or {})}
    kind = params.get("rope_type", params.get("type", "default"))
    if kind not in ("default", "linear"):
        raise ValueError(f"LlamaConfig rope_type={kind!r} is not supported by llmbook (only 'default' and "
                         f"'linear', position interpolation, can be converted exactly)")
    if params.get("partial_rotary_factor", 1.0) != 1.0:
        raise ValueError(f"LlamaConfig partial_rotary_factor={params['partial_rotary_factor']} is not supported "
                         f"by llmbook (rotary embeddings turn the whole head: only 1.0)")
    factor = float(params["factor"]) if kind == "linear" else 1.0
    return float(params["rope_theta"]), factor


def _interleave_rotary_pairs(weight: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Reorder the rows of W_Q or W_K within each head from Llama's rotary layout to ours.

    Llama turns the pairs (x[i], x[i + d/2]) of a head (rotate_half); our RotaryEmbedding turns the
    adjacent pairs (x[2i], x[2i + 1]), both by pos * theta_i. Moving row i + d/2 next to row i makes
    our pairs Llama's pairs; q . k sums over the same products in another order, so every score,
    and with it the model's output, is unchanged (values and W_V are not reordered).
    """
    d_head = weight.size(0) // n_heads
    half = torch.arange(d_head // 2)
    order = torch.stack([half, half + d_head // 2], dim=1).flatten()  # 0, d/2, 1, d/2 + 1, ...
    return weight.view(n_heads, d_head, -1)[:, order].reshape_as(weight)


def _llama_config(hc, tied: bool) -> GPTConfig:
    """Our GPTConfig for a LlamaConfig; ValueError for a setting we cannot reproduce exactly."""
    _refuse(hc, {"attention_bias": False, "mlp_bias": False, "head_dim": hc.hidden_size // hc.num_attention_heads})
    theta, factor = _llama_rope(hc)
    return GPTConfig(vocab_size=hc.vocab_size, context_length=hc.max_position_embeddings,
                     n_layers=hc.num_hidden_layers, n_heads=hc.num_attention_heads, d_model=hc.hidden_size,
                     d_ff=hc.intermediate_size, n_kv_heads=hc.num_key_value_heads, dropout=0.0, bias=False,
                     norm_first=True, norm="rmsnorm", gated_ffn=True, pos_encoding="rope", rope_theta=theta,
                     rope_interpolation=factor, layer_norm_eps=hc.rms_norm_eps, tie_weights=tied,
                     activation=_activation("hidden_act", hc.hidden_act))


def llama_from_hf(hf_model) -> GPT:
    """Convert a ``transformers`` LlamaForCausalLM into an llmbook GPT with the Llama options:
    RMSNorm, SwiGLU, rotary positions (base rope_theta; linear rope scaling becomes
    rope_interpolation) and grouped-query attention (n_kv_heads = num_key_value_heads).

    W_Q, W_K, W_V are stacked into in_proj, W_Q and W_K with their rows reordered to our rotary
    layout (see _interleave_rotary_pairs). The output layer is tied to the token embeddings when
    they are the same matrix. Refused with a ValueError: attention or MLP biases, a head size other
    than hidden_size / num_attention_heads, RoPE variants other than the original and linear
    interpolation (dynamic, NTK, YaRN, Llama 3's), and activations we lack. Dropout is 0 and the
    result is in eval mode, on the HF model's device and dtype.
    """
    from transformers import LlamaForCausalLM

    if not isinstance(hf_model, LlamaForCausalLM):
        raise _type_error(hf_model, ["transformers.LlamaForCausalLM"])
    body, head = hf_model.model, hf_model.lm_head.weight
    emb = body.embed_tokens.weight
    cfg = _llama_config(hf_model.config, tied=head is emb or torch.equal(head, emb))
    sd = {"tok_emb.weight": emb, "ln_f.weight": body.norm.weight, "lm_head.weight": head}
    for i, layer in enumerate(body.layers):
        a, mlp, p = layer.self_attn, layer.mlp, f"blocks.{i}."
        sd[p + "attn.in_proj.weight"] = torch.cat([_interleave_rotary_pairs(a.q_proj.weight, cfg.n_heads),
                                                   _interleave_rotary_pairs(a.k_proj.weight, cfg.n_kv_heads),
                                                   a.v_proj.weight])
        sd[p + "attn.out_proj.weight"] = a.o_proj.weight
        sd[p + "norm1.weight"] = layer.input_layernorm.weight
        sd[p + "norm2.weight"] = layer.post_attention_layernorm.weight
        sd[p + "ff.gate.weight"], sd[p + "ff.up.weight"] = mlp.gate_proj.weight, mlp.up_proj.weight
        sd[p + "ff.down.weight"] = mlp.down_proj.weight
    return _load(GPT(cfg), sd, emb)


# ----------------------------------------------------------------------------- pretrained models
def hub_reachable(timeout: float = 3.0) -> bool:
    """True if a TCP connection to the Hugging Face Hub (HF_ENDPOINT, default huggingface.co) opens
    within `timeout` seconds. Without a network this answers at once, where a download would retry."""
    import socket
    from urllib.parse import urlparse

    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        with socket.create_connection((endpoint.hostname, port), timeout=timeout):
            return True
    except (OSError, TypeError, ValueError):  # no route, no DNS, refused, timed out; or a malformed endpoint
        return False


def try_load_hf(name, cls):
    """``cls.from_pretrained(name)`` when the network or the local cache allows it, else None.

    cls: a transformers class or its name ("GPT2LMHeadModel"). With HF_HUB_OFFLINE (or
    TRANSFORMERS_OFFLINE) set, or when the hub cannot be reached (``hub_reachable``; a local directory
    skips the check), only the local cache is tried, so that no download is retried for minutes
    without a network. On failure prints one line saying why,
    so a chapter can fall back to random weights. Hub timeouts default to 5 s (set before
    huggingface_hub is first imported; HF_HUB_ETAG_TIMEOUT / HF_HUB_DOWNLOAD_TIMEOUT override).
    """
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "5")
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "5")
    try:
        import transformers
    except ImportError:
        print(f"could not load {name!r}: transformers is not installed (pip install llmbook[interop])")
        return None
    if isinstance(cls, str):
        cls = getattr(transformers, cls)
    offline = any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
                  for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    errors = [OSError, ValueError]  # OSError covers connection, timeout, not-found and hub HTTP errors
    for module, attr in (("requests", "RequestException"), ("httpx", "HTTPError")):
        try:
            errors.append(getattr(__import__(module), attr))
        except (ImportError, AttributeError):
            pass
    no_network = not offline and not os.path.isdir(str(name)) and not hub_reachable()
    try:
        return cls.from_pretrained(name, local_files_only=offline or no_network)
    except tuple(errors) as e:
        reason = (str(e).strip().splitlines() or [""])[0][:200]
        where = " (offline)" if offline else " (no network)" if no_network else ""
        print(f"could not load {name!r}{where}: {type(e).__name__}: {reason}")
        return None
