"""Training: AdamW with weight-decay groups, warm-up + cosine learning rate, gradient clipping,
mixed precision, and checkpoints that hold plain data only.

A training step is: forward (the model computes its own ``.loss``), backward, clip the gradient
norm, set the scheduled learning rate, AdamW step. ``train`` runs that loop for any llmbook model.
A model that also returns an ``.aux_loss`` (a GPT with a mixture of experts: its load-balancing loss)
is trained on ``loss + aux_loss_weight * aux_loss``; the history records both losses apart.

Taught in chapter 5, Pretraining.
"""
from __future__ import annotations

import math
import pickle
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields, is_dataclass

import torch
from torch import nn

from .device import autocast_dtype, pick_device, seed_everything
from .generate import inference_mode
from .models import CONFIGS, MODELS

CHECKPOINT_KEYS = ("model_class", "config", "state_dict", "extra")


@dataclass
class TrainConfig:
    """Settings of one training run. Raises ValueError on a setting outside its range."""

    steps: int  # optimizer steps (one batch each)
    lr: float = 3e-4  # peak learning rate, reached at the end of warm-up
    weight_decay: float = 0.1  # applied to matrices only; see make_optimizer
    betas: tuple[float, float] = (0.9, 0.95)  # GPT-3's beta2 = 0.95 is steadier than 0.999 for LMs
    warmup_steps: int | None = None  # None: 10% of steps
    min_lr_ratio: float = 0.1  # the cosine decays to min_lr_ratio * lr
    grad_clip: float | None = 1.0  # max global gradient norm; None = no clipping
    device: str | None = None  # None: llmbook.device.pick_device() (cuda, then mps, then cpu)
    amp: bool = True  # autocast to bf16 (or fp16 + loss scaling) on CUDA; CPU and MPS stay fp32
    compile: bool = False  # torch.compile the model for the training steps
    log_every: int = 100  # show the loss on the progress bar (or print it) every so many steps; 0 = never
    eval_every: int = 0  # call eval_fn every so many steps and after the last; 0 = only after the last
    progress: bool = True  # tqdm progress bar
    seed: int | None = 0  # seeds dropout and anything get_batch draws from the global RNGs
    aux_loss_weight: float = 0.01  # times the model's .aux_loss (if any), added to .loss; 0.01 as in Switch

    def __post_init__(self):
        self.betas = tuple(self.betas)
        if self.steps < 1:
            raise ValueError(f"steps={self.steps} must be >= 1")
        if self.warmup_steps is None:
            self.warmup_steps = self.steps // 10
        if not 0 <= self.warmup_steps <= self.steps:
            raise ValueError(f"warmup_steps={self.warmup_steps} must lie in [0, steps={self.steps}]")
        if not self.lr > 0:
            raise ValueError(f"lr={self.lr} must be > 0")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio={self.min_lr_ratio} must lie in [0, 1]")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay={self.weight_decay} must be >= 0")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"betas={self.betas} must be two numbers in [0, 1)")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip={self.grad_clip} must be > 0 (or None for no clipping)")
        if not self.aux_loss_weight >= 0:
            raise ValueError(f"aux_loss_weight={self.aux_loss_weight} must be >= 0")
        if self.log_every < 0 or self.eval_every < 0:
            raise ValueError(f"log_every={self.log_every} and eval_every={self.eval_every} must be >= 0")


@dataclass
class History:
    """What a run recorded: one entry per step in step, loss, lr, grad_norm (plain floats).

    loss is the model's .loss alone; aux_loss holds its .aux_loss per step (unweighted), and stays
    empty for a model that returns none.
    grad_norm is the global gradient norm *before* clipping (how large the gradient really was).
    evals holds one dict per evaluation: {"step": step, **eval_fn(model)}.
    tokens counts the elements of the first input tensor of every batch (B * T input ids; for
    Seq2Seq the source only); tokens_per_s divides it by the wall time of the training steps,
    get_batch included, evaluations excluded.
    """

    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    aux_loss: list[float] = field(default_factory=list)
    evals: list[dict] = field(default_factory=list)
    tokens: int = 0
    seconds: float = 0.0
    tokens_per_s: float = 0.0


# ------------------------------------------------------------------------------ learning rate
def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate for 0-based `step`: linear warm-up, then cosine decay to min_lr_ratio * lr.

    Warm-up rises in equal increments lr / (warmup_steps + 1) from ~0 at step 0 to lr at step
    warmup_steps; the cosine then falls to min_lr_ratio * lr at step cfg.steps and stays there.
    Raises ValueError for a negative step.
    """
    if step < 0:
        raise ValueError(f"step={step} must be >= 0")
    if step < cfg.warmup_steps:
        # (step + 1): the first step already moves the weights; lr * 0 would be a wasted step
        return cfg.lr * (step + 1) / (cfg.warmup_steps + 1)
    min_lr = cfg.lr * cfg.min_lr_ratio
    decay_steps = cfg.steps - cfg.warmup_steps
    if step >= cfg.steps or decay_steps == 0:
        return min_lr
    progress = (step - cfg.warmup_steps) / decay_steps  # 0 -> 1
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (cfg.lr - min_lr)


# ---------------------------------------------------------------------------------- optimizer
def weight_decay_split(model: nn.Module) -> tuple[list[str], list[str]]:
    """Names of the trainable parameters (decay, no_decay): matrices decay, vectors do not.

    Biases and LayerNorm gains are 1-D: decaying them pulls a LayerNorm towards zero output and
    a bias towards zero for no regularising benefit. Embeddings are 2-D and *do* decay, as in
    GPT-1 ("all non bias or gain weights") and nanoGPT, though minGPT exempts them: the token
    embedding is tied to lm_head, an ordinary matrix, so it must sit in one group anyway, and a
    single "ndim >= 2" rule is easy to state. A tied parameter appears once, under its first name.
    """
    decay, no_decay = [], []
    for name, p in model.named_parameters():  # named_parameters() yields a tied tensor once
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(name)
    return decay, no_decay


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with two parameter groups, named "decay" (weight_decay) and "no_decay" (0.0).

    Raises ValueError if the model has no trainable parameters.
    """
    decay, no_decay = weight_decay_split(model)
    if not decay and not no_decay:
        raise ValueError("the model has no trainable parameters (all have requires_grad=False)")
    params = dict(model.named_parameters())
    groups = [
        {"params": [params[n] for n in decay], "weight_decay": cfg.weight_decay, "name": "decay"},
        {"params": [params[n] for n in no_decay], "weight_decay": 0.0, "name": "no_decay"},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas)


# -------------------------------------------------------------------------------- train loop
def _to_device(batch, device):
    """Move the tensors of a tuple/list/dict batch (or a single tensor) to device.

    Returns (args tuple, kwargs dict). Raises TypeError for any other batch type.
    """
    move = lambda v: v.to(device) if isinstance(v, torch.Tensor) else v  # noqa: E731
    if isinstance(batch, torch.Tensor):
        return (move(batch),), {}
    if isinstance(batch, (tuple, list)):
        return tuple(move(v) for v in batch), {}
    if isinstance(batch, dict):
        return (), {k: move(v) for k, v in batch.items()}
    raise TypeError(f"get_batch must return a tuple, list or dict of tensors, got {type(batch).__name__}")


def _count_tokens(args, kwargs) -> int:
    """Elements of the first tensor of the batch: the model's main input ids (B * T)."""
    for v in (*args, *kwargs.values()):
        if isinstance(v, torch.Tensor):
            return v.numel()
    return 0


def _clip(model: nn.Module, max_norm: float | None) -> torch.Tensor:
    """Clip the global gradient norm to max_norm in place; return the norm *before* clipping."""
    params = [p for p in model.parameters() if p.grad is not None]
    # max_norm=inf measures without changing anything (the clip coefficient is clamped to 1)
    return torch.nn.utils.clip_grad_norm_(params, float("inf") if max_norm is None else max_norm)


@dataclass
class _Run:
    """What the training steps share: the model to call, optimizer, and mixed-precision setup."""

    runner: nn.Module  # the model, or its torch.compile wrapper (same parameters)
    optimizer: torch.optim.Optimizer
    device: torch.device
    amp_dtype: torch.dtype | None
    scaler: torch.amp.GradScaler | None  # only for fp16


def _train_step(run: _Run, cfg: TrainConfig, args, kwargs, step: int) -> tuple[float, float, float | None]:
    """One forward/backward/clip/AdamW step. Returns (loss, pre-clip grad norm, aux loss or None) as floats.

    The gradient is that of loss + cfg.aux_loss_weight * aux_loss when the model returns an aux_loss.

    Raises ValueError if the model returns no loss, FloatingPointError if the loss is not finite.
    """
    autocast = torch.autocast(run.device.type, dtype=run.amp_dtype) if run.amp_dtype else nullcontext()
    with autocast:
        out = run.runner(*args, **kwargs)
    loss = getattr(out, "loss", None)
    if loss is None:
        raise ValueError(f"step {step}: the model returned no .loss; does get_batch return the targets?")
    loss_value = loss.item()
    if not math.isfinite(loss_value):
        raise FloatingPointError(f"step {step}: loss is {loss_value}; try a lower lr (now {cfg.lr})")
    aux = getattr(out, "aux_loss", None)
    objective = loss + cfg.aux_loss_weight * aux if aux is not None else loss
    (run.scaler.scale(objective) if run.scaler else objective).backward()
    if run.scaler:
        run.scaler.unscale_(run.optimizer)  # clip the true gradients, not the loss-scaled ones
    grad_norm = _clip(run.runner, cfg.grad_clip).item()
    for group in run.optimizer.param_groups:
        group["lr"] = lr_at(step, cfg)
    if run.scaler:
        run.scaler.step(run.optimizer)  # skips the step if fp16 gradients overflowed
        run.scaler.update()
    else:
        run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    return loss_value, grad_norm, (aux.item() if aux is not None else None)


def _evaluate(model, eval_fn, step) -> dict:
    """Run eval_fn(model) in eval mode without gradients; returns {"step": step, **results}."""
    with inference_mode(model):
        results = eval_fn(model)
    if not isinstance(results, dict):
        raise TypeError(f"eval_fn must return a dict of metrics, got {type(results).__name__}")
    return {"step": step, **results}


def _setup(model: nn.Module, cfg: TrainConfig) -> _Run:
    """Move model to the device; build the optimizer, the AMP settings and (maybe) the compiled model."""
    device = pick_device(cfg.device)
    model.to(device)
    amp_dtype = autocast_dtype(device) if cfg.amp else None
    # fp16 has a narrow range: scale the loss so small gradients do not underflow to zero
    scaler = torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None
    runner = torch.compile(model) if cfg.compile else model
    return _Run(runner, make_optimizer(model, cfg), device, amp_dtype, scaler)


def train(model: nn.Module, get_batch, cfg: TrainConfig, eval_fn=None) -> History:
    """Train model for cfg.steps steps; returns the History.

    get_batch(step) -> a tuple of tensors passed as model(*batch), or a dict passed as
    model(**batch); e.g. (input_ids (B, T), targets (B, T)) for GPT. Tensors are moved to the device.
    eval_fn(model) -> dict of metrics, called (eval mode, no grad) every cfg.eval_every steps and
    after the last step. The model is moved to the device and trained in place.
    Raises ValueError (no loss), FloatingPointError (non-finite loss), TypeError (bad batch).
    """
    from tqdm.auto import tqdm  # here, so importing llmbook.train stays light

    if cfg.seed is not None:
        seed_everything(cfg.seed)
    run = _setup(model, cfg)
    history, was_training = History(), model.training
    model.train()
    bar = tqdm(range(cfg.steps), disable=not cfg.progress, desc="train")
    try:
        for step in bar:
            start = time.perf_counter()
            args, kwargs = _to_device(get_batch(step), run.device)
            loss, grad_norm, aux = _train_step(run, cfg, args, kwargs, step)
            # loss.item() waits for the device each step, so asynchronous CUDA work is counted too
            history.seconds += time.perf_counter() - start
            history.tokens += _count_tokens(args, kwargs)
            _record(history, step, loss, lr_at(step, cfg), grad_norm, aux)
            _log(bar, cfg, step, loss, lr_at(step, cfg))
            last = step == cfg.steps - 1
            if eval_fn is not None and (last or (cfg.eval_every and (step + 1) % cfg.eval_every == 0)):
                history.evals.append(_evaluate(model, eval_fn, step))
    finally:
        bar.close()
        model.train(was_training)
    history.tokens_per_s = history.tokens / history.seconds if history.seconds > 0 else 0.0
    return history


def _record(history, step, loss, lr, grad_norm, aux=None):
    history.step.append(step)
    history.loss.append(loss)
    history.lr.append(lr)
    history.grad_norm.append(grad_norm)
    if aux is not None:
        history.aux_loss.append(aux)


def _log(bar, cfg, step, loss, lr):
    """Every log_every steps: loss and lr on the progress bar, or a printed line without one."""
    if not cfg.log_every or ((step + 1) % cfg.log_every and step != cfg.steps - 1):
        return
    if cfg.progress:
        bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}")
    else:
        print(f"step {step + 1:>6}/{cfg.steps}  loss {loss:.4f}  lr {lr:.2e}")


# -------------------------------------------------------------------------------- checkpoints
def _model_class_name(model: nn.Module) -> str:
    """The MODELS name of model ("GPT", "BERT" or "Seq2Seq"); raises TypeError for other modules."""
    model = getattr(model, "_orig_mod", model)  # a torch.compile wrapper holds the real model
    for name, cls in MODELS.items():
        if type(model) is cls:
            return name
    raise TypeError(f"can only checkpoint llmbook models {sorted(MODELS)}, got {type(model).__name__}")


def _check_plain(value, where: str) -> None:
    """Raise TypeError unless value is plain data that torch.load(weights_only=True) accepts."""
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"{where} has a key of type {type(k).__name__}; use str or int keys")
            _check_plain(v, f"{where}[{k!r}]")
        return
    raise TypeError(f"{where} is a {type(value).__name__}; a checkpoint holds only plain data "
                    "(None, bool, int, float, str, tensors, and lists/tuples/dicts of them)")


def save_checkpoint(path, model: nn.Module, **extra) -> None:
    """Save {"model_class", "config", "state_dict", "extra"} to path with torch.save.

    extra: plain data (e.g. step=1000, history=asdict(history), tokenizer vocab).
    Tied weights are saved once: both state_dict keys share one storage.
    Raises TypeError for a non-llmbook model or an extra value that is not plain data.
    """
    name = _model_class_name(model)
    model = getattr(model, "_orig_mod", model)
    _check_plain(extra, "extra")
    torch.save({"model_class": name, "config": asdict(model.config), "state_dict": model.state_dict(),
                "extra": extra}, path)


def read_checkpoint(path, map_location="cpu") -> dict:
    """Load a checkpoint as plain data: {"model_class", "config", "state_dict", "extra"}.

    Raises ValueError if the file holds pickled objects (which could run code when loaded),
    or lacks a checkpoint's keys or names an unknown model class.
    """
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise ValueError(f"{path} is not a plain-data checkpoint: it contains pickled objects that "
                         "torch.load(weights_only=True) refuses, because loading them could run code") from e
    missing = [k for k in CHECKPOINT_KEYS if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise ValueError(f"{path} is not an llmbook checkpoint: missing {missing}")
    if ckpt["model_class"] not in MODELS:
        raise ValueError(f"{path}: unknown model_class {ckpt['model_class']!r}; expected one of {sorted(MODELS)}")
    return ckpt


def config_diff(a: dict, b: dict) -> list[str]:
    """Lines "field: a vs b" for every field whose value differs between two config dicts."""
    return [f"{k}: {a.get(k, '<absent>')!r} vs {b.get(k, '<absent>')!r}"
            for k in sorted(set(a) | set(b)) if a.get(k, "<absent>") != b.get(k, "<absent>")]


# config fields renamed since checkpoints were first saved: old name -> new name
RENAMED_CONFIG_FIELDS = {"block_size": "context_length", "max_len": "context_length"}
RENAMED_STATE_DICT_PARTS = {"self_attn.": "attn."}


def _build_config(name: str, config: dict, path):
    """CONFIGS[name](**config); raises ValueError naming fields the config class does not have."""
    known = {f.name for f in fields(CONFIGS[name])}
    unknown = sorted(set(config) - known)
    if unknown:
        renamed = [f"{k} -> {RENAMED_CONFIG_FIELDS[k]}" for k in unknown if k in RENAMED_CONFIG_FIELDS]
        parts = ", ".join(f"{old!r} -> {new!r}" for old, new in RENAMED_STATE_DICT_PARTS.items())
        hint = (f" (renamed since this checkpoint was saved: {', '.join(renamed)}; the checkpoint is from an "
                f"older llmbook: rename those config keys, and in the state-dict keys {parts})" if renamed else "")
        raise ValueError(f"{path}: {name}Config has no fields {unknown}{hint}")
    return CONFIGS[name](**config)


def _check_tied(model: nn.Module, state_dict: dict, path) -> None:
    """Raise ValueError if two names of one tied parameter hold different tensors in state_dict.

    Strict loading copies both (e.g. tok_emb.weight and lm_head.weight) into the one parameter
    and would silently keep whichever came last.
    """
    first = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) in first and name in state_dict and first[id(p)] in state_dict:
            if not torch.equal(state_dict[name], state_dict[first[id(p)]]):
                raise ValueError(f"{path}: {name} and {first[id(p)]} are tied in this model but differ "
                                 "in the checkpoint (was it saved from an untied model?)")
        first.setdefault(id(p), name)


def load_checkpoint(path, expected_config=None, map_location="cpu") -> nn.Module:
    """Rebuild the saved model (in eval mode) from path: its class, config, and weights (strict).

    expected_config: a config dataclass or dict the checkpoint must match.
    Raises ValueError for a file that is not a plain-data llmbook checkpoint, or when the
    checkpoint's config differs from expected_config (naming each differing field, checkpoint
    value first).
    """
    ckpt = read_checkpoint(path, map_location)
    name, config = ckpt["model_class"], _build_config(ckpt["model_class"], ckpt["config"], path)
    if expected_config is not None:
        expected = asdict(expected_config) if is_dataclass(expected_config) else dict(expected_config)
        diff = config_diff(asdict(config), expected)
        if diff:
            raise ValueError(f"{path}: checkpoint config differs from expected_config (checkpoint vs "
                             f"expected): " + "; ".join(diff))
    model = MODELS[name](config)  # builds the tie (lm_head.weight is tok_emb.weight) ...
    _check_tied(model, ckpt["state_dict"], path)
    model.load_state_dict(ckpt["state_dict"], strict=True)  # ... and copies into it in place
    return model.to(map_location).eval()


def load_state_into(model: nn.Module, path) -> nn.Module:
    """Load the weights at path into an existing model of the same class and config; returns it.

    Raises ValueError when the checkpoint is of another model class or another config (naming
    each differing field: checkpoint value vs model value), or is not a plain-data checkpoint.
    """
    name = _model_class_name(model)
    model = getattr(model, "_orig_mod", model)
    ckpt = read_checkpoint(path, map_location=next(model.parameters()).device)
    if ckpt["model_class"] != name:
        raise ValueError(f"{path} holds a {ckpt['model_class']}, not a {name}")
    diff = config_diff(ckpt["config"], asdict(model.config))
    if diff:
        raise ValueError(f"{path} is a checkpoint of another config (checkpoint vs model): " + "; ".join(diff))
    _check_tied(model, ckpt["state_dict"], path)
    model.load_state_dict(ckpt["state_dict"], strict=True)
    return model
