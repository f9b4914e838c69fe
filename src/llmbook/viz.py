"""Pictures of what a model computes: attention heatmaps, loss curves, an interactive attention
explorer, a next-token explorer for decoding settings, and adapters that hand our attention tensors to bertviz.

matplotlib, ipywidgets and bertviz are imported inside the functions that use them, so that
``import llmbook`` stays light and works where no plotting library is installed.
"""
from __future__ import annotations

import base64
import html
import io

import torch

# Whitespace tokens would be invisible as tick labels; show them as visible symbols instead.
_VISIBLE_WHITESPACE = {" ": "␣", "\n": "↵", "\t": "⇥"}


def display_token(token: str) -> str:
    """A token as a readable label: spaces, newlines and tabs become ␣ ↵ ⇥; "" becomes "∅"."""
    if token == "":
        return "∅"
    return "".join(_VISIBLE_WHITESPACE.get(ch, ch) for ch in token)


def token_strings(tokenizer, ids) -> list[str]:
    """Decode each id on its own, so every position gets its own label (char or BPE tokenizers).

    ids: a list of ints or a 1-D tensor. Returns a list of len(ids) strings.
    """
    ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)
    return [tokenizer.decode([i]) for i in ids]


def _as_matrix(weights) -> torch.Tensor:
    """weights (T_q, T_k) as a float CPU tensor; raises ValueError for any other number of dims."""
    w = torch.as_tensor(weights).detach().cpu().float()
    if w.dim() != 2:
        raise ValueError(
            f"plot_attention takes one attention matrix of shape (T_q, T_k), got shape {tuple(w.shape)}; "
            f"pick a layer, a batch element and a head first, e.g. attentions[layer][0, head]"
        )
    return w


def _check_tokens(tokens, n: int, what: str, axis: str) -> list[str]:
    """Raise ValueError unless there is one token per row or column of the weights."""
    tokens = list(tokens)
    if len(tokens) != n:
        raise ValueError(f"{what} has {len(tokens)} tokens but the weights have {n} {axis}")
    return [display_token(str(t)) for t in tokens]


def plot_attention(weights, query_tokens, key_tokens=None, ax=None, title=None, vmax=None,
                   annotate=False, cmap="viridis"):
    """Heatmap of one attention matrix: row i shows how query i spreads its attention over the keys.

    weights: (T_q, T_k) tensor or array, rows summing to 1; query_tokens: T_q labels; key_tokens:
    T_k labels (default: query_tokens, as in self-attention). vmax: top of the colour scale
    (default the largest weight; pass 1.0 to compare several heads on one scale). annotate: write
    each weight in its cell (readable up to about 12 tokens). Returns the matplotlib Axes.
    Raises ValueError if weights is not 2-D or a token list does not match its side.
    """
    import matplotlib.pyplot as plt

    w = _as_matrix(weights)
    T_q, T_k = w.shape
    rows = _check_tokens(query_tokens, T_q, "query_tokens", "rows (T_q)")
    cols = _check_tokens(query_tokens if key_tokens is None else key_tokens, T_k,
                         "key_tokens" if key_tokens is not None else "query_tokens (used as keys)",
                         "columns (T_k)")
    if ax is None:
        side = min(9.0, 2.0 + 0.28 * max(T_q, T_k))  # grow with the sequence, within a page's width
        _, ax = plt.subplots(figsize=(side + 1.0, side))
    _draw_heatmap(ax, w, rows, cols, vmax, annotate, cmap)
    if title is not None:
        ax.set_title(title)
    return ax


def _draw_heatmap(ax, w, rows, cols, vmax, annotate, cmap):
    """Draw w (T_q, T_k) on ax with token tick labels, axis labels and a colour bar."""
    # viridis gets steadily lighter from 0 to 1, so the picture still reads in greyscale print.
    top = float(w.max()) if vmax is None else float(vmax)
    image = ax.imshow(w.numpy(), cmap=cmap, vmin=0.0, vmax=max(top, 1e-12), aspect="auto")
    ax.set_xticks(range(len(cols)), cols, rotation=90)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    ax.figure.colorbar(image, ax=ax, label="attention weight")
    if annotate:
        for i, row in enumerate(w.tolist()):
            for j, value in enumerate(row):
                # dark text on the light end of the colour map, light text on the dark end
                colour = "black" if value > 0.6 * top else "white"
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color=colour)


# ----------------------------------------------------------------------------------- loss curves
def _ema(values: list[float], smooth: float) -> list[float]:
    """Exponential moving average started at the first value (so the curve does not begin at 0)."""
    out, s = [], values[0]
    for v in values:
        s = smooth * s + (1.0 - smooth) * v
        out.append(s)
    return out


def _is_history(obj) -> bool:
    """A llmbook.train.History, or its asdict(): has per-step `step` and `loss` lists."""
    if isinstance(obj, dict):
        return "step" in obj and "loss" in obj
    return hasattr(obj, "step") and hasattr(obj, "loss")


def _curves(obj, label):
    """Turn what plot_loss accepts into a list of (label, steps, losses, is_eval) curves."""
    if _is_history(obj):
        get = obj.get if isinstance(obj, dict) else (lambda key, default=None: getattr(obj, key, default))
        curves = [(label or "train", list(get("step")), list(get("loss")), False)]
        evals = get("evals", None) or []
        names = sorted({k for e in evals for k, v in e.items() if k != "step" and "loss" in k})
        for name in names:  # e.g. "val_loss" recorded every eval_every steps
            points = [(e["step"], e[name]) for e in evals if name in e]
            tag = f"{label}: {name}" if label else name
            curves.append((tag, [s for s, _ in points], [v for _, v in points], True))
        return curves
    if isinstance(obj, dict):  # several runs to compare: {"pre-LN": history, "post-LN": losses}
        return [c for name, run in obj.items() for c in _curves(run, str(name))]
    values = torch.as_tensor(obj, dtype=torch.float64).flatten().tolist()
    return [(label, list(range(len(values))), values, False)]


def plot_loss(history_or_losses, ax=None, smooth=0.0, label=None, log_y=False, title=None):
    """Loss against training step.

    history_or_losses: a sequence or 1-D tensor of losses (one per step); a llmbook.train.History
    (or its asdict()), whose evals' "*loss*" entries (e.g. val_loss) are drawn as points; or a dict
    {label: any of those} to compare runs. smooth in [0, 1): exponential moving average weight
    (0.9 = heavy); the raw curve stays visible, faint, behind the smoothed one. log_y: log-scale loss
    axis. Returns the matplotlib Axes. Raises ValueError for smooth outside [0, 1), an empty curve,
    or a non-positive loss on a log axis.
    """
    import matplotlib.pyplot as plt

    if not 0.0 <= smooth < 1.0:
        raise ValueError(f"smooth={smooth} must lie in [0, 1) (0 = no smoothing)")
    curves = _curves(history_or_losses, label)
    for name, steps, values, _ in curves:
        if not values:
            raise ValueError(f"the loss curve {name or ''!r} is empty: nothing to plot")
        if log_y and min(values) <= 0:
            raise ValueError(f"log_y needs positive losses, but curve {name or ''!r} has {min(values)}")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    for name, steps, values, is_eval in curves:
        if is_eval:
            ax.plot(steps, values, "o-", markersize=3, label=name)
        elif smooth > 0:
            (raw,) = ax.plot(steps, values, alpha=0.25)
            ax.plot(steps, _ema(values, smooth), color=raw.get_color(), label=name)
        else:
            ax.plot(steps, values, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (log scale)" if log_y else "loss")
    if log_y:
        ax.set_yscale("log")
    if any(name for name, *_ in curves):
        ax.legend()
    if title is not None:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    return ax


# ----------------------------------------------------------------------------- attention explorer
def _context_length(model) -> int | None:
    """The most positions the model accepts, if it says."""
    config = getattr(model, "config", None)
    return getattr(config, "context_length", None)


def attention_maps(model, ids) -> list[torch.Tensor]:
    """Run model on ids (1-D or (1, T)) in eval mode, without gradients; one (H, T, T) map per layer.

    Works with llmbook GPT and BERT (any model taking ``return_attention=True`` and returning
    ``.attentions``). The model's train/eval mode is restored afterwards. Raises ValueError for an
    empty input or one longer than the model's context length.
    """
    ids = torch.as_tensor(ids, dtype=torch.long).reshape(1, -1)  # (1, T)
    limit = _context_length(model)
    if ids.size(1) == 0:
        raise ValueError("the text encodes to 0 tokens: nothing to attend to")
    if limit is not None and ids.size(1) > limit:
        raise ValueError(f"the text is {ids.size(1)} tokens long, beyond the context length {limit}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()  # dropout off: the picture must not change from one redraw to the next
    try:
        with torch.no_grad():
            # every token is real: without this BERT would hide keys whose id equals its pad_id
            out = model(ids.to(device), attention_mask=torch.ones_like(ids, device=device),
                        return_attention=True)
    finally:
        model.train(was_training)
    return [a[0].float().cpu() for a in out.attentions]  # (1, H, T, T) -> (H, T, T) per layer


def _heatmap_png(weights, tokens, title) -> bytes:
    """The heatmap of weights (T, T) as PNG bytes, drawn off-screen.

    A bare Figure (not pyplot) is never registered with the notebook backend, so it is not
    displayed a second time at the end of the cell and needs no closing.
    """
    from matplotlib.figure import Figure

    side = min(8.0, 1.5 + 0.3 * len(tokens))
    fig = Figure(figsize=(side + 1.0, side))
    plot_attention(weights, tokens, ax=fig.add_subplot(), title=title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    return buffer.getvalue()


def png_img_tag(png: bytes, alt: str) -> str:
    """An HTML <img> showing png inline (a data: URI), with alt text for screen readers."""
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}" style="max-width:100%">'


def attention_explorer(model, tokenizer, text, layer=0, head=0):
    """Interactive heatmap: type a text, pick a layer and a head, see who attends to whom.

    model: llmbook GPT or BERT (see attention_maps); tokenizer: has encode(str) -> list[int] and
    decode(list[int]) -> str. Returns an ipywidgets VBox: a text box, layer and head sliders, a
    status line and the heatmap (an <img> in an HTML widget, so the first picture is kept in saved
    notebooks and has alt text).
    """
    import ipywidgets as widgets

    config = getattr(model, "config", None)
    if not (hasattr(config, "n_layers") and hasattr(config, "n_heads")):
        raise TypeError(f"attention_explorer needs a GPT or BERT (a config with n_layers and n_heads), "
                        f"got {type(model).__name__}")
    n_layers, n_heads = config.n_layers, config.n_heads
    text_box = widgets.Text(value=text, description="text", continuous_update=False,
                            layout=widgets.Layout(width="95%"))
    layer_slider = widgets.IntSlider(value=layer, min=0, max=n_layers - 1, description="layer")
    head_slider = widgets.IntSlider(value=head, min=0, max=n_heads - 1, description="head")
    status = widgets.HTML()
    image = widgets.HTML()  # an <img> with alt text (an Image widget cannot have one)
    state = {"text": None, "maps": None, "tokens": None}

    def redraw(_change=None):
        # No print(): output from a callback has nowhere sensible to go; the status line says it.
        try:
            if state["text"] != text_box.value:
                ids = tokenizer.encode(text_box.value)
                state["maps"], state["tokens"] = attention_maps(model, ids), token_strings(tokenizer, ids)
                state["text"] = text_box.value
            weights = state["maps"][layer_slider.value][head_slider.value]  # (T, T)
            title = f"layer {layer_slider.value}, head {head_slider.value}"
            image.value = png_img_tag(_heatmap_png(weights, state["tokens"], title),
                                      f"Heatmap of the attention weights of {title} for the text "
                                      f"{state['text']!r}: one row per query token, one column per key token")
            status.value = f"{len(state['tokens'])} tokens"
        except (ValueError, KeyError, IndexError) as err:  # an unknown character, a text too long
            state["text"] = None
            status.value = f"<span style='color:#b00'>cannot show this text: {html.escape(str(err))}</span>"

    for control in (text_box, layer_slider, head_slider):
        control.observe(redraw, names="value")
    redraw()
    return widgets.VBox([text_box, widgets.HBox([layer_slider, head_slider]), status, image])


# --------------------------------------------------------------------------- next-token explorer
def next_token_distribution(model, ids, temperature=1.0, top_k=None, top_p=None) -> torch.Tensor:
    """(V,) probabilities of the token after ids (1-D) that sampling with these settings draws from.

    The model's logits for the last position are divided by the temperature, filtered by top-k and
    top-p (llmbook.generate's filters, None = off), and put through a softmax; temperature 0 puts
    all the probability on the argmax (greedy). The model's train/eval mode is restored.
    Raises ValueError for an empty input, one longer than the context, or a bad setting.
    """
    from .generate import inference_mode, top_k_filter, top_p_filter

    ids = torch.as_tensor(ids, dtype=torch.long).reshape(1, -1)  # (1, T)
    if ids.size(1) == 0:
        raise ValueError("the text encodes to 0 tokens: there is nothing to continue")
    limit = _context_length(model)
    if limit is not None and ids.size(1) > limit:
        raise ValueError(f"the text is {ids.size(1)} tokens long, beyond the context length {limit}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    with inference_mode(model):
        logits = model(ids.to(next(model.parameters()).device)).logits[0, -1].float().cpu()  # (V,)
    if temperature == 0:
        return torch.nn.functional.one_hot(logits.argmax(), logits.numel()).float()
    logits = logits / temperature
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    return logits.softmax(-1)


def plot_next_token(probs, tokens, reference=None, ax=None, n_show=15, title=None,
                    label="sampling distribution", reference_label="temperature 1, no filter"):
    """Bar chart of next-token probabilities probs (V,); tokens: V labels.

    reference: another (V,) distribution drawn as hatched outlines behind the bars. The n_show
    tokens most likely under reference (or under probs without one) are shown, most likely first.
    Returns the matplotlib Axes.
    """
    import matplotlib.pyplot as plt

    probs = torch.as_tensor(probs).detach().float().cpu()
    tokens = _check_tokens(tokens, probs.numel(), "tokens", "entries")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3))
    base = probs if reference is None else torch.as_tensor(reference).float().cpu()
    order = base.argsort(descending=True)[: min(n_show, probs.numel())]
    x = list(range(len(order)))
    if reference is not None:
        ax.bar(x, base[order].tolist(), width=0.8, fill=False, hatch="///", edgecolor="grey", label=reference_label)
    ax.bar(x, probs[order].tolist(), width=0.5, color="#33336b", label=label)
    ax.set_xticks(x, [tokens[i] for i in order.tolist()])
    ax.set_xlabel("next token")
    ax.set_ylabel("probability")
    ax.set_ylim(0, 1.05 * max(float(probs.max()), float(base.max())))
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    return ax


def _bars_png(probs, reference, tokens, title) -> bytes:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 3.2))
    plot_next_token(probs, tokens, reference, ax=fig.add_subplot(), title=title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    return buffer.getvalue()


def next_token_explorer(model, tokenizer, text, temperature=1.0, top_k=0, top_p=1.0):
    """Interactive bar chart of the next-token distribution under temperature, top-k and top-p.

    Type a prompt and move the sliders (top_k 0 and top_p 1 mean "off"); the status line says how
    many tokens can still be drawn and the entropy of the distribution. model: a GPT; tokenizer:
    encode(str) -> list[int], decode(list[int]) -> str, vocab_size. Returns an ipywidgets VBox.
    """
    import math

    import ipywidgets as widgets

    vocab = getattr(tokenizer, "vocab_size", None)
    if not isinstance(vocab, int) or vocab < 1:
        raise TypeError("next_token_explorer needs a tokenizer with a vocab_size")
    labels = [display_token(tokenizer.decode([i])) for i in range(vocab)]
    text_box = widgets.Text(value=text, description="prompt", continuous_update=False,
                            layout=widgets.Layout(width="95%"))
    temp_slider = widgets.FloatSlider(value=temperature, min=0.0, max=3.0, step=0.05, description="temperature",
                                      continuous_update=False)
    k_slider = widgets.IntSlider(value=top_k, min=0, max=vocab, description="top-k", continuous_update=False)
    p_slider = widgets.FloatSlider(value=top_p, min=0.05, max=1.0, step=0.05, description="top-p",
                                   continuous_update=False)
    status = widgets.HTML()
    image = widgets.HTML()  # an <img> with alt text (an Image widget cannot have one)

    def redraw(_change=None):
        try:
            ids = tokenizer.encode(text_box.value)
            top_k = k_slider.value or None
            top_p = p_slider.value if p_slider.value < 1.0 else None
            probs = next_token_distribution(model, ids, temp_slider.value, top_k, top_p)
            reference = next_token_distribution(model, ids)
            kept = int((probs > 0).sum())
            entropy = -sum(p * math.log(p) for p in probs.tolist() if p > 0)
            title = f"T = {temp_slider.value:.2f}, top-k = {top_k or 'off'}, top-p = {top_p or 'off'}"
            image.value = png_img_tag(_bars_png(probs, reference, labels, title),
                                      f"Bar chart of the next-token probabilities after {text_box.value!r} "
                                      f"with {title}, next to the unfiltered distribution")
            status.value = f"{kept} of {vocab} tokens can be drawn; entropy {entropy:.2f} nats"
        except (ValueError, KeyError, IndexError) as err:
            status.value = f"<span style='color:#b00'>cannot show this text: {html.escape(str(err))}</span>"

    for control in (text_box, temp_slider, k_slider, p_slider):
        control.observe(redraw, names="value")
    redraw()
    return widgets.VBox([text_box, widgets.HBox([temp_slider, k_slider, p_slider]), status, image])


# ------------------------------------------------------------------------------------- bertviz
def _layers_for_bertviz(attentions, batch_index: int, decimals, what: str) -> list[torch.Tensor]:
    """Our per-layer (B, H, T_q, T_k) tensors -> bertviz's per-layer (1, H, T_q, T_k), one batch row.

    Values are rounded to `decimals` in float64: the browser needs no more, and it keeps the HTML
    saved in the notebook small. Raises ValueError for an empty list, a tensor that is not 4-D,
    or a batch_index outside [0, B).
    """
    if attentions is None or len(attentions) == 0:
        raise ValueError(f"{what} is empty: run the model with return_attention=True")
    layers = []
    for i, a in enumerate(attentions):
        if a.dim() != 4:
            raise ValueError(f"{what}[{i}] has shape {tuple(a.shape)}; expected (B, H, T_q, T_k)")
        if not -a.size(0) <= batch_index < a.size(0):
            raise ValueError(f"batch_index={batch_index} is outside the batch of size {a.size(0)}")
        a = a[batch_index].unsqueeze(0).detach().cpu().double()  # (1, H, T_q, T_k)
        layers.append(a.round(decimals=decimals) if decimals is not None else a)
    return layers


def _bertviz_arguments(attentions, tokens, encoder_attention, decoder_attention, cross_attention,
                       encoder_tokens, decoder_tokens, batch_index, decimals) -> dict:
    """Sort what the caller gave into bertviz's self-attention or encoder-decoder arguments."""
    if hasattr(attentions, "cross_attentions"):  # a Seq2SeqOutput: show all three kinds
        out, attentions = attentions, None
        encoder_attention, decoder_attention = out.encoder_attentions, out.attentions
        cross_attention = out.cross_attentions
    elif hasattr(attentions, "attentions"):  # a GPT or BERT output
        attentions = attentions.attentions
    if attentions is not None:
        if tokens is None:
            raise ValueError("tokens are needed: one string per position of the attention maps")
        return {"attention": _layers_for_bertviz(attentions, batch_index, decimals, "attentions"),
                "tokens": list(tokens)}
    kwargs = {"encoder_tokens": None if encoder_tokens is None else list(encoder_tokens),
              "decoder_tokens": None if decoder_tokens is None else list(decoder_tokens)}
    for key, value in (("encoder_attention", encoder_attention), ("decoder_attention", decoder_attention),
                       ("cross_attention", cross_attention)):
        if value is not None:
            kwargs[key] = _layers_for_bertviz(value, batch_index, decimals, key)
    if len(kwargs) == 2:
        raise ValueError("give attentions (a list of (B, H, T, T) tensors or a model output), "
                         "or encoder_attention / decoder_attention / cross_attention")
    return kwargs


def head_view(attentions=None, tokens=None, *, encoder_attention=None, decoder_attention=None,
              cross_attention=None, encoder_tokens=None, decoder_tokens=None, batch_index=0,
              decimals=4, **kwargs):
    """bertviz's head view of our attention maps: lines from each token to the tokens it attends to.

    attentions: a list of (B, H, T, T) tensors, one per layer, or a model output (GPT, BERT, or
    Seq2Seq, whose encoder, decoder and cross attentions are all shown); tokens: T strings.
    For encoder-decoder lists give encoder_/decoder_/cross_attention with encoder_/decoder_tokens.
    batch_index picks the batch row. Other keyword arguments go to bertviz.head_view (layer, heads,
    include_layers, html_action="return" to get the HTML object instead of displaying it).
    Raises ValueError for missing or malformed attention maps (bertviz: for a token count mismatch).
    """
    import bertviz

    arguments = _bertviz_arguments(attentions, tokens, encoder_attention, decoder_attention, cross_attention,
                                   encoder_tokens, decoder_tokens, batch_index, decimals)
    return bertviz.head_view(**arguments, **kwargs)


def model_view(attentions=None, tokens=None, *, encoder_attention=None, decoder_attention=None,
               cross_attention=None, encoder_tokens=None, decoder_tokens=None, batch_index=0,
               decimals=4, **kwargs):
    """bertviz's model view: a grid of every layer (rows) and head (columns) of our attention maps.

    Takes the same arguments as head_view; other keyword arguments go to bertviz.model_view
    (display_mode="light", include_layers, include_heads, html_action="return").
    """
    import bertviz

    arguments = _bertviz_arguments(attentions, tokens, encoder_attention, decoder_attention, cross_attention,
                                   encoder_tokens, decoder_tokens, batch_index, decimals)
    return bertviz.model_view(**arguments, **kwargs)


__all__ = ["attention_explorer", "attention_maps", "display_token", "head_view", "model_view",
           "plot_attention", "plot_loss", "plot_range_histogram", "range_explorer", "token_strings"]


# ----------------------------------------------------------------------- values and number formats
def plot_range_histogram(values, fmt=None, ax=None, label=None, shift=0, title=None, bins=None):
    """Histogram of log2 |values| (the nonzero finite entries), against the range of a number format.

    values: a tensor (any shape); fmt: a llmbook.precision format name ("fp16", "bf16", "fp8_e4m3",
    "fp8_e5m2", "fp32") or None for no range; shift: multiply the values by 2^shift first (what a
    loss scale does). The format's normal range is shaded grey and its subnormal range hatched;
    values left of both round to 0, values right of them overflow. Returns the matplotlib Axes.
    Raises ValueError if values has no nonzero finite entry or fmt is unknown.
    """
    import matplotlib.pyplot as plt

    from .precision import format_limits_log2, log2_magnitudes

    logs = log2_magnitudes(torch.as_tensor(values)) + shift
    if logs.numel() == 0:
        raise ValueError("plot_range_histogram needs at least one nonzero finite value")
    limits = format_limits_log2(fmt) if fmt is not None else None
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.2))
    lo, hi = logs.min().item(), logs.max().item()
    if limits is not None:
        lo, hi = min(lo, limits[0] - 2), max(hi, min(limits[2] + 2, hi + 40))
        ax.axvspan(limits[0], limits[1], facecolor="none", edgecolor="0.55", hatch="///", linewidth=0,
                   label=f"{fmt}: subnormal")
        ax.axvspan(limits[1], limits[2], color="0.85", label=f"{fmt}: normal")
        for x in limits:
            ax.axvline(x, color="0.3", linewidth=0.8, linestyle=":")
    edges = bins if bins is not None else torch.linspace(logs.min().item() - 0.5, logs.max().item() + 0.5, 60).tolist()
    ax.hist(logs.tolist(), bins=edges, color="tab:blue", alpha=0.85, label=label)
    ax.set_xlim(lo - 1, hi + 1)
    ax.set_xlabel("log2 |value|" + (f" (values × 2^{shift})" if shift else ""))
    ax.set_ylabel("count")
    if title is not None:
        ax.set_title(title)
    ax.legend(fontsize=7, loc="upper left")
    return ax


def _range_png(values, fmt, shift, title) -> bytes:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, 3.4))
    plot_range_histogram(values, fmt, ax=fig.add_subplot(), shift=shift, title=title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    return buffer.getvalue()


def range_explorer(tensors: dict, fmt: str = "fp16", shift: int = 0,
                   formats=("fp16", "bf16", "fp8_e4m3", "fp8_e5m2")):
    """Interactive: pick a tensor, a number format and a power-of-two scale; see which values fit.

    tensors: {label: tensor}, e.g. the gradients of two models. Shows the histogram of log2 |values|
    against the format's range and a status line with the fractions that underflow, are subnormal,
    normal, or overflow (llmbook.precision.range_report). Returns an ipywidgets VBox (the picture is
    an <img> with alt text in an HTML widget, kept in saved notebooks). Raises ValueError for an empty
    dict or unknown formats.
    """
    import ipywidgets as widgets

    from .precision import get_format, range_report

    if not tensors:
        raise ValueError("range_explorer needs at least one tensor: {label: tensor}")
    for name in (fmt, *formats):
        get_format(name)
    if fmt not in formats:
        formats = (fmt, *formats)
    tensors = {str(k): torch.as_tensor(v).detach().float().cpu() for k, v in tensors.items()}
    which = widgets.Dropdown(options=list(tensors), description="tensor", layout=widgets.Layout(width="60%"))
    fmt_box = widgets.Dropdown(options=list(formats), value=fmt, description="format")
    shift_slider = widgets.IntSlider(value=shift, min=-24, max=24, description="× 2^k")
    status = widgets.HTML()
    image = widgets.HTML()  # an <img> with alt text (an Image widget cannot have one)

    def redraw(_change=None):
        values = tensors[which.value]
        try:
            report = range_report(values * 2.0 ** shift_slider.value, fmt_box.value)
            image.value = png_img_tag(
                _range_png(values, fmt_box.value, shift_slider.value, f"{which.value} in {fmt_box.value}"),
                f"Histogram of log2 of the magnitudes of {which.value} scaled by 2^{shift_slider.value}, "
                f"with the normal and subnormal ranges of {fmt_box.value} shaded")
            status.value = ", ".join(f"{key} {100 * v:.1f}%" for key, v in report.items())
        except ValueError as err:  # e.g. a tensor of zeros
            status.value = f"<span style='color:#b00'>cannot show this tensor: {html.escape(str(err))}</span>"

    for control in (which, fmt_box, shift_slider):
        control.observe(redraw, names="value")
    redraw()
    return widgets.VBox([which, widgets.HBox([fmt_box, shift_slider]), status, image])
