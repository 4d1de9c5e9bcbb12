"""Every validation rule with a failing and a passing example."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from finetuning.data import models, sources
from finetuning.data import validate as validate_module
from finetuning.data.models import UnknownModelError, resolve_model
from finetuning.data.validate import Severity, validate_lines, validate_path
from tests.support.records import (
    CLAUDE,
    COHERE,
    NOVA,
    NOVA_MICRO,
    OPEN,
    TITAN,
    claude,
    converse,
    image,
    jsonl,
    prompt_completion,
    video,
)


def nova_lines(*records, extra: int = 8) -> list[bytes]:
    """The records plus enough distinct valid ones to satisfy Nova's 8-record minimum."""
    filler = [converse(user=f"Question {i}?") for i in range(extra)]
    return jsonl(*records, *filler)


def codes(report, severity: Severity | None = None) -> list[tuple[int | None, str]]:
    return [(p.line, p.code) for p in report.problems if severity is None or p.severity is severity]


def only_problem(report) -> str:
    assert len(report.problems) == 1, [p.format("f") for p in report.problems]
    return report.problems[0].message


# -- parsing -------------------------------------------------------------------------------


def test_valid_nova_file_has_no_problems() -> None:
    report = validate_lines(nova_lines(), NOVA)
    assert report.ok and report.problems == []
    assert report.records == 8
    assert report.format == "bedrock-conversation-2024"
    assert report.tokens > 0 and not report.tokens_exact


def test_invalid_json_names_line_and_column() -> None:
    report = validate_lines([*nova_lines(), b'{"prompt": "a",, }\n'], NOVA)
    assert codes(report) == [(9, "invalid-json")]
    assert "column 16" in report.problems[0].message
    assert report.records == 8


def test_pretty_printed_json_gets_a_hint() -> None:
    report = validate_lines([b"{\n", b'  "prompt": "a"\n', b"}\n"], TITAN)
    assert "pretty-printed JSON" in report.problems[0].message


def test_non_object_lines() -> None:
    report = validate_lines([b"[1, 2]\n", b'"text"\n', b"null\n"], TITAN)
    assert [p.message for p in report.problems[:3]] == [
        "expected one JSON object per line, found an array",
        "expected one JSON object per line, found a string",
        "expected one JSON object per line, found null",
    ]


def test_nan_is_not_json() -> None:
    report = validate_lines([b'{"prompt": "a", "completion": NaN}\n'], TITAN)
    assert codes(report)[0] == (1, "invalid-json")
    assert "NaN" in report.problems[0].message


def test_encoding_rules() -> None:
    bad = validate_lines([b'{"prompt": "caf\xe9", "completion": "x"}\n'], TITAN)
    assert codes(bad)[0] == (1, "encoding")
    assert "byte 0xe9 at column 16" in bad.problems[0].message
    utf16 = validate_lines(['{"prompt": "a"}\n'.encode("utf-16")], TITAN)
    assert codes(utf16, Severity.ERROR)[0] == (1, "encoding")
    assert "UTF-16" in utf16.problems[0].message
    bom = validate_lines([b"\xef\xbb\xbf" + json.dumps(prompt_completion()).encode()], TITAN)
    assert bom.ok and bom.records == 1


def test_line_endings_and_blank_lines() -> None:
    crlf = validate_lines(jsonl(*[converse(user=f"Q{i}?") for i in range(8)], ending=b"\r\n"), NOVA)
    assert crlf.ok and crlf.problems == []
    no_final_newline = nova_lines()
    no_final_newline[-1] = no_final_newline[-1].rstrip(b"\n")
    assert validate_lines(no_final_newline, NOVA).problems == []
    blank = validate_lines([*nova_lines(), b"\n", b"   \r\n"], NOVA)
    assert blank.ok
    assert codes(blank) == [(9, "blank-line"), (10, "blank-line")]


def test_oversized_line_is_reported_without_reading_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(sources, "MAX_LINE_BYTES", 600)
    path = tmp_path / "big.jsonl"
    path.write_bytes(b"".join(nova_lines()) + b'{"x": "' + b"a" * 1000 + b'"}\n')
    report = validate_path(path, NOVA)
    assert codes(report) == [(9, "line-too-long")]
    assert report.records == 8


# -- format and schema ---------------------------------------------------------------------


def test_wrong_format_for_the_family_says_how_to_convert() -> None:
    report = validate_lines(nova_lines(prompt_completion()), NOVA)
    message = only_problem(report)
    assert report.problems[0].line == 1
    assert "prompt-completion format" in message
    assert "finetune data convert --to bedrock-conversation" in message


def test_unrecognised_record_lists_found_keys() -> None:
    report = validate_lines(jsonl({"question": "q", "answer": "a"}), OPEN)
    assert codes(report, Severity.ERROR) == [(1, "unknown-format")]
    assert '"question", "answer"' in report.problems[0].message


@pytest.mark.parametrize(
    ("record", "fragment"),
    [
        (
            {"schemaVersion": "bedrock-conversation-2024", "messages": "hi"},
            "messages: expected a list",
        ),
        (
            converse(turns=[("user", "hi"), ("bot", "x")]),
            "messages[1].role: expected role 'user' or 'assistant'",
        ),
        (
            {
                "schemaVersion": 2024,
                **{k: v for k, v in converse().items() if k != "schemaVersion"},
            },
            "schemaVersion: expected a string, found a number",
        ),
        (
            converse(user=[{"toolUse": {}}]),
            'messages[0].content[0]: expected a "text", "image" or "video" block',
        ),
    ],
)
def test_schema_errors_name_the_field(record: dict, fragment: str) -> None:
    report = validate_lines(nova_lines(record), NOVA)
    assert codes(report) == [(1, "schema")]
    assert fragment in report.problems[0].message


def test_unknown_keys_warn_for_nova_and_fail_for_claude() -> None:
    nova = validate_lines(nova_lines({**converse(), "id": 7}), NOVA)
    assert nova.ok and codes(nova) == [(1, "unknown-key")]
    haiku_records = [claude(("user", f"Q{i}"), ("assistant", "A")) for i in range(32)]
    haiku = validate_lines(jsonl({**claude(), "id": 7}, *haiku_records), CLAUDE)
    assert codes(haiku) == [(1, "unknown-key")]
    assert "may only have" in haiku.problems[0].message
    nested = validate_lines(
        jsonl(
            {
                "messages": [
                    {"role": "user", "content": "q", "name": "x"},
                    {"role": "assistant", "content": "a"},
                ]
            },
            *haiku_records,
        ),
        CLAUDE,
    )
    assert codes(nested) == [(1, "unknown-key")]
    assert nested.problems[0].message.startswith("messages[0]: unexpected key")
    assert validate_lines(jsonl(*haiku_records), CLAUDE).problems == []


# -- roles and turns -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("turns", "fragment"),
    [
        (
            [("assistant", "hi"), ("user", "q"), ("assistant", "a")],
            "messages[0].role: expected 'user' after the start",
        ),
        (
            [("user", "q"), ("user", "q2"), ("assistant", "a")],
            "messages[1].role: expected 'assistant' after a user turn",
        ),
        (
            [("user", "q"), ("assistant", "a"), ("user", "more?")],
            "messages[2].role: expected the last turn to be 'assistant'",
        ),
        ([("user", "q")], "expected at least a user turn and an assistant turn, found 1 turn"),
    ],
)
def test_turn_order_rules(turns: list, fragment: str) -> None:
    report = validate_lines(nova_lines(converse(turns=turns)), NOVA)
    assert codes(report) == [(1, "roles")]
    assert fragment in report.problems[0].message


def test_multi_turn_alternating_conversation_passes() -> None:
    turns = [("user", "q1"), ("assistant", "a1"), ("user", "q2"), ("assistant", "a2")]
    assert validate_lines(nova_lines(converse(turns=turns)), NOVA).problems == []


def test_system_message_only_first() -> None:
    record = {
        "messages": [
            {"role": "user", "content": "q"},
            {"role": "system", "content": "s"},
            {"role": "assistant", "content": "a"},
        ]
    }
    report = validate_lines(jsonl(record), OPEN)
    assert codes(report) == [(1, "roles")]
    assert "messages[1].role: a system message may only come first" in report.problems[0].message
    first = {
        "messages": [
            {"role": "system", "content": "s"},
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "a"},
        ]
    }
    assert validate_lines(jsonl(first), OPEN).problems == []


def test_field_names_shift_past_a_top_level_system_prompt() -> None:
    records = [claude(("user", "q"), ("user", "again"), ("assistant", "a"))] + [
        claude(("user", f"Q{i}"), ("assistant", "A")) for i in range(32)
    ]
    report = validate_lines(jsonl(*records), CLAUDE)
    assert report.problems[0].message.startswith("messages[1].role:")


# -- text ----------------------------------------------------------------------------------


def test_empty_turns_are_errors_and_blank_system_prompt_is_a_warning() -> None:
    empty = validate_lines(nova_lines(converse(assistant="")), NOVA)
    assert codes(empty) == [(1, "empty-text")]
    message = empty.problems[0].message
    assert message.startswith("messages[1].content: expected non-empty text in the assistant")
    assert message.endswith("turn, found an empty string")
    spaces = validate_lines(jsonl(prompt_completion(prompt="  \n ")), TITAN)
    assert (
        "prompt: expected non-empty text in the user turn, found only whitespace"
        in spaces.problems[0].message
    )
    blank_system = validate_lines(nova_lines(converse(system="   ")), NOVA)
    assert blank_system.ok and codes(blank_system) == [(1, "empty-text")]
    assert blank_system.problems[0].severity is Severity.WARNING


@pytest.mark.parametrize(
    "keyword", ["User:", "Bot:", "Assistant:", "System:", "<image>", "<video>", "[EOS]"]
)
def test_nova_reserved_keywords(keyword: str) -> None:
    report = validate_lines(nova_lines(converse(user=f"Read this. {keyword} hello")), NOVA)
    assert codes(report) == [(1, "reserved-keyword")]
    assert f"'{keyword}' is a reserved keyword" in report.problems[0].message


def test_reserved_keywords_in_system_prompt_and_lower_case_passes() -> None:
    report = validate_lines(nova_lines(converse(system="System: be nice")), NOVA)
    assert report.problems[0].message.startswith("system: 'System:'")
    assert validate_lines(nova_lines(converse(user="the user: field")), NOVA).problems == []


def test_reserved_keywords_are_a_nova_rule_only() -> None:
    assert validate_lines(jsonl(prompt_completion(prompt="User: hi\nBot:")), TITAN).problems == []


# -- media ---------------------------------------------------------------------------------


def test_nova_lite_accepts_images_and_nova_micro_does_not() -> None:
    record = converse(user=[{"text": "What document is this?"}, image()])
    lite = validate_lines(nova_lines(record), NOVA)
    assert lite.problems == [] and lite.images == 1
    micro = validate_lines(nova_lines(record), NOVA_MICRO)
    assert codes(micro) == [(1, "media")]
    assert "Amazon Nova Micro does not take images" in micro.problems[0].message


@pytest.mark.parametrize(
    ("block", "code", "fragment"),
    [
        (
            image(fmt="tiff"),
            "media",
            "expected a image format in ['gif', 'jpeg', 'png', 'webp'], found 'tiff'",
        ),
        (image(fmt="jpg"), "media", "found 'jpg'"),
        (image(uri="https://example.com/a.png"), "s3-uri", "expected an s3://bucket/key URI"),
        (image(uri="s3://Bad_Bucket/a.png"), "s3-uri", "is not a valid bucket name"),
        (image(uri="s3://bucket/"), "s3-uri", "expected an object key"),
        (image(uri="s3://bucket/my image.png"), "s3-uri", "has characters other than letters"),
        (image(bucketOwner="12345"), "s3-uri", "12-digit AWS account id"),
        ({"image": {"format": "png", "source": {"bytes": "iVBOR"}}}, "media", "found bytes"),
        (video(fmt="avi"), "media", "found 'avi'"),
    ],
)
def test_media_rules(block: dict, code: str, fragment: str) -> None:
    report = validate_lines(nova_lines(converse(user=[{"text": "Describe it."}, block])), NOVA)
    assert codes(report) == [(1, code)]
    assert fragment in report.problems[0].message


def test_media_counts_per_record() -> None:
    eleven = converse(
        user=[{"text": "Compare."}] + [image(f"s3://bucket/i{i}.png") for i in range(11)]
    )
    report = validate_lines(nova_lines(eleven), NOVA)
    assert only_problem(report) == "expected at most 10 images in one record, found 11"
    ten = converse(
        user=[{"text": "Compare."}] + [image(f"s3://bucket/i{i}.png") for i in range(10)]
    )
    assert validate_lines(nova_lines(ten), NOVA).problems == []
    two_videos = converse(user=[{"text": "Compare."}, video(), video("s3://bucket/b.mp4")])
    assert "at most 1 video in one record, found 2" in only_problem(
        validate_lines(nova_lines(two_videos), NOVA)
    )


def test_media_in_assistant_turn() -> None:
    record = converse(assistant=[{"text": "Here:"}, image()])
    assert "may only appear in user turns" in only_problem(validate_lines(nova_lines(record), NOVA))


def test_images_and_videos_cannot_be_mixed_in_one_dataset() -> None:
    with_image = converse(user=[{"text": "What is it?"}, image()])
    with_video = converse(user=[{"text": "What happens?"}, video()])
    report = validate_lines(nova_lines(with_image, with_video), NOVA)
    assert codes(report) == [(2, "media-mix")]
    assert (
        "mixes images (first on line 1) and videos (first on line 2)" in report.problems[0].message
    )
    videos_only = validate_lines(
        nova_lines(with_video, converse(user=[{"text": "And?"}, video("s3://bucket/c.mp4")])), NOVA
    )
    assert videos_only.problems == [] and videos_only.videos == 2


def test_media_must_share_the_dataset_bucket() -> None:
    record = converse(user=[{"text": "What is it?"}, image("s3://other-bucket/a.png")])
    known = validate_lines(nova_lines(record), NOVA, dataset_uri="s3://data-bucket/train.jsonl")
    assert codes(known) == [(1, "bucket")]
    assert (
        "needs images and videos in the dataset's bucket 'data-bucket'" in known.problems[0].message
    )
    same = converse(user=[{"text": "What is it?"}, image("s3://data-bucket/a.png")])
    assert validate_lines(nova_lines(same), NOVA, dataset_uri="s3://data-bucket/train.jsonl").ok
    # Without the dataset's location, two different buckets cannot both be right.
    second = converse(user=[{"text": "And this?"}, image("s3://third-bucket/b.png")])
    unknown = validate_lines(nova_lines(same, second), NOVA)
    assert codes(unknown) == [(2, "bucket")]


# -- lengths and tokens --------------------------------------------------------------------


def test_titan_character_quota_and_caution_band() -> None:
    over = validate_lines(jsonl(prompt_completion(prompt="x" * 24_577, completion="y")), TITAN)
    assert codes(over) == [(1, "too-long")]
    assert (
        "24,578 characters of input and output text, more than the 24,576"
        in over.problems[0].message
    )
    near = validate_lines(jsonl(prompt_completion(prompt="x" * 20_000)), TITAN)
    assert near.ok and codes(near) == [(1, "may-be-too-long")]
    fine = validate_lines(jsonl(prompt_completion(prompt="x" * 10_000)), TITAN)
    assert fine.problems == []


@pytest.mark.parametrize(
    "model_id",
    [
        COHERE,
        "amazon.titan-text-lite-v1",
        "amazon.titan-text-premier-v1:0:32k",
        "arn:aws:bedrock:us-east-1::foundation-model/cohere.command-light-text-v14",
    ],
)
def test_families_bedrock_no_longer_customizes_are_refused_with_the_date(model_id: str) -> None:
    with pytest.raises(models.RetiredModelError) as error:
        validate_lines(jsonl(prompt_completion(prompt="short", completion="ok")), model_id)
    message = str(error.value)
    assert "no longer on Bedrock's supported-models page" in message
    assert "(checked 2026-12-05)" in message
    assert "amazon.nova-2-lite-v1:0:256k" in message  # names what to use instead
    assert "custom-model-supported.html" in message


def test_exact_token_counter_replaces_estimate() -> None:
    def words(text: str) -> int:
        return len(text.split())

    report = validate_lines(
        jsonl(prompt_completion(prompt="word " * 5000)), TITAN, token_counter=words
    )
    assert report.tokens_exact and report.tokens == 5002
    assert "5,002 input and output tokens, more than the 4,096" in report.problems[0].message


def test_open_model_max_tokens_warns_about_truncation() -> None:
    report = validate_lines(jsonl(prompt_completion(prompt="x" * 400)), OPEN, max_tokens=50)
    assert report.ok and codes(report) == [(1, "truncated")]


def test_token_estimate_uses_six_characters_per_token_for_bedrock() -> None:
    report = validate_lines(jsonl(prompt_completion(prompt="x" * 594, completion="y" * 6)), TITAN)
    assert report.tokens == 100 and report.characters == 600


# -- whole-file rules ----------------------------------------------------------------------


def test_duplicates_are_warnings_naming_the_first_line() -> None:
    report = validate_lines(nova_lines(converse(), converse()), NOVA)
    assert report.ok and codes(report) == [(2, "duplicate")]
    assert report.problems[0].message.startswith("duplicate of line 1")


def test_duplicate_tracking_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validate_module, "MAX_TRACKED_RECORDS", 3)
    records = [prompt_completion(prompt=f"p{i}") for i in range(5)] + [
        prompt_completion(prompt="p0")
    ]
    report = validate_lines(jsonl(*records), TITAN)
    assert codes(report) == [(4, "duplicate-check-limited"), (6, "duplicate")]


def test_record_count_limits() -> None:
    few = validate_lines(jsonl(*[converse(user=f"Q{i}?") for i in range(7)]), NOVA)
    assert codes(few) == [(None, "record-count")]
    assert few.problems[0].message == "7 training records; Amazon Nova Lite needs at least 8"
    validation = [claude(("user", f"Q{i}"), ("assistant", "A")) for i in range(1001)]
    too_many = validate_lines(jsonl(*validation), CLAUDE, role="validation")
    assert "accepts at most 1,000 validation records" in only_problem(too_many)
    assert validate_lines(jsonl(*validation[:1000]), CLAUDE, role="validation").ok


def test_empty_file_is_an_error() -> None:
    report = validate_lines([], NOVA)
    assert codes(report) == [(None, "no-records")]


def test_file_size_limit(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    small = dataclasses.replace(resolve_model(TITAN), max_validation_file_bytes=100)
    monkeypatch.setattr(validate_module, "resolve_model", lambda _: small)
    path = tmp_path / "validation.jsonl"
    path.write_bytes(b"".join(jsonl(*[prompt_completion(prompt=f"p{i}") for i in range(5)])))
    report = validate_path(path, TITAN, role="validation")
    assert codes(report) == [(None, "file-size")]
    assert "accepts at most 100 B for a validation file" in report.problems[0].message
    assert validate_path(path, TITAN, role="train").ok


def test_nova_file_names(tmp_path: Path) -> None:
    path = tmp_path / "my data.jsonl"
    path.write_bytes(b"".join(nova_lines()))
    assert codes(validate_path(path, NOVA)) == [(None, "file-name")]
    assert validate_path(path, NOVA, dataset_uri="s3://bucket/train/data.jsonl").ok


# -- open models and reports ---------------------------------------------------------------


@pytest.mark.parametrize(
    "record",
    [
        prompt_completion(),
        claude(),
        converse(),
        {"instruction": "Translate to French", "input": "cat", "output": "chat"},
    ],
)
def test_open_models_accept_every_format(record: dict) -> None:
    report = validate_lines(jsonl(record), OPEN)
    assert report.ok and report.problems == []
    assert report.family == "open-model"


def test_open_models_warn_about_mixed_formats() -> None:
    report = validate_lines(jsonl(prompt_completion(), claude()), OPEN)
    assert report.ok and codes(report) == [(2, "mixed-formats")]


def test_report_keeps_a_bounded_number_of_problems_per_severity() -> None:
    lines = [b"not json\n"] * 5 + [b"\n"] * 5
    report = validate_lines(lines, TITAN, max_problems=2)
    assert (report.errors, report.warnings) == (6, 5)  # 5 bad lines + no records
    assert [p.severity for p in report.problems] == [Severity.ERROR] * 2 + [Severity.WARNING] * 2
    assert report.problems_not_kept == 7
    data = json.loads(report.to_json())
    assert data["ok"] is False and data["counts_by_code"] == {
        "invalid-json": 5,
        "blank-line": 5,
        "no-records": 1,
    }
    assert data["problems"][0] == {
        "line": 1,
        "severity": "error",
        "code": "invalid-json",
        "message": report.problems[0].message,
    }


def test_problem_format_is_compiler_style() -> None:
    report = validate_lines([b"oops\n"], TITAN)
    assert (
        report.problems[0]
        .format("data/train.jsonl")
        .startswith("data/train.jsonl:1: error: not valid JSON")
    )
    assert (
        report.problems[-1].format("data/train.jsonl")
        == "data/train.jsonl: error: no records: the file has no JSON object lines"
    )


# -- model resolution ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model_id", "family"),
    [
        ("amazon.nova-lite-v1:0:300k", "nova-lite"),
        ("us.amazon.nova-pro-v1:0", "nova-pro"),
        ("arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-micro-v1:0:128k", "nova-micro"),
        (
            "arn:aws:bedrock:us-west-2:123456789012:custom-model/amazon.nova-lite-v1:0:300k/abc",
            "nova-lite",
        ),
        ("amazon.titan-text-express-v1:0:8k", "titan-text-express"),
        ("amazon.nova-2-lite-v1:0:256k", "nova-2-lite"),
        ("us.amazon.nova-2-lite-v1:0", "nova-2-lite"),
        ("meta.llama3-1-8b-instruct-v1:0", "llama3.1"),
        ("meta.llama3-2-90b-instruct-v1:0", "llama3.2-90b"),
        ("anthropic.claude-3-haiku-20240307-v1:0:200k", "claude-3-haiku"),
        ("meta-llama/Llama-3.1-8B-Instruct", "open-model"),
        ("./models/tiny", "open-model"),
    ],
)
def test_resolve_model(model_id: str, family: str) -> None:
    assert resolve_model(model_id).name == family


@pytest.mark.parametrize(
    "model_id",
    [
        "anthropic.claude-3-5-sonnet-20240620-v1:0",
        "arn:aws:bedrock:us-east-1::foundation-model/x.y",
        "",
    ],
)
def test_unknown_bedrock_models_are_refused(model_id: str) -> None:
    with pytest.raises(UnknownModelError):
        resolve_model(model_id)


def test_every_family_cites_its_source() -> None:
    for family in models.bedrock_families():
        assert family.source_url.startswith("https://docs.aws.amazon.com/")
        assert family.model_ids, family.name
        for model_id in family.model_ids:
            if family.retired is None:
                assert resolve_model(model_id) is family
            else:
                with pytest.raises(models.RetiredModelError):
                    resolve_model(model_id)


def test_current_families_name_their_regions_and_retired_ones_their_date() -> None:
    current = {f.name: f for f in models.bedrock_families() if f.retired is None}
    retired = {f.name for f in models.bedrock_families() if f.retired is not None}
    assert retired == {"titan-text-lite", "titan-text-premier", "cohere-command"}
    assert current["nova-2-lite"].model_ids == ("amazon.nova-2-lite-v1:0:256k",)
    assert current["nova-2-lite"].regions == ("us-east-1",)
    assert current["nova-2-lite"].max_total_tokens == 256_000
    assert current["claude-3-haiku"].regions == ("us-west-2",)
    assert all(family.regions for family in current.values())


@pytest.mark.parametrize(
    ("customization_id", "invoke_id"),
    [
        ("amazon.nova-2-lite-v1:0:256k", "amazon.nova-2-lite-v1:0"),
        ("amazon.nova-lite-v1:0:300k", "amazon.nova-lite-v1:0"),
        ("amazon.titan-text-express-v1:0:8k", "amazon.titan-text-express-v1:0"),
        ("anthropic.claude-3-haiku-20240307-v1:0:200k", "anthropic.claude-3-haiku-20240307-v1:0"),
        ("amazon.nova-lite-v1:0", "amazon.nova-lite-v1:0"),
    ],
)
def test_customization_and_invoke_ids_map_both_ways(customization_id: str, invoke_id: str) -> None:
    assert models.invoke_model_id(customization_id) == invoke_id
    if customization_id != invoke_id:
        assert models.customization_model_id(invoke_id) == customization_id
        assert models.customization_model_id(f"us.{invoke_id}") == customization_id


def test_job_files_check_limits_on_both_files_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from finetuning.data.validate import validate_job_files

    # Claude 3 Haiku's rules with its 10,000-record total scaled down to keep the test fast.
    haiku = dataclasses.replace(resolve_model(CLAUDE), min_records=1, max_total_records=15)
    monkeypatch.setattr(validate_module, "resolve_model", lambda _: haiku)
    train = tmp_path / "train.jsonl"
    validation = tmp_path / "validation.jsonl"
    train.write_bytes(
        b"".join(jsonl(*[claude(("user", f"T{i}"), ("assistant", "A")) for i in range(10)]))
    )
    validation.write_bytes(
        b"".join(jsonl(*[claude(("user", f"V{i}"), ("assistant", "A")) for i in range(6)]))
    )
    train_report, validation_report = validate_job_files(train, CLAUDE, validation)
    assert train_report.ok and train_report.role == "train"
    assert codes(validation_report) == [(None, "record-count")]
    message = validation_report.problems[0].message
    assert message == (
        "10 training + 6 validation records = 16; Anthropic Claude 3 Haiku accepts at most 15 "
        "together"
    )
    (alone,) = validate_job_files(train, CLAUDE)
    assert alone.ok


@pytest.mark.parametrize(
    ("model", "region", "refused"),
    [
        ("amazon.nova-2-lite-v1:0:256k", "us-east-1", False),
        ("amazon.nova-2-lite-v1:0:256k", "us-west-2", True),
        ("us.amazon.nova-2-lite-v1:0", "us-west-2", True),  # an invoke id names the same model
        ("amazon.titan-text-express-v1:0:8k", "us-west-2", False),  # two Regions
        ("anthropic.claude-3-haiku-20240307-v1:0:200k", "us-east-1", True),
        ("meta.llama3-2-3b-instruct-v1:0:128k", "us-west-2", False),
        ("meta.llama3-2-3b-instruct-v1:0:128k", None, False),  # Region unknown: Bedrock decides
        ("HuggingFaceTB/SmolLM2-135M-Instruct", "eu-west-1", False),  # not a Bedrock model
    ],
)
def test_the_regions_bedrock_customizes_each_model_in(model, region, refused) -> None:
    """The Regions of the supported-models page (read 2026-12-05), pinned per family."""
    from finetuning.data.models import region_refusal

    assert (region_refusal(model, region) is not None) is refused
