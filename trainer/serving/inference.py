"""Answers from a base model and any number of run adapters, on one copy of the base weights."""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from transformers import (
    AutoModelForCausalLM,
    LogitsProcessor,
    LogitsProcessorList,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StoppingCriteria,
    StoppingCriteriaList,
)

from store.errors import InputError, ModelError, NotFoundError, one_line_reason
from trainer.control.adapter_files import adapter_type, check_adapter_folder

# Model names are part of the HTTP protocol, so they live with the torch-free launcher.
from trainer.control.launch import BASE_MODEL_NAME
from trainer.serving.choices import (
    ChoiceStreamer,
    LogprobRecorder,
    Piece,
    TokenLogprob,
    read_logprobs,
    token_logprob,
)
from trainer.serving.json_constraint import JsonConstraint, JsonVocabulary
from trainer.serving.json_prefix import advance, is_complete, start_state
from trainer.serving.json_schema import Shape
from trainer.serving.vocabulary import TokenTexts

REUSED_PREFIXES = 4
"""Conversations whose keys and values are kept: the latest used, of any model names."""

MIN_REUSED_TOKENS = 32
"""Fewest shared leading tokens worth copying a kept cache for."""


@dataclass(frozen=True)
class _Prefix:
    """The keys and values of a model's conversation, and the tokens they cover."""

    name: str
    """The model name that computed them."""
    token_ids: torch.Tensor
    cache: Any


def shared_prefix(kept: torch.Tensor, new: torch.Tensor) -> int:
    """How many leading tokens two 1-D token id tensors have in common."""
    length = min(kept.shape[0], new.shape[0])
    differ = (kept[:length] != new[:length]).nonzero()
    return int(differ[0, 0]) if differ.numel() else length


class UnknownModelError(NotFoundError):
    """A model name this pool does not answer to."""


class PromptTooLongError(InputError):
    """A conversation that leaves the model no room to answer."""


@dataclass(frozen=True)
class Prompt:
    """One conversation, chat-templated and tokenized, with the room left to answer in."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    max_new_tokens: int

    @property
    def prompt_tokens(self) -> int:
        """Number of prompt tokens."""
        return int(self.input_ids.shape[1])


class _StopWhenSet(StoppingCriteria):
    """Stops generation once an event is set (the answer is no longer wanted)."""

    def __init__(self, event: threading.Event) -> None:
        self._event = event

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor | None, **kwargs: object
    ) -> torch.BoolTensor:
        stop = torch.full(
            (input_ids.shape[0],), self._event.is_set(), dtype=torch.bool, device=input_ids.device
        )
        return stop  # type: ignore[return-value]


class _StopAtText(StoppingCriteria):
    """Stops generation once the answer's text contains one of the stop strings."""

    def __init__(
        self, tokenizer: PreTrainedTokenizerBase, prompt_tokens: int, stops: tuple[str, ...]
    ) -> None:
        self._tokenizer = tokenizer
        self._prompt_tokens = prompt_tokens
        self._stops = stops
        # A token decodes to at least part of a character, so a stop string never spans more
        # tokens than twice its characters; only that tail of the answer is decoded each step.
        self._tail = 2 * max(len(stop) for stop in stops) + 4

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor | None, **kwargs: object
    ) -> torch.BoolTensor:
        start = max(self._prompt_tokens, input_ids.shape[1] - self._tail)
        tails = self._tokenizer.batch_decode(input_ids[:, start:], skip_special_tokens=True)
        stop = torch.tensor(
            [any(s in tail for s in self._stops) for tail in tails], device=input_ids.device
        )
        return stop  # type: ignore[return-value]


class Generation:
    """One answer being generated on a worker thread: iterate for its pieces, cancel to stop it.

    It holds ``choices`` answers to one prompt, sampled together as rows of one batch; greedy
    choices are one answer given ``choices`` times (greedy decoding repeats itself). Each
    choice's text ends before the first of ``stops`` and is a JSON value of ``shape`` when one
    is given; ``top_logprobs`` (0-20, None for none) adds each token's log probabilities.
    After iteration ends, ``finish_reasons`` and ``completion_tokens`` describe the answers.
    """

    def __init__(
        self,
        pool: ModelPool,
        name: str,
        prompt: Prompt,
        sampling: dict[str, Any],
        *,
        choices: int = 1,
        stops: tuple[str, ...] = (),
        seed: int | None = None,
        top_logprobs: int | None = None,
        shape: Shape | None = None,
    ) -> None:
        self.prompt = prompt
        self.choices = choices
        self.completion_tokens = 0
        """Tokens generated over all choices, counted once the answers are complete."""
        self.finish_reasons = ["stop"] * choices
        """Per choice: ``stop`` (end of answer, a stop string, or cancelled) or ``length``."""
        self._pool = pool
        self._shape = shape
        self._copies = 1 if sampling.get("do_sample") else choices
        rows = choices // self._copies
        recorder = LogprobRecorder() if top_logprobs is not None else None
        self._streamer = ChoiceStreamer(
            pool.token_texts,
            rows=rows,
            stops=stops,
            eos_token_ids=pool.eos_token_ids,
            recorder=recorder,
            top_logprobs=top_logprobs or 0,
        )
        self._pending: deque[Piece] = deque()
        self._cancelled = threading.Event()
        self._failure: BaseException | None = None
        self._done = False
        processors: list[LogitsProcessor] = [] if recorder is None else [recorder]
        if shape is not None:
            processors.append(
                JsonConstraint(
                    pool.json_vocabulary(),
                    shape,
                    rows=rows,
                    prompt_tokens=prompt.prompt_tokens,
                    max_new_tokens=prompt.max_new_tokens,
                    eos_token_ids=pool.eos_token_ids,
                )
            )
        criteria: list[StoppingCriteria] = []
        if stops:
            criteria.append(_StopAtText(pool.tokenizer, prompt.prompt_tokens, stops))
        inputs = {
            "input_ids": prompt.input_ids.repeat(rows, 1),
            "attention_mask": prompt.attention_mask.repeat(rows, 1),
        }
        self._worker = threading.Thread(
            target=self._produce,
            args=(name, inputs, sampling, processors, criteria, seed),
            name=f"generate-{name}",
            daemon=True,
        )
        self._worker.start()

    def cancel(self) -> None:
        """Stop generating after the current token; safe to call from any thread, any time."""
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        """Whether the answer was cancelled."""
        return self._cancelled.is_set()

    @property
    def finish_reason(self) -> str:
        """Why the first choice ended."""
        return self.finish_reasons[0]

    def __iter__(self) -> Iterator[Piece]:
        return self

    def __next__(self) -> Piece:
        """The next piece of any choice; blocks until the model produces it."""
        if self._pending:
            return self._pending.popleft()
        if not self._done:
            piece = self._streamer.pieces.get()
            if piece is not None:
                # Greedy copies of the one answer get each piece as it comes.
                self._pending.extend(
                    Piece(piece.index + copy, piece.text, piece.tokens)
                    for copy in range(1, self._copies)
                )
                return piece
            self._done = True
            self._finish()
        raise StopIteration

    def _produce(
        self,
        name: str,
        inputs: dict[str, torch.Tensor],
        sampling: dict[str, Any],
        processors: list[LogitsProcessor],
        criteria: list[StoppingCriteria],
        seed: int | None,
    ) -> None:
        # The streamer is ended on every path, or the reading thread would wait forever.
        try:
            if self.prompt.max_new_tokens > 0:
                self._pool.run_generate(
                    name,
                    inputs,
                    max_new_tokens=self.prompt.max_new_tokens,
                    cancelled=self._cancelled,
                    criteria=criteria,
                    processors=processors,
                    seed=seed,
                    streamer=self._streamer,
                    **sampling,
                )
        except BaseException as error:
            self._failure = error
        finally:
            self._streamer.end()

    def _finish(self) -> None:
        self._worker.join()
        if self._failure is not None:
            raise ModelError(f"generation failed: {one_line_reason(self._failure)}")
        for row_index, row in enumerate(self._streamer.rows):
            reason = "stop"
            out_of_tokens = row.count >= self.prompt.max_new_tokens
            if out_of_tokens and not row.ended_on_eos and not row.scanner.stopped:
                reason = "length"
            if reason == "length" and self._shape is not None:
                # The constraint closes a JSON value as its tokens run out: that one is whole.
                whole = advance(start_state(self._shape), "".join(row.given))
                reason = "stop" if whole is not None and is_complete(whole) else reason
            for copy in range(self._copies):
                self.finish_reasons[row_index * self._copies + copy] = reason
            self.completion_tokens += row.count * self._copies


class ModelPool:
    """One base model with named adapters; generation is serialized by a lock."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        reuse_prefixes: bool = True,
    ) -> None:
        self.tokenizer = tokenizer
        self.reuse_prefixes = reuse_prefixes
        """Whether a conversation that goes on from a recent one of its model (a chat's next
        turn, or the same few-shot prefix with a new last message) starts from the keys and
        values already computed for it, instead of reading it all again."""
        self._prefixes: list[_Prefix] = []
        """The conversations kept, oldest first."""
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._base = model.eval()
        self._peft: PeftModel | None = None
        """The LoRA adapters, on the base model's own weights."""
        self._own_models: dict[str, Any] = {}
        """Models on a copy of their own: full fine-tunes, and adapters that cannot share a
        peft model with LoRA ones (IA3, prompt tuning)."""
        self.lock = threading.Lock()
        # A fast tokenizer's padding settings are shared mutable state in Rust; concurrent
        # encodes that change them fail with "Already borrowed".
        self._encode_lock = threading.Lock()
        eos = model.generation_config.eos_token_id
        self.eos_token_ids: frozenset[int] = frozenset(
            eos if isinstance(eos, list) else [] if eos is None else [eos]
        )
        """Token ids that end an answer."""
        self.token_texts = TokenTexts(tokenizer)
        """What each token writes, for log probabilities."""
        self._json_vocabulary: JsonVocabulary | None = None
        self._json_lock = threading.Lock()

    def json_vocabulary(self) -> JsonVocabulary:
        """The vocabulary as JSON text for constrained decoding, built on first use (~2 s)."""
        with self._json_lock:
            if self._json_vocabulary is None:
                logits = self._base.get_output_embeddings()
                width = getattr(logits, "out_features", None) or self.token_texts.size
                self._json_vocabulary = JsonVocabulary(self.token_texts, width)
            return self._json_vocabulary

    def json_refusal(self, shape: Shape) -> str | None:
        """Why this model's vocabulary cannot force answers of ``shape``; None when it can."""
        if not self.eos_token_ids:
            return "the model has no end-of-answer token to end a JSON answer with"
        vocabulary = self.json_vocabulary()
        if vocabulary.missing_characters:
            return f"no single token of the model writes {vocabulary.missing_characters!r}"
        unspelled = vocabulary.unspelled(shape)
        if unspelled is not None:
            return f"the model's tokens cannot spell {unspelled} one character at a time"
        return None

    @property
    def names(self) -> list[str]:
        """Every model name this pool answers to."""
        adapters = list(self._peft.peft_config) if self._peft is not None else []
        return [BASE_MODEL_NAME, *adapters, *self._own_models]

    def attach(self, name: str, folder: Path) -> None:
        """Make the adapter (or full fine-tuned model) in ``folder`` answer as ``name``.

        LoRA adapters share the base model's weights. peft holds one kind of adapter per
        model, so an IA3 or prompt-tuning adapter gets a copy of the base of its own, as a
        full fine-tune has its own weights.
        """
        if name in self.names:
            return
        check_adapter_folder(folder)
        kind = adapter_type(folder)
        try:
            if kind is None:
                # A full fine-tune: its own weights, loaded from safetensors only.
                self._own_models[name] = AutoModelForCausalLM.from_pretrained(
                    folder, dtype=torch.float32, use_safetensors=True
                ).eval()
                return
            with self.lock:
                if kind != "LORA":
                    self._own_models[name] = PeftModel.from_pretrained(
                        self._plain_copy(), str(folder), adapter_name=name, is_trainable=False
                    ).eval()
                elif self._peft is None:
                    self._peft = PeftModel.from_pretrained(
                        self._base, str(folder), adapter_name=name, is_trainable=False
                    ).eval()
                else:
                    self._peft.load_adapter(str(folder), adapter_name=name, is_trainable=False)
        # peft and transformers report a broken adapter with many unrelated exception types.
        except Exception as error:
            raise ModelError(
                f"cannot load {name} from {folder}: {one_line_reason(error)}"
            ) from error

    def _plain_copy(self) -> PreTrainedModel:
        """A copy of the base model without any LoRA layers (hold ``lock``)."""
        # unload() takes the LoRA layers out of the copy without merging them.
        plain: PreTrainedModel = (
            deepcopy(self._base) if self._peft is None else deepcopy(self._peft).unload()
        )
        return plain

    def virtual_tokens(self, name: str) -> int:
        """How many learned tokens model ``name`` reads before every prompt (prompt tuning);
        its logits start with theirs, and a cache of the prompt alone cannot be reused."""
        return learned_tokens(
            self._own_models.get(name, self._base if name == BASE_MODEL_NAME else None)
        )

    def check_name(self, name: str) -> None:
        """Raise UnknownModelError unless this pool answers to ``name``."""
        if name not in self.names:
            raise UnknownModelError(f"no model named {name!r} (models: {', '.join(self.names)})")

    @contextlib.contextmanager
    def selected(self, name: str) -> Iterator[Any]:
        """The model that answers as ``name``; hold ``lock`` around this."""
        self.check_name(name)
        if name in self._own_models:
            yield self._own_models[name]
        elif self._peft is None:
            yield self._base
        elif name == BASE_MODEL_NAME:
            with self._peft.disable_adapter():
                yield self._peft
        else:
            self._peft.set_adapter(name)
            yield self._peft

    def encode(self, conversations: list[list[dict[str, str]]]) -> dict[str, torch.Tensor]:
        """Chat-templated, left-padded inputs ready for ``generate``."""
        texts = [
            self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            for messages in conversations
        ]
        with self._encode_lock:
            self.tokenizer.padding_side = "left"
            encoded: dict[str, torch.Tensor] = self.tokenizer(
                texts, return_tensors="pt", padding=True, add_special_tokens=False
            )
        return encoded

    def prepare(self, messages: list[dict[str, str]], max_new_tokens: int) -> Prompt:
        """Tokenize one conversation and fit the answer's length into the model's context."""
        try:
            inputs = self.encode([messages])
        # The chat template is Jinja code shipped with the model; it raises what it likes.
        except Exception as error:
            raise InputError(
                f"the model's chat template rejected the messages: {one_line_reason(error)}"
            ) from error
        return self._fitted(Prompt(inputs["input_ids"], inputs["attention_mask"], max_new_tokens))

    def prepare_completion(self, prompt: str | list[int], max_new_tokens: int) -> Prompt:
        """A plain prompt (text, or token ids) to be continued, with no chat template, fitted
        like ``prepare``."""
        if isinstance(prompt, str):
            with self._encode_lock:
                encoded = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=True)
            input_ids = encoded["input_ids"]
        else:
            unknown = [token for token in prompt if not 0 <= token < self.token_texts.size]
            if unknown:
                raise InputError(f"token id {unknown[0]} is not in the model's vocabulary")
            input_ids = torch.tensor([prompt], dtype=torch.long)
        if input_ids.shape[1] == 0:
            raise InputError("the prompt is empty")
        return self._fitted(Prompt(input_ids, torch.ones_like(input_ids), max_new_tokens))

    def _fitted(self, prompt: Prompt) -> Prompt:
        """``prompt`` with its answer's length cut to the room left in the model's context."""
        context_length = getattr(self._base.config, "max_position_embeddings", None)
        if not isinstance(context_length, int):
            return prompt
        if prompt.prompt_tokens >= context_length:
            raise PromptTooLongError(
                f"the prompt has {prompt.prompt_tokens} tokens; "
                f"the model's context holds {context_length}"
            )
        room = context_length - prompt.prompt_tokens
        return Prompt(prompt.input_ids, prompt.attention_mask, min(prompt.max_new_tokens, room))

    def prompt_logprobs(self, name: str, prompt: Prompt, top: int) -> list[TokenLogprob]:
        """Each prompt token as the model ``name`` weighs it after the ones before (the ``top``
        likeliest alongside), leaving out special tokens; offsets are into the prompt's text."""
        ids = prompt.input_ids[0].tolist()
        with self.lock, self.selected(name) as model, torch.inference_mode():
            logits = model(
                input_ids=prompt.input_ids.to(model.device),
                attention_mask=prompt.attention_mask.to(model.device),
            ).logits[0, self.virtual_tokens(name) : -1]
            steps = torch.log_softmax(logits.float(), dim=-1)
            read = read_logprobs(steps, ids[1:], top)
        # Nothing comes before the first token, so it has no log probability.
        weighed: list[tuple[int, float | None, list[tuple[int, float]]]] = [(ids[0], None, [])]
        weighed += read
        entries: list[TokenLogprob] = []
        offset = 0
        for token, logprob, best in weighed:
            if token in self.token_texts.special_ids:
                continue
            entries.append(token_logprob(self.token_texts, token, logprob, best, offset))
            offset += len(entries[-1].text)
        return entries

    def start(
        self,
        name: str,
        prompt: Prompt,
        *,
        temperature: float = 0.0,
        top_p: float | None = None,
        stops: tuple[str, ...] = (),
        seed: int | None = None,
        choices: int = 1,
        top_logprobs: int | None = None,
        shape: Shape | None = None,
    ) -> Generation:
        """Start answering ``prompt`` as ``name`` on a worker thread; iterate the result.

        Each of the ``choices`` answers ends before the first of ``stops`` and, given a
        ``shape``, is a JSON value of it; ``seed`` makes sampling repeatable; ``top_logprobs``
        adds each token's log probability and that many likeliest alternatives.
        """
        self.check_name(name)
        return Generation(
            self,
            name,
            prompt,
            _sampling(temperature, top_p),
            choices=choices,
            stops=stops,
            seed=seed,
            top_logprobs=top_logprobs,
            shape=shape,
        )

    def stream(
        self,
        name: str,
        messages: list[dict[str, str]],
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
    ) -> Iterator[str]:
        """Text pieces of one answer as they are generated; closing early stops generation."""
        generation = self.start(
            name, self.prepare(messages, max_new_tokens), temperature=temperature
        )
        try:
            for piece in generation:
                if piece.text:
                    yield piece.text
        finally:
            generation.cancel()

    def generate(
        self,
        name: str,
        conversations: list[list[dict[str, str]]],
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
    ) -> list[str]:
        """Answers to several conversations at once, greedy unless ``temperature`` > 0."""
        inputs = self.encode(conversations)
        output = self.run_generate(
            name, inputs, max_new_tokens=max_new_tokens, **_sampling(temperature, None)
        )
        assert output is not None
        prompt_length = inputs["input_ids"].shape[1]
        return [
            str(self.tokenizer.decode(row[prompt_length:], skip_special_tokens=True)).strip()
            for row in output
        ]

    def run_generate(
        self,
        name: str,
        inputs: dict[str, torch.Tensor],
        *,
        max_new_tokens: int,
        cancelled: threading.Event | None = None,
        criteria: list[StoppingCriteria] | None = None,
        processors: Sequence[LogitsProcessor] = (),
        seed: int | None = None,
        **options: Any,
    ) -> torch.Tensor | None:
        """The one call of ``generate``, as ``name``; None when cancelled before it began.

        ``cancelled`` stops it after the current token once set; ``criteria`` may stop it
        too; ``processors`` see the logits before sampling does; ``seed`` seeds the sampling
        (generation is serialized, so the global RNG is ours; any integer is taken).
        """
        if processors:
            given = options.get("logits_processor") or []
            options["logits_processor"] = LogitsProcessorList([*processors, *given])
        with self.lock:
            stopping = list(criteria or [])
            if cancelled is not None:
                if cancelled.is_set():
                    return None
                stopping.append(_StopWhenSet(cancelled))
            if stopping:
                options["stopping_criteria"] = StoppingCriteriaList(stopping)
            if seed is not None:
                torch.manual_seed(seed % 2**64)
            reusable = self.reuse_prefixes and not self.virtual_tokens(name)
            reusable = reusable and bool(inputs["attention_mask"].all())
            reusable = reusable and inputs["input_ids"].shape[0] == 1
            if reusable:
                self._start_from_prefix(name, inputs["input_ids"][0], options)
            with self.selected(name) as model, torch.inference_mode():
                result = generate_sequences(
                    model,
                    input_ids=inputs["input_ids"].to(model.device),
                    attention_mask=inputs["attention_mask"].to(model.device),
                    max_new_tokens=max_new_tokens,
                    pad_token_id=self.tokenizer.pad_token_id,
                    return_dict_in_generate=True,
                    **options,
                )
            output: torch.Tensor = result.sequences
            if reusable:
                self._keep_prefix(name, output[0], result.past_key_values)
        return output

    def _start_from_prefix(self, name: str, token_ids: torch.Tensor, options: Any) -> None:
        """Hand ``generate`` the kept cache of ``name`` that shares the most leading tokens with
        ``token_ids``, cut to them (hold ``lock``). A chat's next turn then reads only its new
        tokens; two conversations that take turns (a teacher and a labeller) keep theirs.

        The cache is taken, not copied: ``generate`` extends it in place, and what it returns
        is kept in its stead.
        """
        new_ids = token_ids.cpu()
        # The last prompt token is always read again: its logits give the first answer token.
        longest = token_ids.shape[0] - 1
        shares = [
            (min(shared_prefix(kept.token_ids, new_ids), longest), index)
            for index, kept in enumerate(self._prefixes)
            if kept.name == name
        ]
        shared, index = max(shares, default=(0, -1))
        if shared < MIN_REUSED_TOKENS:
            return
        kept = self._prefixes.pop(index)
        surplus = kept.token_ids.shape[0] - shared
        if surplus:
            # A negative count removes that many tokens from the end.
            kept.cache.crop(-surplus)
        options["past_key_values"] = kept.cache

    def _keep_prefix(self, name: str, sequence: torch.Tensor, cache: Any) -> None:
        """Keep the cache ``generate`` built for ``sequence`` as the latest conversation."""
        # Only a cache that can be cut back to a shared prefix is of use (not a sliding one).
        if cache is None or not hasattr(cache, "crop"):
            return
        length = int(cache.get_seq_length())
        self._prefixes.append(_Prefix(name, sequence[:length].cpu(), cache))
        del self._prefixes[:-REUSED_PREFIXES]


def learned_tokens(model: Any) -> int:
    """How many learned tokens ``model`` reads before every prompt: prompt tuning's virtual
    tokens, else 0."""
    if not isinstance(model, PeftModel) or not model.active_peft_config.is_prompt_learning:
        return 0
    return int(model.active_peft_config.num_virtual_tokens)


def generate_sequences(
    model: Any, *, input_ids: torch.Tensor, attention_mask: torch.Tensor, **options: Any
) -> Any:
    """``model.generate``, whose sequences start with ``input_ids`` for a prompt-tuned model too.

    peft's own generate for prompt tuning loses the virtual tokens' positions after the first
    new token under this transformers (its answers drift into repetition); the base model
    generates instead from the embeddings the adapter's forward builds in training: the learned
    tokens, then the prompt's own, the attention mask grown to match.
    """
    if not learned_tokens(model):
        return model.generate(input_ids=input_ids, attention_mask=attention_mask, **options)
    embeds = model.word_embeddings(input_ids)
    learned = model.get_prompt(batch_size=input_ids.shape[0]).to(embeds.dtype)
    seen = attention_mask.new_ones((input_ids.shape[0], learned.shape[1]))
    result = model.get_base_model().generate(
        inputs_embeds=torch.cat([learned, embeds], dim=1),
        attention_mask=torch.cat([seen, attention_mask], dim=1),
        **options,
    )
    # Generating from embeddings returns the new tokens alone.
    if isinstance(result, torch.Tensor):
        return torch.cat([input_ids, result], dim=1)
    result.sequences = torch.cat([input_ids, result.sequences], dim=1)
    return result


def _sampling(temperature: float, top_p: float | None) -> dict[str, Any]:
    if temperature <= 0:
        return {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    sampling: dict[str, Any] = {"do_sample": True, "temperature": temperature}
    if top_p is not None:
        sampling["top_p"] = top_p
    return sampling
