"""A run's configuration and the defaults tunesmith chooses from the data (no torch here)."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

LEARNING_RATE_LORA = 1e-3
"""Measured on the embedded 135M model: 60 rows x 3 epochs at 1e-3 learn a JSON task exactly."""
LEARNING_RATE_FULL = 5e-5
"""Full fine-tuning moves every weight, so it takes a much smaller step."""
LEARNING_RATE_IA3 = 1e-2
"""IA3 learns one scale per activation, starting at 1: it needs a larger step than LoRA."""
LEARNING_RATE_PROMPT = 3e-2
"""Prompt tuning moves only a few embeddings in front of the prompt: the largest step of all."""
VIRTUAL_TOKENS = 16
"""Learned tokens in front of every prompt for prompt tuning, initialised from the task's text."""
STEP_TARGET = 150
"""Rows seen per run (epochs x rows) that small tasks need; sets the fixed epoch count."""
CEILING_FACTOR = 3
"""A run that validates itself may see this many times ``STEP_TARGET`` rows: it stops by itself
when validation quality stops improving, so the ceiling only bounds a task still learning."""
MAX_CEILING_EPOCHS = 20
MIN_BUDGET_SECONDS = 600
"""The default time budget is never under ten minutes."""
METHODS = ("lora", "dora", "rslora", "ia3", "prompt-tuning", "full")
"""How a run adapts the model: a LoRA adapter, DoRA (LoRA with a learned magnitude per output),
rsLoRA (LoRA scaled by alpha / sqrt(rank)), IA3 (a learned scale on some activations), prompt
tuning (learned virtual tokens in front of every prompt), or every weight."""
LORA_METHODS = ("lora", "dora", "rslora")
"""The methods whose adapter is a LoRA: they share one copy of the base weights when served."""
RSLORA_ALPHA = 8
"""rsLoRA's alpha: its scale alpha / sqrt(16) = 2 equals LoRA's at the default rank 16, and
stays put as the rank grows (the point of rsLoRA), where LoRA's alpha follows at 2r."""


@dataclass(frozen=True)
class RunConfig:
    """How one run trains; every field has a default chosen from the data.

    A field's metadata holds its ``help`` and, for a setting a person may type, the bounds a
    typed value must keep: ``min`` (above it, for a number with a fraction, unless
    ``min_included``) and ``max``.
    """

    epochs: int = field(metadata={"help": "Passes over the training rows.", "min": 1, "max": 1000})
    learning_rate: float = field(
        metadata={"help": "Peak learning rate (cosine decay after it).", "min": 0.0, "max": 1.0}
    )
    batch_size: int = field(metadata={"help": "Rows per optimizer step.", "min": 1, "max": 4096})
    lora_rank: int = field(
        default=16,
        metadata={"help": "LoRA rank r: the adapter's capacity.", "min": 1, "max": 1024},
    )
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (scale = alpha / r)."})
    lora_dropout: float = field(default=0.0, metadata={"help": "Dropout on the LoRA inputs."})
    virtual_tokens: int = field(
        default=VIRTUAL_TOKENS,
        metadata={
            "help": "Learned tokens before every prompt (prompt tuning).",
            "min": 1,
            "max": 512,
        },
    )
    target_modules: str = field(
        default="all-linear", metadata={"help": "Layers that get adapters."}
    )
    max_steps: int = field(
        default=0, metadata={"help": "Optimizer steps in all (0: from epochs).", "min": 1}
    )
    save_every: int = field(
        default=0, metadata={"help": "Checkpoint every N steps (0: auto).", "min": 1}
    )
    eval_every: int = field(
        default=0, metadata={"help": "Validation check every N steps (0: auto)."}
    )
    early_stopping_patience: int = field(
        default=3,
        metadata={"help": "Checks in a row without a better validation result before stopping."},
    )
    budget_seconds: int = field(
        default=0,
        metadata={"help": "Training time allowed, in seconds (0: from the data and this machine)."},
    )
    warmup_steps: int = field(default=0, metadata={"help": "Steps of linear warm-up."})
    method: str = field(
        default="lora",
        metadata={
            "help": (
                "How the model is adapted: lora; dora (LoRA with a learned magnitude, slower);"
                " rslora (LoRA scaled by alpha / sqrt(rank)); ia3 (a learned scale on keys,"
                " values and the MLP); prompt-tuning (learned tokens before every prompt); full"
                " (every weight)."
            ),
            "choices": METHODS,
        },
    )
    qlora: bool = field(default=False, metadata={"help": "4-bit base model (CUDA only)."})
    keep_checkpoints: int = field(default=2, metadata={"help": "Complete checkpoints kept."})
    seed: int = field(default=0, metadata={"help": "Random seed."})
    replay: float = field(
        default=0.0,
        metadata={
            "help": (
                "Share of the training rows that are the base model's own answers to general "
                "prompts, against forgetting (0: none)."
            ),
            "min": 0.0,
            "max": 0.9,
            "min_included": True,
        },
    )

    def to_dict(self) -> dict[str, Any]:
        """The config as JSON-ready values."""
        return asdict(self)

    @property
    def full(self) -> bool:
        """Whether every weight trains, so there is no adapter."""
        return self.method == "full"

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunConfig:
        """A config from stored values, ignoring keys this version does not know (a run
        stored before ``method`` says ``"full": true`` for a full fine-tune)."""
        known = {f.name for f in fields(cls)}
        chosen = {key: value for key, value in values.items() if key in known}
        return cls(**{**chosen, "method": stored_method(values)})


def stored_method(values: dict[str, Any]) -> str:
    """The method of a stored run config: its ``method``, else (stored before there was one)
    ``full`` where it says ``"full": true``, else LoRA."""
    return str(values.get("method") or ("full" if values.get("full") else "lora"))


_FIELDS = {run_field.name: run_field for run_field in fields(RunConfig)}


def setting_help(name: str) -> str:
    """The help of run setting ``name``, with the values it takes where it is bounded."""
    run_field = _FIELDS[name]
    text = str(run_field.metadata["help"])
    if "min" not in run_field.metadata:
        return text
    return f"{text.rstrip('.')} ({setting_rule(name)})."


def setting_rule(name: str) -> str:
    """What a typed value of run setting ``name`` must be, e.g. ``a whole number from 1 to 8``."""
    metadata = _FIELDS[name].metadata
    low, high = metadata["min"], metadata.get("max")
    if _FIELDS[name].type == "float":
        return f"a number between {low:g} and {high:g}"
    if high is None:
        return f"a whole number, {low} or more"
    return f"a whole number from {low} to {high}"


def check_setting(name: str, value: object) -> None:
    """Raise ValueError with the setting's rule when ``value`` is outside its bounds (or not
    one of its choices)."""
    metadata = _FIELDS[name].metadata
    if "choices" in metadata and value not in metadata["choices"]:
        raise ValueError(f"one of {', '.join(metadata['choices'])}")
    if "min" not in metadata:
        return
    low, high = metadata["min"], metadata.get("max")
    if _FIELDS[name].type == "float":
        number = isinstance(value, int | float) and not isinstance(value, bool)
        fits = number and (low <= value if metadata.get("min_included") else low < value)
    else:
        fits = isinstance(value, int) and not isinstance(value, bool) and low <= value
    if not fits or (high is not None and value > high):
        raise ValueError(setting_rule(name))


@dataclass(frozen=True)
class Plan:
    """A config with the reason for each chosen value, as shown to the user."""

    config: RunConfig
    reasons: dict[str, str]


VALIDATION_SHARE = 0.12
"""Share of the approved train rows carved off to validate on while training."""

VALIDATION_MIN_ROWS = 8
"""Fewest validation rows worth checking on."""

VALIDATION_FROM_ROWS = 60
"""Fewest approved train rows a validation split is carved from (8 of 60, 13%); under it the
rows all train, and eval loss comes from the eval rows. Measured on a four-label task of 45
rows, 8 rows carved out made the held-out result hang on which 8 (84% or 47% exact match
against 74% for the fixed plan on all 45)."""

CHECK_ROWS = 32
"""Validation rows answered at each check: enough to rank checkpoints, few enough to be cheap."""


def validation_count(n_train: int) -> int:
    """How many of ``n_train`` approved train rows validate the run instead of training it."""
    if n_train < VALIDATION_FROM_ROWS:
        return 0
    return max(VALIDATION_MIN_ROWS, round(n_train * VALIDATION_SHARE))


def fixed_epochs(n_train: int) -> int:
    """Epochs of a run that does not validate itself: about ``STEP_TARGET`` rows seen, 2 to 8."""
    return min(8, max(2, math.ceil(STEP_TARGET / max(n_train, 1))))


def ceiling_epochs(n_train: int) -> int:
    """The most epochs a run that validates itself may take: ``CEILING_FACTOR`` times the
    fixed plan's rows seen, at least 4 epochs and at most ``MAX_CEILING_EPOCHS``."""
    return min(
        MAX_CEILING_EPOCHS, max(4, math.ceil(CEILING_FACTOR * STEP_TARGET / max(n_train, 1)))
    )


def fixed_plan_steps(task_rows: int, rows: int, batch_size: int) -> int:
    """Steps of the fixed-epoch plan for ``task_rows`` rows of the task, ``rows`` in all (with
    replayed ones), in batches of ``batch_size``: what a default budget is measured against."""
    return steps_per_epoch(rows, batch_size) * fixed_epochs(task_rows)


def default_budget(seconds_per_step: float, fixed_steps: int) -> int:
    """The time budget of a run whose user gave none: twice what the fixed-epoch plan's
    ``fixed_steps`` would take at the measured ``seconds_per_step``, at least ten minutes."""
    return max(MIN_BUDGET_SECONDS, math.ceil(2 * fixed_steps * seconds_per_step))


def parse_duration(text: str) -> int:
    """Seconds in a duration such as ``90s``, ``10m``, ``1h30m`` or ``600``; ValueError else."""
    match = re.fullmatch(r"\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+)s?)?\s*", text.lower())
    if not text.strip() or match is None or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration; use e.g. 90s, 10m or 1h30m")
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise ValueError(f"{text!r} is no time at all; use e.g. 90s, 10m or 1h30m")
    return total


def format_seconds(seconds: float | None) -> str:
    """``1m05s`` style durations, ``1h15m`` from an hour on; ``?`` when unknown."""
    if seconds is None:
        return "?"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def replay_count(task_rows: int, fraction: float) -> int:
    """How many replay rows make ``fraction`` of the rows trained next to ``task_rows``."""
    return round(task_rows * fraction / (1 - fraction))


METHOD_REASONS = {
    "lora": "LoRA: a small adapter beside frozen weights, served next to the base model",
    "dora": (
        "DoRA: LoRA plus a learned magnitude per output, sometimes better at low rank; each"
        " step costs more"
    ),
    "rslora": "rsLoRA: LoRA whose scale stays stable as the rank grows",
    "ia3": (
        "IA3: one learned scale per key, value and MLP channel, the fewest weights of the"
        " adapters; it merges into the model"
    ),
    "prompt-tuning": (
        f"prompt tuning: {VIRTUAL_TOKENS} learned tokens before every prompt, started from the"
        " task's own words; the model's weights stay as they are, and it is served on a copy"
        " of its own"
    ),
    "full": "every weight trains: the most capacity, a whole model's size to keep and serve",
}
"""Why each method, as the plan shows it."""


_METHOD_RATES = {
    "lora": (
        LEARNING_RATE_LORA,
        "1e-3: LoRA adapters on a small model learn a task in a few dozen steps at this rate",
    ),
    "ia3": (LEARNING_RATE_IA3, "1e-2: IA3's scales start at 1 and need a larger step"),
    "prompt-tuning": (
        LEARNING_RATE_PROMPT,
        "3e-2: a few embeddings alone carry the task, so they take large steps",
    ),
    "full": (LEARNING_RATE_FULL, "5e-5: full fine-tuning changes every weight"),
}
"""Each method's default peak learning rate and why; DoRA and rsLoRA take LoRA's."""


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Optimizer steps in one pass over ``n_train`` rows."""
    return max(1, math.ceil(n_train / batch_size))


def plan_run(n_train: int, n_eval: int, overrides: dict[str, Any] | None = None) -> Plan:
    """Choose a config for ``n_train`` approved train rows (less the ``validation_count`` of
    them that validate instead) and ``n_eval`` eval rows; ``overrides`` (from flags) win."""
    overrides = {key: value for key, value in (overrides or {}).items() if value is not None}
    unknown = set(overrides) - set(_FIELDS)
    if unknown:
        raise ValueError(f"unknown run settings: {', '.join(sorted(unknown))}")
    for key, value in overrides.items():
        try:
            check_setting(key, value)
        except ValueError as error:
            raise ValueError(f"{key.replace('_', ' ')}: use {error}") from None
    method = str(overrides.get("method", "lora"))
    reasons: dict[str, str] = {}
    # The validation rows come out of the train rows: everything below counts what trains.
    n_validation = validation_count(n_train)
    n_train -= n_validation

    batch_size = min(8, max(1, n_train // 4))
    reasons["batch_size"] = (
        "8 rows per step: stable gradients, and still several steps per epoch"
        if batch_size == 8
        else f"{batch_size}: a quarter of the {n_train} rows, so each epoch has several steps"
    )
    batch_size = int(overrides.get("batch_size", batch_size))

    validating = n_validation > 0
    fixed = fixed_epochs(n_train)
    if validating:
        epochs = ceiling_epochs(n_train)
        reasons["epochs"] = (
            f"up to {epochs} passes: it stops by itself once validation stops improving;"
            f" the fixed plan would take {fixed} (about {STEP_TARGET} rows seen)"
        )
    else:
        epochs = fixed
        reasons["epochs"] = (
            f"{epochs} passes: small tasks need about {STEP_TARGET} rows seen, "
            f"and this one has {n_train}"
        )
    epochs = int(overrides.get("epochs", epochs))

    learning_rate, reasons["learning_rate"] = _METHOD_RATES.get(method, _METHOD_RATES["lora"])
    learning_rate = float(overrides.get("learning_rate", learning_rate))

    lora_rank = int(overrides.get("lora_rank", 16))
    lora_alpha = RSLORA_ALPHA if method == "rslora" else 2 * lora_rank
    if method in LORA_METHODS:
        reasons["lora_rank"] = (
            f"{lora_rank} on all linear layers (alpha {lora_alpha}): enough capacity for one task"
        )
        reasons["lora_alpha"] = (
            f"{lora_alpha}: a scale alpha / sqrt(rank) that matches LoRA's 2 at rank 16"
            if method == "rslora"
            else f"{lora_alpha}: twice the rank, a scale of 2 at any rank"
        )
    if method == "prompt-tuning":
        reasons["virtual_tokens"] = (
            f"{VIRTUAL_TOKENS}: room for a sentence about the task; they start as the system"
            " prompt's tokens (else the task's description), repeated or cut to fit"
        )
    # Replayed rows come on top of the task's: the task keeps its epochs.
    replayed = replay_count(n_train, float(overrides.get("replay", 0.0)))
    per_epoch = steps_per_epoch(n_train + replayed, batch_size)
    max_steps = int(overrides.get("max_steps") or per_epoch * epochs)
    with_replay = f", {replayed} of each epoch's rows replayed" if replayed else ""
    ceiling = "at most " if validating else ""
    reasons["max_steps"] = f"{ceiling}{max_steps}: {epochs} epochs x {per_epoch} steps{with_replay}"
    if validating:
        # Twice an epoch: a stopping point found within half an epoch, checks that cost little.
        eval_every = int(overrides.get("eval_every") or max(1, math.ceil(per_epoch / 2)))
        save_every = int(overrides.get("save_every") or eval_every)
        checked = min(n_validation, CHECK_ROWS)
        patience = int(overrides.get("early_stopping_patience", 3))
        reasons["eval_every"] = (
            f"every {eval_every} steps, twice an epoch: answers to {checked} of the"
            f" {n_validation} validation rows ({VALIDATION_SHARE:.0%} of train, never trained"
            f" on) scored like the evaluation; after {patience} checks without progress it"
            " stops and keeps the best"
        )
        if n_eval:
            reasons["eval_every"] += f". The {n_eval} eval rows stay the final test"
        reasons["save_every"] = f"every {save_every} steps: each check's checkpoint may be the best"
        fixed_steps = fixed_plan_steps(n_train, n_train + replayed, batch_size)
        reasons["budget_seconds"] = (
            f"twice the time of the fixed plan's {fixed_steps} steps at this machine's measured"
            " speed, at least 10 minutes (--budget 10m sets it)"
        )
    else:
        save_every = int(overrides.get("save_every") or max(1, math.ceil(max_steps / 5)))
        reasons["save_every"] = f"every {save_every} steps: a stop or crash loses little work"
        eval_every = int(overrides.get("eval_every", save_every if n_eval else 0))
        reasons["eval_every"] = (
            f"eval loss on the {n_eval} eval rows every {eval_every} steps; stops early when it"
            " stops improving; with 60 train rows or more, some would validate instead"
            if eval_every
            else "no eval rows, so no eval loss and no early stopping"
        )
        reasons["budget_seconds"] = "none: the fixed epochs bound the run (--budget 10m sets one)"
    reasons["replay"] = (
        "none: your rows alone; if the evaluation reports drift, 0.2 mixes in the base "
        "model's own answers to general prompts"
    )
    warmup_steps = max(0, math.ceil(max_steps * 0.05))
    reasons["warmup_steps"] = f"{warmup_steps}: 5% of the steps warm the rate up"

    config = RunConfig(
        epochs=epochs,
        learning_rate=learning_rate,
        batch_size=batch_size,
        lora_rank=lora_rank,
        lora_alpha=lora_alpha,
        max_steps=max_steps,
        save_every=save_every,
        eval_every=eval_every,
        early_stopping_patience=3 if validating else 2,
        warmup_steps=warmup_steps,
    )
    explicit = {
        key: value
        for key, value in overrides.items()
        if key
        not in (
            "epochs",
            "learning_rate",
            "batch_size",
            "lora_rank",
            "max_steps",
            "save_every",
            "eval_every",
        )
    }
    config = replace(config, **explicit)
    for key in overrides:
        reasons[key] = "set by you"
    # A chosen method still says what it is and costs.
    reasons["method"] = f"{'set by you: ' if 'method' in overrides else ''}{METHOD_REASONS[method]}"
    return Plan(config=config, reasons=reasons)
