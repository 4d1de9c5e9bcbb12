"""Hypothesis: arbitrary bytes and arbitrary JSON never crash the validator."""

from __future__ import annotations

import json
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finetuning.data.validate import validate_lines
from tests.support.records import CLAUDE, NOVA, OPEN, TITAN

MODELS = st.sampled_from([NOVA, TITAN, CLAUDE, OPEN, "meta.llama3-2-11b-instruct-v1:0"])
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)

# Keys and values close to real records, so fuzzing reaches the deeper checks.
KEYS = st.sampled_from(
    [
        "messages",
        "role",
        "content",
        "text",
        "image",
        "video",
        "format",
        "source",
        "s3Location",
        "uri",
        "bucketOwner",
        "system",
        "schemaVersion",
        "prompt",
        "completion",
        "instruction",
        "input",
        "output",
        "type",
        "url",
        "path",
    ]
)
LEAVES = (
    st.sampled_from(
        [
            "user",
            "assistant",
            "system",
            "png",
            "mp4",
            "jpeg",
            "s3://bucket/a.png",
            "s3://b/",
            "hi",
            "",
            "User: x",
            "bedrock-conversation-2024",
            "image",
            "text",
            "123456789012",
        ]
    )
    | st.none()
    | st.integers(-2, 2)
)
near_records = st.recursive(
    LEAVES,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=5),
    max_leaves=25,
)


def check_invariants(report, line_count: int) -> None:
    assert report.records <= line_count
    assert report.errors + report.warnings == sum(report.counts_by_code.values())
    assert report.errors + report.warnings == len(report.problems) + report.problems_not_kept
    json.loads(report.to_json())
    for problem in report.problems:
        assert problem.message and problem.code
        assert problem.line is None or 1 <= problem.line <= line_count


@FUZZ
@given(data=st.binary(max_size=400), model=MODELS)
def test_arbitrary_bytes_never_crash(data: bytes, model: str) -> None:
    lines = data.splitlines(keepends=True)
    report = validate_lines(lines, model)
    check_invariants(report, len(lines))


@FUZZ
@given(values=st.lists(json_values, max_size=6), model=MODELS)
def test_arbitrary_json_never_crashes(values: list, model: str) -> None:
    lines = [json.dumps(value).encode() + b"\n" for value in values]
    check_invariants(validate_lines(lines, model), len(lines))


@FUZZ
@given(values=st.lists(near_records, min_size=1, max_size=6), model=MODELS)
def test_record_like_json_never_crashes(values: list, model: str) -> None:
    lines = [json.dumps(value).encode() + b"\n" for value in values]
    report = validate_lines(lines, model)
    check_invariants(report, len(lines))
    if report.records and report.ok and model != OPEN:
        assert report.format is not None


@FUZZ
@given(
    text=st.text(alphabet=st.sampled_from("UserBotAsistn:<>imagevdo[]EOS xYZ\n"), max_size=60),
    keywords=st.lists(
        st.text(alphabet="Usr:<>[]EOSab", min_size=1, max_size=6), min_size=1, max_size=6
    ),
)
def test_keyword_scanner_agrees_with_substring_search(text: str, keywords: list[str]) -> None:
    from finetuning.data.validation.messages import KeywordScanner as _KeywordScanner

    found = _KeywordScanner(keywords).search(text)
    assert (found is not None) == any(keyword in text for keyword in keywords)
    assert found is None or found in text
