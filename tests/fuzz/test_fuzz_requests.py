"""Fuzz every request message of every privsynth service against a live server (issue 12).

Hypothesis strategies are derived from the message descriptors in ``proto/privsynth/v1``
(strings with any Unicode, huge ones, resource names real and invented; integers at and
inside their type's bounds; NaN, ±inf, subnormal and huge floats; unknown enum values; empty,
short and huge repeated and map fields; nested messages). Each request goes out as bytes
through a generic channel call, so the same path also sends what no stub would: arbitrary
bytes, truncated or bit-flipped messages, unknown and ill-typed fields, and invalid UTF-8 in
string fields. Any status is acceptable except INTERNAL and UNKNOWN (a server fault), and the
server must answer health within 100 ms afterwards with no INTERNAL/UNKNOWN in its metrics.

The server is loaded (Presidio in-process, so scrubbing paths run) but trains nothing
(``training_workers=0``): a job the fuzzer manages to create stays QUEUED.

``PRIVSYNTH_FUZZ_REQUESTS`` sets the total (default 10,000, the issue's bar); run only this
with ``pytest -m fuzz``, or skip it with ``-m "not fuzz"``. A failure prints one example
request per (method, status) it saw. The fuzz runs last in this module: it deletes what it
finds, and the regression tests need the seeded resources.
"""

from __future__ import annotations

import os
import struct
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, ServiceDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from privsynth.client.pb import (
    datasets_pb2,
    evaluation_pb2,
    generation_pb2,
    generation_pb2_grpc,
    models_pb2,
    privacy_pb2,
    scrubbing_pb2,
    training_pb2,
)

pytestmark = [pytest.mark.fuzz, pytest.mark.timeout(900)]

TOTAL = int(os.environ.get("PRIVSYNTH_FUZZ_REQUESTS", "10000"))
MAX_DEPTH = 3
CALL_TIMEOUT_S = 8.0
STREAM_TIMEOUT_S = 2.0
"""Server-streaming calls (Watch may wait for hours) are cut off after this or a few records."""
STREAM_READ = 5
BAD = frozenset({grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN})


SERVICES: list[ServiceDescriptor] = [
    module.DESCRIPTOR.services_by_name[name]
    for module, name in (
        (datasets_pb2, "Datasets"),
        (training_pb2, "Training"),
        (models_pb2, "Models"),
        (generation_pb2, "Generation"),
        (privacy_pb2, "Privacy"),
        (scrubbing_pb2, "Scrubbing"),
        (evaluation_pb2, "Evaluations"),
    )
]

# Resource names the fuzzer mixes in; the fixture adds real ones (a dataset, a job, a model).
NAMES: list[str] = [
    "",
    "datasets/",
    "datasets/00000000000000aa",
    "models/00000000000000aa",
    "jobs/00000000000000aa",
    "evaluations/00000000000000aa",
    "datasets/../../etc/passwd",
    "datasets/%00",
    "datasets/" + "9" * 40,
    "models/\u0000",
    "jobs/\u200b",
    "/",
    "datasets/a/b",
    "tiny",
    "small",
    "smollm2",
    "hf:x",
    "hf:../x:full",
    "record",
    "user",
]

REAL_NAMES: list[str] = ["datasets/00000000000000aa"]
"""Names of resources that exist on the fuzzed server (the fixture fills them in)."""

# -- strategies from descriptors ----------------------------------------------------------------

_I32 = (-(2**31), 2**31 - 1)
_I64 = (-(2**63), 2**63 - 1)
_U32 = (0, 2**32 - 1)
_U64 = (0, 2**64 - 1)
_INT_BOUNDS = {
    FieldDescriptor.TYPE_INT32: _I32,
    FieldDescriptor.TYPE_SINT32: _I32,
    FieldDescriptor.TYPE_SFIXED32: _I32,
    FieldDescriptor.TYPE_INT64: _I64,
    FieldDescriptor.TYPE_SINT64: _I64,
    FieldDescriptor.TYPE_SFIXED64: _I64,
    FieldDescriptor.TYPE_UINT32: _U32,
    FieldDescriptor.TYPE_FIXED32: _U32,
    FieldDescriptor.TYPE_UINT64: _U64,
    FieldDescriptor.TYPE_FIXED64: _U64,
}
_SPECIAL_FLOATS = [
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.5,
    5e-324,
    1e-300,
    1e-45,
    1e300,
    1.7976931348623157e308,
    -1e300,
    float("nan"),
    float("inf"),
    float("-inf"),
    2.0**53,
    8.0,
]


def _ints(lo: int, hi: int) -> st.SearchStrategy[int]:
    edges = [v for v in (lo, lo + 1, hi - 1, hi, -1, 0, 1, 2, 1000, 2**31, 2**53) if lo <= v <= hi]
    return st.one_of(
        st.sampled_from(edges),
        st.integers(max(lo, -10), min(hi, 100)),
        st.integers(max(lo, 1), min(hi, 20)),  # plausible counts, epochs, sizes: reach deeper
        st.integers(lo, hi),
    )


def _strings() -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(max_size=30),
        st.sampled_from(NAMES),
        st.builds(
            lambda c, s: f"{c}/{s}",
            st.sampled_from(["datasets", "models", "jobs"]),
            st.text(max_size=20),
        ),
        # huge: past every server limit (64 KiB texts), cheap to build and to refuse
        st.builds(
            lambda s, n: (s * n)[:n], st.text(min_size=1, max_size=3), st.integers(66_000, 120_000)
        ),
        # large but within limits: real work for the scrubber
        st.builds(
            lambda s, n: (s * n)[:n], st.text(min_size=1, max_size=8), st.integers(500, 4_000)
        ),
        st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=200),
    )


_NAME_FIELDS = frozenset({"name", "dataset", "model", "parent", "job"})
_PRESETS = ["", "tiny", "small", "smollm2", "smollm2-full", "hf:x", "hf:x:full", "huge"]
_PII_TEXT = [
    "Call John Smith at 212-555-0123 or john.smith@example.com.",
    "Card 4111 1111 1111 1111, IBAN DE89370400440532013000, 10 Downing Street, London",
    "J\u200bohn lives at 221B Baker Street; SSN 078-05-1120",
    "ｊｏｈｎ＠ｅｘａｍｐｌｅ．ｃｏｍ",
]


def _strings_for(field: FieldDescriptor) -> st.SearchStrategy[str]:
    """Strings, weighted towards values that pass validation for well-known field names."""
    name = field.name
    if name in _NAME_FIELDS:
        real = st.sampled_from(REAL_NAMES)
        return st.one_of(real, real, real, st.sampled_from(NAMES), _strings())
    if name == "preset":
        return st.one_of(st.sampled_from(_PRESETS), _strings())
    if name in {"text", "display_name"}:
        return st.one_of(st.sampled_from(_PII_TEXT), st.text(min_size=1, max_size=80), _strings())
    if name == "page_token":
        return st.one_of(st.just(""), _strings())
    if name == "label_prompt":  # valid templates too, so requests get past validation
        return st.one_of(
            st.sampled_from(["Write a short {label} review.", "Ticket of category {label}."]),
            st.text(min_size=0, max_size=40).map(lambda t: t + "{label}"),
            _strings(),
        )
    if name in {"label", "user_id", "request_id"}:
        return st.one_of(
            st.text("abcxyz0123-_.:", min_size=1, max_size=12),
            st.text(min_size=60, max_size=100),  # long: a label's prompt can outgrow a model
            _strings(),
        )
    return _strings()


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    t = field.type
    if t == FieldDescriptor.TYPE_STRING:
        return _strings_for(field)
    if t == FieldDescriptor.TYPE_BYTES:  # Record.text: UTF-8 checked by the server
        return st.one_of(
            st.sampled_from([t.encode() for t in _PII_TEXT]),
            st.text(max_size=80).map(str.encode),
            st.sampled_from(INVALID_UTF8),
            st.binary(max_size=64),
        )
    if t == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        width = 32 if t == FieldDescriptor.TYPE_FLOAT else 64
        specials = [v for v in _SPECIAL_FLOATS if width == 64 or not (abs(v) > 3.4e38 and v == v)]
        plausible = st.floats(0.01, 10, width=width)  # epsilons, temperatures, weights
        return st.one_of(st.sampled_from(specials), st.floats(width=width), plausible, plausible)
    if t == FieldDescriptor.TYPE_ENUM:
        known = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(known), _ints(*_I32))
    lo, hi = _INT_BOUNDS[t]
    return _ints(lo, hi)


def _is_map(field: FieldDescriptor) -> bool:
    return field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.GetOptions().map_entry


def _repeated(field: FieldDescriptor) -> bool:
    is_repeated = getattr(field, "is_repeated", None)  # protobuf >= 6 (no .label on upb)
    if is_repeated is not None:
        return bool(is_repeated)
    return bool(field.label == FieldDescriptor.LABEL_REPEATED)


def _lists(element: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    huge = st.builds(lambda x, n: [x] * n, element, st.integers(200, 3000))
    return st.one_of(st.just([]), st.lists(element, max_size=4), huge)


def _field(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if _is_map(field):
        entry = field.message_type
        key = _scalar(entry.fields_by_name["key"])
        value = _value(entry.fields_by_name["value"], depth)
        return st.dictionaries(key, value, max_size=4)
    value = _value(field, depth)
    if _repeated(field):
        return _lists(value)
    return value


def _value(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return messages(field.message_type, depth + 1)
    return _scalar(field)


def _assign(msg: Any, field: FieldDescriptor, value: Any) -> None:
    target = getattr(msg, field.name)
    try:
        if _is_map(field):
            message_values = field.message_type.fields_by_name["value"].message_type is not None
            for k, v in value.items():
                if message_values:
                    target[k].CopyFrom(v)
                else:
                    target[k] = v
        elif _repeated(field):
            target.extend(value)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            target.CopyFrom(value)
        else:
            setattr(msg, field.name, value)
    except (ValueError, TypeError):  # e.g. an unknown value of a closed enum: leave it unset
        pass


_MESSAGES: dict[tuple[str, int], st.SearchStrategy[Any]] = {}


def messages(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Any]:
    """Messages of ``descriptor`` with any subset of fields set to adversarial values."""
    key = (descriptor.full_name, depth)
    if key in _MESSAGES:
        return _MESSAGES[key]
    cls = message_factory.GetMessageClass(descriptor)
    if depth >= MAX_DEPTH:
        strategy: st.SearchStrategy[Any] = st.just(cls())
    else:
        optional = {f.name: _field(f, depth) for f in descriptor.fields}
        fields = descriptor.fields_by_name

        def build(values: dict[str, Any]) -> Any:
            msg = cls()
            for name, value in values.items():
                _assign(msg, fields[name], value)
            return msg

        strategy = st.fixed_dictionaries({}, optional=optional).map(build)
    _MESSAGES[key] = strategy
    return strategy


# -- wire-level abuse ---------------------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _tag(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


INVALID_UTF8 = [
    b"\xff",
    b"\xfe\xff",
    b"\xc0\x80",  # overlong NUL
    b"\xed\xa0\x80",  # a lone surrogate
    b"\xf4\x90\x80\x80",  # past U+10FFFF
    b"abc\x80def",
    b"\xe2\x82",  # truncated
]


def _string_fields(descriptor: Descriptor) -> list[FieldDescriptor]:
    return [f for f in descriptor.fields if f.type == FieldDescriptor.TYPE_STRING]


@st.composite
def payloads(draw: st.DrawFn, descriptor: Descriptor) -> tuple[str, bytes]:
    """One request's bytes and the kind of abuse that made them."""
    kind = draw(
        st.sampled_from(
            ["message"] * 8 + ["mutated", "raw", "bad_utf8", "bad_utf8", "unknown_field"]
        )
    )
    base = draw(messages(descriptor)).SerializeToString()
    if kind == "message":
        return kind, base
    if kind == "raw":
        return kind, draw(st.binary(max_size=200))
    if kind == "mutated":
        data = bytearray(base or b"\x0a\x01a")
        op = draw(st.sampled_from(["truncate", "flip", "insert"]))
        i = draw(st.integers(0, len(data) - 1))
        if op == "truncate":
            return kind, bytes(data[:i])
        if op == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
            return kind, bytes(data)
        return kind, bytes(data[:i]) + draw(st.binary(min_size=1, max_size=8)) + bytes(data[i:])
    if kind == "bad_utf8":
        strings = _string_fields(descriptor)
        number = draw(st.sampled_from(strings)).number if strings else draw(st.integers(1, 20))
        bad = draw(st.sampled_from(INVALID_UTF8))
        return kind, base + _tag(number, 2) + _varint(len(bad)) + bad
    # A field number the message does not have, or a known one with the wrong wire type, or a
    # wire type that does not exist (6, 7), or a length past the end.
    known = [f.number for f in descriptor.fields] or [1]
    number = draw(st.one_of(st.sampled_from(known), st.integers(1, 2**29 - 1)))
    wire = draw(st.sampled_from([0, 1, 2, 5, 6, 7]))
    body = {
        0: _varint(draw(st.integers(0, 2**64 - 1))),
        1: struct.pack("<d", draw(st.floats())),
        2: _varint(draw(st.sampled_from([0, 3, 2**31, 2**62]))) + b"abc",
        5: struct.pack("<f", draw(st.floats(width=32))),
        6: b"",
        7: b"\x00",
    }[wire]
    return kind, base + _tag(number, wire) + body


TEMPLATES: dict[str, list[Any]] = {}
"""Valid requests per request type (a stream's messages in order), filled in by the fixture:
the ``seeded`` payloads change one or two fields of one of them, so fuzzed values also reach
the code behind validation (sampling, scrubbing, reservations)."""


@st.composite
def seeded(draw: st.DrawFn, descriptor: Descriptor) -> list[tuple[str, bytes]]:
    """A valid request (or stream) with one or two fields of one message replaced."""
    template = TEMPLATES[descriptor.full_name]
    victim = draw(st.integers(0, len(template) - 1))
    out = []
    for i, msg in enumerate(template):
        if i == victim:
            fuzz = draw(messages(descriptor))
            names = [f.name for f in descriptor.fields]
            keep = draw(st.sets(st.sampled_from(names), min_size=1, max_size=2))
            for name in names:
                if name not in keep:
                    fuzz.ClearField(name)
            merged = type(msg)()
            merged.CopyFrom(msg)
            for name in keep:  # replace, not append (MergeFrom would extend repeated fields)
                if descriptor.fields_by_name[name].containing_oneof is None:
                    merged.ClearField(name)
            merged.MergeFrom(fuzz)
            out.append(("seeded", merged.SerializeToString()))
        else:
            out.append(("seeded", msg.SerializeToString()))
    return out


# -- the live server ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from privsynth.client.client import PrivsynthClient, RecordIn
    from privsynth.server.app import PrivsynthServer
    from privsynth.server.config import Settings

    settings_ = Settings(
        data_dir=Path(tmp_path_factory.mktemp("fuzz")),
        host="127.0.0.1",
        grpc_port=0,
        metrics_port=-1,
        scrub_workers=0,
        training_workers=0,  # a job the fuzzer creates stays QUEUED: nothing trains
        torch_threads=1,
    )
    srv = PrivsynthServer(settings_)
    srv.start()
    assert srv.wait_ready(timeout=300), f"server failed to load: {srv.load_error}"
    # Real names, so fuzzed requests also reach past the NOT_FOUND checks.
    with PrivsynthClient(f"127.0.0.1:{srv.port}", timeout=60) as c:
        records = [
            RecordIn(text=f"fortune number {i} favours the bold", label="a") for i in range(40)
        ]
        ds = c.upload_dataset(records, display_name="fuzz", epsilon_cap=1000)
        job = c.create_training_job(ds.name, target_epsilon=1.0, epochs=1, preset="tiny")
    _make_ready(srv, job.model.removeprefix("models/"))
    REAL_NAMES[:] = [ds.name, job.name, job.model]
    _fill_templates(ds.name, job.name, job.model)
    NAMES.extend([ds.name + "x", job.name.upper(), job.model + "/"])
    _MESSAGES.clear()  # strategies built before this hold the names without the real ones
    yield srv
    srv.stop(grace=1)


def _fill_templates(dataset: str, job: str, model: str) -> None:
    text = _PII_TEXT[0]
    upload = [
        datasets_pb2.UploadDatasetRequest(
            metadata=datasets_pb2.DatasetMetadata(display_name="fuzz", epsilon_cap=5)
        ),
        datasets_pb2.UploadDatasetRequest(
            records=datasets_pb2.RecordBatch(
                records=[
                    datasets_pb2.Record(text=text.encode(), label="a", user_id="u1"),
                    datasets_pb2.Record(text=b"a quiet fortune", label="b", user_id="u2"),
                    datasets_pb2.Record(text=b"another one", label="a", user_id="u1"),
                ]
            )
        ),
    ]
    for messages_ in (
        upload,
        [
            training_pb2.CreateTrainingJobRequest(
                dataset=dataset, target_epsilon=0.5, epochs=1, preset="tiny"
            )
        ],
        [generation_pb2.GenerateRequest(model=model, count=3, max_tokens=8, label="a")],
        [scrubbing_pb2.AnalyzeTextRequest(text=text)],
        [scrubbing_pb2.ScrubTextRequest(text=text)],
        [datasets_pb2.ListDatasetsRequest(page_size=2)],
        [models_pb2.ListModelsRequest(dataset=dataset, page_size=2)],
        [training_pb2.ListTrainingJobsRequest(dataset=dataset, page_size=2)],
        [privacy_pb2.ListLedgerEntriesRequest(dataset=dataset, page_size=2)],
        [privacy_pb2.GetBudgetRequest(dataset=dataset)],
        [training_pb2.WatchTrainingJobRequest(name=job)],
    ):
        TEMPLATES[messages_[0].DESCRIPTOR.full_name] = messages_


def _make_ready(srv: Any, model_id: str) -> None:
    """Give the job's model untrained "tiny" weights, so Generate runs its sampler.

    Sampling reads only the model, so where the weights came from does not matter here; this
    keeps the fuzz free of training.
    """
    import io

    import torch
    from privsynth.models.tokenizer import load_tokenizer
    from privsynth.models.transformer import TinyTransformerLM, get_preset
    from privsynth.server.db import ModelRow

    cfg = get_preset("tiny", vocab_size=load_tokenizer().vocab_size)
    buf = io.BytesIO()
    torch.save(TinyTransformerLM(cfg).state_dict(), buf)
    path, digest = srv.runtime.store.put("models", buf.getvalue(), suffix=".pt")
    with srv.runtime.db.session() as s:
        row = s.get(ModelRow, model_id)
        row.state, row.model_config = "READY", cfg.to_dict()
        row.weights_path, row.weights_sha256 = path, digest
        row.card = {
            "epsilon": 1.0,
            "delta": 1e-5,
            "privacy_unit": "record",
            "label_distribution": {"distribution": {"a": 0.5, "b": 0.5}},
        }


def _call(
    channel: grpc.Channel,
    path: str,
    client_streaming: bool,
    server_streaming: bool,
    requests: list[bytes],
) -> grpc.StatusCode:
    """Send ``requests`` as raw bytes; the call's final status (OK if cut off while fine)."""
    try:
        if not client_streaming and not server_streaming:
            channel.unary_unary(path)(requests[0], timeout=CALL_TIMEOUT_S)
        elif client_streaming and not server_streaming:
            channel.stream_unary(path)(iter(requests), timeout=CALL_TIMEOUT_S)
        else:
            if client_streaming:
                call = channel.stream_stream(path)(iter(requests), timeout=STREAM_TIMEOUT_S)
            else:
                call = channel.unary_stream(path)(requests[0], timeout=STREAM_TIMEOUT_S)
            for i, _ in enumerate(call):
                if i + 1 >= STREAM_READ:
                    call.cancel()
                    return grpc.StatusCode.OK
    except grpc.RpcError as err:
        code: grpc.StatusCode = err.code()  # type: ignore[attr-defined]
        return code
    return grpc.StatusCode.OK


def _handled_codes(srv: Any) -> Counter[str]:
    counts: Counter[str] = Counter()
    for metric in srv.runtime.metrics.grpc_handled.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                counts[sample.labels["grpc_code"]] += int(sample.value)
    return counts


def _fuzz_method(
    channel: grpc.Channel,
    target: tuple[str, Descriptor, bool, bool, str],
    n: int,
    counts: Counter[tuple[str, str, str]],
    by_kind: Counter[str],
    examples: dict[tuple[str, str], str],
) -> None:
    """Send ``n`` generated requests to one method, counting the statuses."""
    path, descriptor, client_streaming, server_streaming, service = target
    name = path.rsplit("/", 1)[1]
    one = payloads(descriptor)
    requests_st: st.SearchStrategy[list[tuple[str, bytes]]] = (
        st.lists(one, min_size=0, max_size=4)
        if client_streaming
        else st.lists(one, min_size=1, max_size=1)
    )
    if descriptor.full_name in TEMPLATES:
        requests_st = st.one_of(requests_st, seeded(descriptor))

    @settings(
        max_examples=n,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=(Phase.generate,),
    )
    @given(requests=requests_st)
    def send(requests: list[tuple[str, bytes]]) -> None:
        code = _call(channel, path, client_streaming, server_streaming, [b for _, b in requests])
        counts[(service, name, code.name)] += 1
        for k, _ in requests:
            by_kind[k] += 1
        if code in BAD or code is grpc.StatusCode.UNAVAILABLE:
            examples.setdefault((name, code.name), repr([(k, b[:300]) for k, b in requests]))

    send()


def _refused_job(
    port: int, request: training_pb2.CreateTrainingJobRequest, *, timeout: float
) -> grpc.RpcError:
    """The error CreateTrainingJob ends with for ``request`` sent as raw bytes (it must fail)."""
    with (
        grpc.insecure_channel(f"127.0.0.1:{port}") as ch,
        pytest.raises(grpc.RpcError) as exc,
    ):
        ch.unary_unary("/privsynth.v1.Training/CreateTrainingJob")(
            request.SerializeToString(), timeout=timeout
        )
    return exc.value


def test_tiny_job_delta_is_invalid_argument_not_internal(fuzz_server: Any) -> None:
    """Found by the fuzz: CreateTrainingJob with delta 2.2e-308 (or 1e-15) was INTERNAL."""
    request = training_pb2.CreateTrainingJobRequest(
        dataset=REAL_NAMES[0], target_epsilon=0.5, epochs=1, preset="tiny", delta=1e-15
    )
    refusal = _refused_job(fuzz_server.port, request, timeout=60)
    assert refusal.code() is grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]


@pytest.mark.parametrize("fraction", [1e-300, 5e-324])
def test_tiny_holdout_fraction_is_refused_at_once(fuzz_server: Any, fraction: float) -> None:
    """Found from a slow CI: a holdout fraction of 1e-300 made the size check count up to ten
    over the fraction, so the call's server thread spun for good (and starved the process)."""
    request = training_pb2.CreateTrainingJobRequest(
        dataset=REAL_NAMES[0], target_epsilon=1.0, epochs=1, preset="tiny"
    )
    request.holdout_fraction = fraction
    started = time.monotonic()
    refusal = _refused_job(fuzz_server.port, request, timeout=30)
    assert refusal.code() is grpc.StatusCode.FAILED_PRECONDITION, refusal  # type: ignore[attr-defined]
    assert "at least" in refusal.details()  # type: ignore[attr-defined]
    assert time.monotonic() - started < 10


def test_tiny_audit_epsilon_is_invalid_argument_not_internal(fuzz_server: Any) -> None:
    """Found by the fuzz: AuditPrivacy with target_epsilon 5e-324 was INTERNAL."""
    request = privacy_pb2.AuditPrivacyRequest(target_epsilon=5e-324)
    with (
        grpc.insecure_channel(f"127.0.0.1:{fuzz_server.port}") as ch,
        pytest.raises(grpc.RpcError) as exc,
    ):
        for _ in ch.unary_stream("/privsynth.v1.Privacy/AuditPrivacy")(
            request.SerializeToString(), timeout=60
        ):
            pass
    code = exc.value.code()  # type: ignore[attr-defined]
    assert code is grpc.StatusCode.INVALID_ARGUMENT


def test_label_longer_than_the_models_context_is_invalid_argument(fuzz_server: Any) -> None:
    """A 100-character label whose prompt outgrows the tiny model's 64 tokens was INTERNAL."""
    from privsynth.client.errors import from_rpc_error

    request = generation_pb2.GenerateRequest(
        model=REAL_NAMES[2], count=2, max_tokens=8, label="\U0001f600" * 100
    )
    with (
        grpc.insecure_channel(f"127.0.0.1:{fuzz_server.port}") as ch,
        pytest.raises(grpc.RpcError) as exc,
    ):
        list(generation_pb2_grpc.GenerationStub(ch).Generate(request, timeout=60))
    error = from_rpc_error(exc.value)
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "label" in error.field_violations
    assert "\U0001f600" not in error.message  # the label is not echoed


REQUEST_TYPES = sorted(
    {m.input_type.full_name: m.input_type for svc in SERVICES for m in svc.methods}.items()
)


@settings(
    max_examples=3 * len(REQUEST_TYPES),
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(data=st.data())
def test_strategies_build_every_request_type(data: st.DataObject) -> None:
    """Every request type yields messages and payloads (no field type the strategies miss)."""
    _, descriptor = data.draw(st.sampled_from(REQUEST_TYPES))
    msg = data.draw(messages(descriptor))
    assert isinstance(msg, message_factory.GetMessageClass(descriptor))
    kind, payload = data.draw(payloads(descriptor))
    assert isinstance(payload, bytes) and kind


def test_fuzz_every_request_message(fuzz_server: Any) -> None:
    methods = [(svc, m) for svc in SERVICES for m in svc.methods]
    health = [
        ("/grpc.health.v1.Health/Check", health_pb2.HealthCheckRequest.DESCRIPTOR),
        ("/grpc.health.v1.Health/List", health_pb2.HealthListRequest.DESCRIPTOR),
    ]
    per_method = -(-TOTAL // (len(methods) + len(health)))
    counts: Counter[tuple[str, str, str]] = Counter()
    by_kind: Counter[str] = Counter()
    examples: dict[tuple[str, str], str] = {}
    started = time.monotonic()
    handled_before = _handled_codes(fuzz_server)  # the regression tests above ran first

    targets: list[tuple[str, Descriptor, bool, bool, str]] = [
        (
            f"/{svc.full_name}/{m.name}",
            m.input_type,
            m.client_streaming,
            m.server_streaming,
            svc.name,
        )
        for svc, m in methods
    ] + [(path, desc, False, False, "Health") for path, desc in health]

    with grpc.insecure_channel(f"127.0.0.1:{fuzz_server.port}") as channel:
        # Deletes and cancels last, so the other methods see the seeded resources.
        targets.sort(key=lambda t: t[0].rsplit("/", 1)[1].startswith(("Delete", "Cancel")))
        for target in targets:
            _fuzz_method(channel, target, per_method, counts, by_kind, examples)

    elapsed = time.monotonic() - started
    total = sum(counts.values())
    per_service: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    for (service, _, code), n in counts.items():
        per_service[service] += n
        codes[code] += n
    summary = (
        f"{total} requests in {elapsed:.0f} s; by service {dict(per_service)}; "
        f"codes {dict(codes)}; payload kinds {dict(by_kind)}"
    )
    print(summary)
    print("\n".join(f"  {m} {c}: {n}" for (_, m, c), n in sorted(counts.items())))
    for (method, code), ex in sorted(examples.items()):
        print(f"  example {method} -> {code}: {ex}")
    faults = {k: v for k, v in examples.items() if k[1] in {c.name for c in BAD}}
    assert not faults, f"{summary}\nserver faults:\n" + "\n".join(
        f"  {method} -> {code}: {ex}" for (method, code), ex in sorted(faults.items())
    )
    assert total >= TOTAL * 0.95, summary  # hypothesis may stop early on tiny message types
    # Healthy afterwards: SERVING within 100 ms, and no server fault counted anywhere.
    with grpc.insecure_channel(f"127.0.0.1:{fuzz_server.port}") as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
        worst = 0.0
        for _ in range(20):
            t0 = time.perf_counter()
            resp = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
            worst = max(worst, time.perf_counter() - t0)
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
    assert worst < 0.1, f"health took {worst * 1000:.0f} ms after fuzzing"
    handled = _handled_codes(fuzz_server)
    handled.subtract(handled_before)
    assert handled["INTERNAL"] == 0 and handled["UNKNOWN"] == 0, dict(handled)
