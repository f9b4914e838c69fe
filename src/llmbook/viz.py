"""Pictures of what a model computes: attention heatmaps, loss curves, an interactive attention
explorer, and adapters that hand our attention tensors to bertviz.

matplotlib, ipywidgets and bertviz are imported inside the functions that use them, so that
``import llmbook`` stays light and works where no plotting library is installed.
"""
from __future__ import annotations

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
    """The most positions the model accepts (GPT: block_size, BERT: max_len), if it says."""
    config = getattr(model, "config", None)
    return getattr(config, "block_size", None) or getattr(config, "max_len", None)


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


def attention_explorer(model, tokenizer, text, layer=0, head=0):
    """Interactive heatmap: type a text, pick a layer and a head, see who attends to whom.

    model: llmbook GPT or BERT (see attention_maps); tokenizer: has encode(str) -> list[int] and
    decode(list[int]) -> str. Returns an ipywidgets VBox: a text box, layer and head sliders, a
    status line and the heatmap (an Image widget, so the first picture is kept in saved notebooks).
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
    image = widgets.Image(format="png")
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
            image.value = _heatmap_png(weights, state["tokens"], title)
            status.value = f"{len(state['tokens'])} tokens"
        except (ValueError, KeyError, IndexError) as err:  # an unknown character, a text too long
            state["text"] = None
            status.value = f"<span style='color:#b00'>cannot show this text: {html.escape(str(err))}</span>"

    for control in (text_box, layer_slider, head_slider):
        control.observe(redraw, names="value")
    redraw()
    return widgets.VBox([text_box, widgets.HBox([layer_slider, head_slider]), status, image])


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
           "plot_attention", "plot_loss", "token_strings"]
