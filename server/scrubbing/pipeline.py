"""Scrubbing at full speed on every core, and the residual check after scrubbing.

:class:`ParallelScrubber` runs the *whole* scrub pipeline (spaCy, every recognizer, the refinement,
replacement and residual check) in worker processes, each holding its own loaded
:class:`~privsynth.server.scrubbing.scrubber.Scrubber`. Threads would not help: the recognizers and
the anonymizer are pure Python under the GIL, and spaCy's own ``n_process`` parallelises only the
spaCy part (measured at ~83 % of plain Presidio's time, less once the parser is excluded). Chunks
of texts (bounded in count and characters) go to the workers and come back in input order; at most
``max_in_flight`` chunks per call are outstanding, so memory stays flat however long the input
stream is. Calls take turns in the pool (:mod:`privsynth.server.scrubbing.pool`: interactive calls
first, uploads round robin), can be cancelled, and a worker whose memory grew past a limit is
replaced.


Workers are started with ``spawn``: forking a process that already runs gRPC threads (the
server) is unsafe, and a spawned worker loads its own pipeline exactly as the server does.

:class:`ResidualChecker` is the second analysis: it re-reads scrubbed text for structured
identifiers (e-mail, phone, SSN, card, IBAN, IP, URL) with the same pattern recognizers but
without the statistical NER (a blank spaCy tokenizer with lower-cased lemmas still gives
Presidio its context words), so it costs a fraction of the first pass. Findings inside spans
the scrubber wrote itself (placeholders, pseudonyms) are not counted.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import CancelledError, Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from privsynth.server.scrubbing.pool import ScrubPoolClosed, WorkerPool
from privsynth.server.scrubbing.scrubber import (
    Scrubber,
    ScrubberConfigError,
    ScrubCancelled,
    ScrubResult,
    analyze_windowed,
)

__all__ = [
    "RESIDUAL_ENTITIES",
    "ParallelScrubber",
    "ResidualChecker",
    "ScrubCancelled",
    "ScrubPoolClosed",
    "ScrubWorkerError",
]

#: Structured identifiers the residual check looks for.
RESIDUAL_ENTITIES = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "US_SSN",
    "CREDIT_CARD",
    "IBAN_CODE",
    "IP_ADDRESS",
    "URL",
)


class ScrubWorkerError(RuntimeError):
    """A worker failed while scrubbing; the message names the exception type only."""


class ResidualChecker:
    """Counts structured identifiers left in scrubbed text, ignoring the scrubber's own spans.

    Args:
        score_threshold: Minimum score for a finding to count (the scrubber's threshold).
        entities: Entity types to look for.
    """

    def __init__(
        self, score_threshold: float = 0.35, entities: Sequence[str] = RESIDUAL_ENTITIES
    ) -> None:
        self.score_threshold = score_threshold
        self.entities = list(entities)
        self._analyzer: Any = None

    def load(self) -> None:
        """Build a pattern-only analyzer on a blank English tokenizer."""
        import spacy
        from presidio_analyzer import RecognizerRegistry
        from presidio_analyzer.nlp_engine import SpacyNlpEngine
        from privsynth.server.scrubbing.recognizers import (
            NER_RECOGNIZER,
            FastContextAnalyzerEngine,
            configure_registry,
        )
        from privsynth.server.scrubbing.scrubber import (
            _offline_email_recognizer,
            lower_lemma_component,
        )

        nlp = spacy.blank("en")
        nlp.add_pipe(lower_lemma_component())
        engine: Any = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": "blank_en"}])
        engine.nlp = {"en": nlp}
        registry = RecognizerRegistry(supported_languages=["en"])
        registry.load_predefined_recognizers(languages=["en"], nlp_engine=engine)
        registry.remove_recognizer("EmailRecognizer")
        registry.add_recognizer(_offline_email_recognizer())
        configure_registry(registry)
        wanted = set(self.entities)
        recognizers: list[Any] = list(registry.recognizers)
        registry.recognizers = [
            r
            for r in recognizers
            if wanted & set(r.supported_entities) and r.name != NER_RECOGNIZER
        ]
        logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
        self._analyzer = FastContextAnalyzerEngine(
            nlp_engine=engine, registry=registry, supported_languages=["en"]
        )

    def find(self, texts: Sequence[str]) -> list[list[Any]]:
        """Structured-identifier findings (Presidio results) per text.

        Long texts go in overlapping windows, as in the first pass
        (:func:`~privsynth.server.scrubbing.scrubber.analyze_windowed`).
        """
        from privsynth.server.scrubbing.recognizers import apply_policy

        if self._analyzer is None:
            self.load()
        found = analyze_windowed(
            self._analyzer,
            list(texts),
            language="en",
            entities=self.entities,
            batch_size=64,
            score_threshold=self.score_threshold,
        )
        # The same policy as the first pass: a project URL the scrubber kept on purpose is
        # no residue.
        return [apply_policy(text, results) for text, results in zip(texts, found, strict=True)]

    def count_batch(
        self, texts: Sequence[str], own_spans: Sequence[Sequence[tuple[int, int]]]
    ) -> list[dict[str, int]]:
        """Residual findings per entity type, per text.

        A finding lying wholly inside a span the scrubber wrote is its own surrogate (a
        pseudonymous e-mail is an e-mail) and is not counted; one that only overlaps such a
        span is, since it reaches into original text. Findings inside a longer finding are
        counted once, through the longer one.
        """
        out = []
        for results, spans in zip(self.find(texts), own_spans, strict=True):
            # A finding inside a longer one is the same identifier seen twice (the domain of
            # an e-mail is also a URL), as the anonymizer's de-duplication would treat it.
            outer = [
                r
                for r in results
                if not any(
                    o is not r
                    and o.start <= r.start
                    and r.end <= o.end
                    and (o.end - o.start, id(o)) > (r.end - r.start, id(r))
                    for o in results
                )
            ]
            counts: Counter[str] = Counter(
                r.entity_type
                for r in outer
                if not any(s <= r.start and r.end <= e for s, e in spans)
            )
            out.append(dict(counts))
        return out


# ----------------------------------------------------------------------------------------------
# Worker processes
# ----------------------------------------------------------------------------------------------

#: Synthetic text touching every recognizer once (no real person, reserved numbers/domains).
_WARM_UP = (
    "Dear Ann Example, call (212) 555-0100 or +44 20 7946 0000, mail ann@example.com, "
    "visit https://example.com from 192.0.2.1 on March 3, 2021 at 1 Main Street, Springfield, "
    "IL 62704; card 4111 1111 1111 1111, IBAN DE89 3704 0044 0532 0130 00, account 12345678."
)

_worker_scrubber: Scrubber | None = None
_worker_error: str = ""


_PARENT_POLL_S = 0.5


def _die_with_parent(parent_pid: int) -> None:
    """Exit this worker as soon as ``parent_pid`` is gone (e.g. the server got ``kill -9``).

    A pool's workers otherwise outlive a killed server (each holding its spaCy pipeline,
    hundreds of MB), and so does multiprocessing's resource tracker, which exits once no
    process holds its pipe. A daemon thread polls the parent pid: ``PR_SET_PDEATHSIG`` would
    be immediate but fires when the *thread* that spawned the worker ends (the server's
    loader thread does, right after start-up), and it is Linux-only.
    """

    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                os._exit(1)
            time.sleep(_PARENT_POLL_S)

    if os.getppid() != parent_pid:
        os._exit(1)
    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def _init_worker(kwargs: dict[str, Any], parent_pid: int | None = None) -> None:
    global _worker_scrubber, _worker_error
    if parent_pid is not None:
        _die_with_parent(parent_pid)
    try:
        scrubber = Scrubber(**kwargs)
        scrubber.load()
        # The first call pays lazy loads (phone metadata per region, spaCy buffers, Faker);
        # pay them at start-up, not on the first chunk of real work. A keyed policy without
        # a default key warms up under a throwaway key (datasets bring their own).
        needs_key = scrubber.policy.needs_key and kwargs.get("key") is None
        scrubber.scrub_batch([_WARM_UP], key=os.urandom(32) if needs_key else None)
        _worker_scrubber = scrubber
    except ScrubberConfigError as exc:
        _worker_error = str(exc)  # configuration messages name files and settings only
    except Exception as exc:
        _worker_error = f"scrubber failed to load in a worker ({type(exc).__name__})"


def _worker() -> Scrubber:
    if _worker_scrubber is None:
        raise ScrubberConfigError(_worker_error or "scrubber worker not initialised")
    return _worker_scrubber


def _scrub_chunk(texts: list[str], key: bytes | None) -> list[ScrubResult]:
    scrubber = _worker()
    try:
        return scrubber.scrub_batch(texts, key=key)
    except ScrubberConfigError:
        raise  # configuration messages name settings only
    except Exception as exc:
        # The original message may quote input text; only the type crosses back.
        raise ScrubWorkerError(f"scrubbing failed in a worker ({type(exc).__name__})") from None


def _analyze_chunk(texts: list[str]) -> list[list[Any]]:
    scrubber = _worker()
    try:
        return scrubber.analyze_batch(texts)
    except Exception as exc:
        raise ScrubWorkerError(f"analysis failed in a worker ({type(exc).__name__})") from None


def _start_worker(kwargs: dict[str, Any], parent_pid: int) -> tuple[bool, str, str]:
    """Pool initializer: load the scrubber; (ok, description, strategy) or (False, error, "")."""
    _init_worker(kwargs, parent_pid)
    if _worker_scrubber is None:
        return False, _worker_error or "scrubber worker not initialised", ""
    return True, _worker_scrubber.description, _worker_scrubber.strategy


def _check_started(value: Any) -> None:
    if isinstance(value, BaseException):
        raise ScrubberConfigError(str(value))
    ok, message, _ = value
    if not ok:
        raise ScrubberConfigError(message)


#: Characters per task: a task is the unit a small request may have to wait for (about a
#: second of one worker's time), and what a cancelled request may still finish.
DEFAULT_CHUNK_CHARS = 64 * 1024
#: A worker holding more than this after a task is replaced by a fresh one.
DEFAULT_MAX_WORKER_RSS = 1536 * 1024 * 1024


class ParallelScrubber:
    """A :class:`Scrubber` spread over worker processes, with the same ``scrub_batch``.

    Each call gets its own lane in the :class:`~privsynth.server.scrubbing.pool.WorkerPool`:
    calls take turns task by task, interactive ones (``interactive=True``: ScrubText,
    AnalyzeText) first, so a short request never waits behind an upload's backlog.

    Args:
        workers: Worker processes, each with a fully loaded Scrubber (~250 MB each with the
            small spaCy model). One per core is right; more only adds memory.
        chunk_size: Most texts per task; also each worker's spaCy batch.
        chunk_chars: Most characters per task (a longer text is a task of its own).
        max_in_flight: Tasks one call may have queued or running (default ``2 * workers``):
            enough to keep every worker busy, and the bound on the memory one call holds.
        max_worker_rss: Bytes of resident memory after which a worker is replaced (0: never).
        reserved: Workers kept free for interactive calls (default: 1 when there are two or
            more workers, else 0). Uploads then use the others only; a one-worker pool lets a
            short call wait for the running task (one long record at most).
        **scrubber_kwargs: Passed to :class:`Scrubber` in each worker (``nlp_config``,
            ``policy``, ``key``, ``residual_check``, ``score_threshold``, ...). They are
            pickled to the workers over a pipe, the key included, and never written to disk.
            The server passes no ``key`` here but each dataset's key with its chunks
            (:meth:`scrub_iter`), so one pool serves every dataset.

    Use as a context manager, or call :meth:`load` and :meth:`close`.
    """

    def __init__(
        self,
        workers: int = 2,
        *,
        chunk_size: int = 64,
        chunk_chars: int = DEFAULT_CHUNK_CHARS,
        max_in_flight: int | None = None,
        max_worker_rss: int = DEFAULT_MAX_WORKER_RSS,
        reserved: int | None = None,
        **scrubber_kwargs: Any,
    ) -> None:
        if workers < 1 or chunk_size < 1 or chunk_chars < 1:
            raise ValueError("workers, chunk_size and chunk_chars must be >= 1")
        self.workers = workers
        self.chunk_size = chunk_size
        self.chunk_chars = chunk_chars
        self.max_in_flight = max_in_flight or 2 * workers
        self.max_worker_rss = max_worker_rss
        self.reserved = (1 if workers >= 2 else 0) if reserved is None else reserved
        scrubber_kwargs.setdefault("batch_size", chunk_size)
        # Validates the policy and key here, in the caller, before any process starts.
        probe = Scrubber(**scrubber_kwargs)
        self._probe = probe
        self.policy = probe.policy
        self.residual_check = probe.residual_check
        self._kwargs = scrubber_kwargs
        self._pool: WorkerPool | None = None
        self._load_lock = threading.Lock()
        self._description = ""
        self._strategy = probe.strategy

    def load(self) -> None:
        """Start the workers and wait until each has loaded its pipeline.

        Raises:
            ScrubberConfigError: A worker could not load (missing pipeline, bad policy).
        """
        with self._load_lock:
            if self._pool is not None:
                return
            pool = WorkerPool(
                self.workers,
                _start_worker,
                (self._kwargs, os.getpid()),
                max_rss_bytes=self.max_worker_rss,
                reserved=self.reserved,
            )
            values = pool.start(check=_check_started)
            _, self._description, self._strategy = values[0]
            self._pool = pool

    def close(self) -> None:
        """Stop the workers now: queued and running calls fail with ``ScrubPoolClosed``."""
        with self._load_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def __enter__(self) -> ParallelScrubber:
        self.load()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def description(self) -> str:
        """Analyzer and pipeline (from a worker), for scrub reports."""
        return self._description

    @property
    def strategy(self) -> str:
        """Replacement strategies in use, value-free."""
        return self._strategy

    @property
    def pool(self) -> WorkerPool | None:
        """The worker pool (None before :meth:`load` and after :meth:`close`)."""
        return self._pool

    def worker_pids(self) -> list[int]:
        """Process ids of the running workers."""
        return self._pool.pids() if self._pool is not None else []

    def _chunks(self, texts: Iterable[str]) -> Iterator[list[str]]:
        chunk: list[str] = []
        chars = 0
        for text in texts:
            if chunk and (len(chunk) >= self.chunk_size or chars + len(text) > self.chunk_chars):
                yield chunk
                chunk, chars = [], 0
            chunk.append(text)
            chars += len(text)
        if chunk:
            yield chunk

    def _run(
        self,
        fn: Callable[..., list[Any]],
        texts: Iterable[str],
        args: tuple[Any, ...],
        cancel: threading.Event | None,
        interactive: bool,
    ) -> Iterator[Any]:
        if self._pool is None:
            self.load()
        pool = self._pool
        if pool is None:
            raise ScrubPoolClosed("the scrub workers are shut down")
        lane = pool.lane(interactive=interactive)
        pending: deque[Future[list[Any]]] = deque()

        def next_result() -> list[Any]:
            head = pending.popleft()
            while True:
                if cancel is not None and cancel.is_set():
                    head.cancel()
                    raise ScrubCancelled("scrubbing was cancelled")
                try:
                    return head.result(timeout=_CANCEL_POLL_S)
                except FutureTimeout:
                    continue
                except CancelledError:
                    raise ScrubCancelled("scrubbing was cancelled") from None

        try:
            for chunk in self._chunks(texts):
                if cancel is not None and cancel.is_set():
                    raise ScrubCancelled("scrubbing was cancelled")
                pending.append(lane.submit(fn, chunk, *args))
                while len(pending) >= self.max_in_flight:
                    yield from next_result()
            while pending:
                yield from next_result()
        finally:
            lane.cancel()  # drops queued tasks; a running one finishes and is discarded

    def scrub_iter(
        self,
        texts: Iterable[str],
        *,
        key: bytes | None = None,
        cancel: threading.Event | None = None,
        interactive: bool = False,
    ) -> Iterator[ScrubResult]:
        """Scrub a stream of texts, yielding results in input order.

        At most ``max_in_flight`` tasks of at most ``chunk_size`` texts and ``chunk_chars``
        characters are held at once, so the input may be far larger than memory. Closing
        the iterator early, or setting ``cancel``, drops the tasks not yet started (within
        :data:`_CANCEL_POLL_S`). ``key`` (the dataset's secret for keyed strategies;
        default: the constructor's) travels with every chunk and stays in the workers'
        memory.

        Raises:
            StrategyConfigError: The policy is keyed and there is no key (checked here,
                before any text is sent).
            ScrubCancelled: ``cancel`` was set.
            ScrubPoolClosed: The workers shut down (server stopping).
            ScrubWorkerError: A worker failed (the message names the exception type only).
        """
        self._probe.replacer(key)  # a missing or short key fails here, not in a worker
        return self._run(_scrub_chunk, texts, (key,), cancel, interactive)

    def scrub_batch(
        self,
        texts: Sequence[str],
        *,
        key: bytes | None = None,
        cancel: threading.Event | None = None,
        interactive: bool = False,
    ) -> list[ScrubResult]:
        """Scrub several texts across the workers (same contract as ``Scrubber.scrub_batch``)."""
        return list(self.scrub_iter(texts, key=key, cancel=cancel, interactive=interactive))

    def analyze_batch(
        self,
        texts: Sequence[str],
        *,
        cancel: threading.Event | None = None,
        interactive: bool = False,
    ) -> list[list[Any]]:
        """Detected spans per text, computed in the workers (as ``Scrubber.analyze_batch``)."""
        return list(self._run(_analyze_chunk, texts, (), cancel, interactive))


#: How often a caller waiting for a worker checks its cancel event.
_CANCEL_POLL_S = 0.1
