"""Evaluation reports: ``report.md`` with PNG charts beside it and a self-contained ``report.html``.

The HTML embeds its charts as data URIs and its styles inline, so it can be mailed, attached
to a ticket or opened from S3 without the folder around it. Charts are drawn with
matplotlib's object API (no pyplot global state), so reports can be built from threads.
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from finetuning.evaluation.curves import LossCurves
from finetuning.evaluation.document import EvaluationDocument, ModelRun

REPORT_MARKDOWN = "report.md"
REPORT_HTML = "report.html"
CHARTS_DIR = "charts"

TUNED_COLOUR = "#1f6feb"
BASE_COLOUR = "#8b949e"
VALIDATION_COLOUR = "#d9480f"
_MAX_ERRORS_SHOWN = 25

QUALITY_METRICS = {
    "classification": ("accuracy", "macro_f1", "weighted_f1", "macro_precision", "macro_recall"),
    "json": ("json_validity_rate", "exact_match", "field_precision", "field_recall", "field_f1"),
    "text": ("exact_match", "token_f1"),
}


@dataclass
class Chart:
    name: str
    title: str
    png: bytes

    @property
    def filename(self) -> str:
        return f"{self.name}.png"


@dataclass
class ReportFiles:
    directory: Path
    markdown: Path
    html: Path
    charts: list[Path] = field(default_factory=list)

    @property
    def all(self) -> list[Path]:
        return [self.markdown, self.html, *self.charts]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "model"


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    # No timestamp or software metadata: the same report gives the same bytes.
    figure.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    return buffer.getvalue()


def loss_chart(curves: LossCurves) -> Chart:
    figure = Figure(figsize=(8, 4.2), layout="constrained")
    axes = figure.subplots()
    if curves.training:
        axes.plot(
            [p.step for p in curves.training],
            [p.loss for p in curves.training],
            color=TUNED_COLOUR,
            linewidth=1.6,
            label="training loss",
        )
    if curves.validation:
        axes.plot(
            [p.step for p in curves.validation],
            [p.loss for p in curves.validation],
            color=VALIDATION_COLOUR,
            linewidth=1.6,
            marker="o",
            markersize=3,
            label="validation loss",
        )
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    axes.set_title("Training and validation loss")
    axes.grid(True, alpha=0.3)
    axes.legend()
    return Chart("loss-curves", "Training and validation loss", _png(figure))


def confusion_chart(run: ModelRun) -> Chart | None:
    matrix_info = run.metrics.get("confusion_matrix")
    if not matrix_info:
        return None
    rows: list[str] = matrix_info["labels"]
    columns: list[str] = matrix_info["predicted_labels"]
    matrix: list[list[int]] = matrix_info["matrix"]
    size = max(4.5, 0.55 * len(columns) + 2.5)
    figure = Figure(figsize=(size, max(4.0, 0.5 * len(rows) + 2.2)), layout="constrained")
    axes = figure.subplots()
    # Colour by share of the true class so small classes are as readable as large ones.
    shares = [[c / (sum(row) or 1) for c in row] for row in matrix]
    image = axes.imshow(shares, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            if count:
                axes.text(
                    j,
                    i,
                    str(count),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if shares[i][j] > 0.6 else "black",
                )
    axes.set_xticks(range(len(columns)), labels=columns, rotation=45, ha="right", fontsize=8)
    axes.set_yticks(range(len(rows)), labels=rows, fontsize=8)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(f"Confusion matrix: {run.name}")
    figure.colorbar(image, ax=axes, label="share of true class", shrink=0.8)
    return Chart(f"confusion-{_slug(run.name)}", f"Confusion matrix: {run.name}", _png(figure))


def _grouped_bars(
    name: str,
    title: str,
    categories: Sequence[str],
    runs: Sequence[ModelRun],
    values: Sequence[Sequence[float]],
    *,
    ylabel: str,
    unit_max: float | None = None,
) -> Chart:
    width = 0.8 / len(runs)
    figure = Figure(figsize=(max(6.0, 0.9 * len(categories) + 2), 4.2), layout="constrained")
    axes = figure.subplots()
    for index, (run, series) in enumerate(zip(runs, values, strict=True)):
        colour = TUNED_COLOUR if index == 0 else BASE_COLOUR
        positions = [c + (index - (len(runs) - 1) / 2) * width for c in range(len(categories))]
        bars = axes.bar(positions, series, width, label=run.name, color=colour)
        axes.bar_label(bars, fmt="%.3g", fontsize=7, padding=2)
    axes.set_xticks(range(len(categories)), labels=categories, rotation=30, ha="right")
    axes.set_ylabel(ylabel)
    if unit_max is not None:
        axes.set_ylim(0, unit_max * 1.12)
    axes.set_title(title)
    axes.grid(True, axis="y", alpha=0.3)
    # Below the axes, where it cannot cover a bar or its label.
    figure.legend(loc="outside lower center", ncol=len(runs), frameon=False)
    return Chart(name, title, _png(figure))


def quality_chart(document: EvaluationDocument) -> Chart | None:
    task = document.tuned.metrics.get("task", "")
    metrics = [
        m for m in QUALITY_METRICS.get(task, ()) if _num(document.tuned.metrics.get(m)) is not None
    ]
    if not metrics:
        return None
    runs = document.runs
    values = [[_num(run.metrics.get(m)) or 0.0 for m in metrics] for run in runs]
    title = "Quality: fine-tuned vs base" if document.base else "Quality"
    return _grouped_bars("quality", title, metrics, runs, values, ylabel="score", unit_max=1.0)


def per_class_chart(document: EvaluationDocument) -> Chart | None:
    per_class = document.tuned.metrics.get("per_class")
    if not per_class:
        return None
    labels = list(per_class)
    runs = document.runs
    values = [
        [((run.metrics.get("per_class") or {}).get(label) or {}).get("f1", 0.0) for label in labels]
        for run in runs
    ]
    return _grouped_bars(
        "per-class-f1", "F1 by class", labels, runs, values, ylabel="F1", unit_max=1.0
    )


def latency_chart(document: EvaluationDocument) -> Chart | None:
    keys = ("latency_p50_seconds", "latency_p90_seconds", "latency_p99_seconds")
    runs = document.runs
    if all(_num(run.metrics.get(k)) is None for run in runs for k in keys):
        return None
    values = [[_num(run.metrics.get(k)) or 0.0 for k in keys] for run in runs]
    return _grouped_bars(
        "latency", "Latency per call", ["p50", "p90", "p99"], runs, values, ylabel="seconds"
    )


def build_charts(document: EvaluationDocument, curves: LossCurves | None = None) -> list[Chart]:
    charts: list[Chart | None] = [loss_chart(curves) if curves else None]
    charts += [quality_chart(document), per_class_chart(document)]
    charts += [confusion_chart(run) for run in document.runs]
    charts.append(latency_chart(document))
    return [c for c in charts if c is not None]


# --------------------------------------------------------------------------------------------
# Tables shared by both formats: a list of header cells and rows of cells.


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _cell(value: Any) -> str:
    number = _num(value)
    if number is None:
        return "n/a" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{number:.4f}" if abs(number) < 1000 else f"{number:,.1f}"


SUMMARY_ROWS = (
    ("Samples", "total_samples"),
    ("Successful calls", "successful_inferences"),
    ("Success rate", "success_rate"),
    ("Accuracy", "accuracy"),
    ("Macro F1", "macro_f1"),
    ("Weighted F1", "weighted_f1"),
    ("JSON validity", "json_validity_rate"),
    ("Exact match", "exact_match"),
    ("Field F1", "field_f1"),
    ("Token F1", "token_f1"),
    ("Samples per second", "samples_per_second"),
    ("Batch size", "batch_size"),
    ("Latency p50 (s)", "latency_p50_seconds"),
    ("Latency p90 (s)", "latency_p90_seconds"),
    ("Latency p99 (s)", "latency_p99_seconds"),
    ("Input tokens", "input_tokens"),
    ("Output tokens", "output_tokens"),
    ("Estimated cost (USD)", "estimated_cost_usd"),
)


def summary_table(document: EvaluationDocument) -> tuple[list[str], list[list[str]]]:
    runs = document.runs
    header = ["Metric", *(run.name for run in runs)]
    deltas = document.improvement()
    if document.base:
        header.append("Change")
    rows = []
    for title, key in SUMMARY_ROWS:
        if all(key not in run.metrics for run in runs):
            continue
        row = [title, *(_cell(run.metrics.get(key)) for run in runs)]
        if document.base:
            row.append(f"{deltas[key]:+.4f}" if key in deltas else "")
        rows.append(row)
    return header, rows


def per_class_table(run: ModelRun) -> tuple[list[str], list[list[str]]] | None:
    per_class = run.metrics.get("per_class")
    if not per_class:
        return None
    header = ["Class", "Precision", "Recall", "F1", "Support"]
    rows = [
        [label, _cell(s["precision"]), _cell(s["recall"]), _cell(s["f1"]), _cell(s["support"])]
        for label, s in per_class.items()
    ]
    return header, rows


def per_field_table(run: ModelRun) -> tuple[list[str], list[list[str]]] | None:
    per_field = run.metrics.get("per_field")
    if not per_field:
        return None
    header = ["Field", "Precision", "Recall", "F1", "Support"]
    rows = [
        [path, _cell(s["precision"]), _cell(s["recall"]), _cell(s["f1"]), _cell(s["support"])]
        for path, s in per_field.items()
    ]
    return header, rows


def _short(value: Any, limit: int = 120) -> str:
    text = value if isinstance(value, str) else ("" if value is None else str(value))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def errors_table(run: ModelRun) -> tuple[list[str], list[list[str]]] | None:
    wrong = [r for r in run.results if r.get("correct") is False or r.get("status") == "error"]
    if not wrong:
        return None
    header = ["Sample", "Expected", "Got"]
    rows = []
    for result in wrong[:_MAX_ERRORS_SHOWN]:
        got = result.get("prediction")
        if result.get("status") == "error":
            got = f"error {result.get('error_code')}: {result.get('error')}"
        elif got is None:
            got = f"(unparsed) {result.get('response_text', '')}"
        rows.append(
            [
                _short(result.get("image_path") or result["sample_id"], 60),
                _short(result.get("ground_truth")),
                _short(got),
            ]
        )
    if len(wrong) > _MAX_ERRORS_SHOWN:
        rows.append(["…", f"{len(wrong) - _MAX_ERRORS_SHOWN} more in the results JSON", ""])
    return header, rows


def gate_table(gate: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    rows = [
        ["pass" if c["passed"] else "FAIL", c["check"], c["metric"], c["message"]]
        for c in gate["checks"]
    ]
    return ["Result", "Check", "Metric", "Detail"], rows


def settings_table(document: EvaluationDocument) -> tuple[list[str], list[list[str]]]:
    rows = [[run.name, run.model_id, run.target_type] for run in document.runs]
    return ["Model", "Identifier", "Target"], rows


# --------------------------------------------------------------------------------------------
# Writers


def _md_table(table: tuple[list[str], list[list[str]]]) -> str:
    header, rows = table

    def escape(cell: str) -> str:
        return cell.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(escape(h) for h in header) + " |"]
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines += ["| " + " | ".join(escape(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _sections(document: EvaluationDocument, charts: list[Chart]) -> list[tuple[str, Any]]:
    """Report content in order: (title, table | chart | paragraph)."""
    sections: list[tuple[str, Any]] = [("Models", settings_table(document))]
    if document.quality_gate is not None:
        verdict = "PASSED" if document.quality_gate["passed"] else "FAILED"
        sections.append((f"Quality gate: {verdict}", gate_table(document.quality_gate)))
    sections.append(("Summary", summary_table(document)))
    by_name = {c.name: c for c in charts}
    for name in ("loss-curves", "quality", "per-class-f1"):
        if name in by_name:
            sections.append((by_name[name].title, by_name[name]))
    for run in document.runs:
        for title, table in (
            (f"Per-class scores: {run.name}", per_class_table(run)),
            (f"Per-field scores: {run.name}", per_field_table(run)),
        ):
            if table:
                sections.append((title, table))
        chart = by_name.get(f"confusion-{_slug(run.name)}")
        if chart:
            sections.append((chart.title, chart))
    if "latency" in by_name:
        sections.append((by_name["latency"].title, by_name["latency"]))
    for run in document.runs:
        table = errors_table(run)
        if table:
            sections.append((f"Wrong answers: {run.name}", table))
    parameters = ", ".join(f"{k}={v}" for k, v in document.parameters.items() if v is not None)
    sections.append(("Run", f"Generated {document.generated_at}. Parameters: {parameters}."))
    return sections


def render_markdown(document: EvaluationDocument, charts: list[Chart], title: str) -> str:
    parts = [f"# {title}", ""]
    for heading, content in _sections(document, charts):
        parts += [f"## {heading}", ""]
        if isinstance(content, Chart):
            parts.append(f"![{content.title}]({CHARTS_DIR}/{content.filename})")
        elif isinstance(content, tuple):
            parts.append(_md_table(content))
        else:
            parts.append(str(content))
        parts.append("")
    return "\n".join(parts)


_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem auto;
max-width:1100px;color:#1f2328;padding:0 1rem}
h1{font-size:1.6rem;border-bottom:1px solid #d0d7de;padding-bottom:.4rem}
h2{font-size:1.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}
th,td{border:1px solid #d0d7de;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}
td.num{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;height:auto;border:1px solid #eaeef2}
.pass{color:#1a7f37;font-weight:600}.fail{color:#cf222e;font-weight:600}
.verdict{display:inline-block;padding:.1rem .6rem;border-radius:1rem;color:#fff}
.verdict.pass{background:#1a7f37;color:#fff}.verdict.fail{background:#cf222e;color:#fff}
""".strip()

_NUMERIC = re.compile(r"^[-+]?[\d,]*\.?\d+$")


def _html_table(table: tuple[list[str], list[list[str]]]) -> str:
    header, rows = table
    out = ["<table>", "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"]
    for row in rows:
        cells = []
        for cell in row:
            css = ""
            if _NUMERIC.match(cell):
                css = ' class="num"'
            elif cell in ("pass", "FAIL"):
                css = f' class="{"pass" if cell == "pass" else "fail"}"'
            cells.append(f"<td{css}>{html.escape(cell)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def render_html(document: EvaluationDocument, charts: list[Chart], title: str) -> str:
    body = [f"<h1>{html.escape(title)}</h1>"]
    for heading, content in _sections(document, charts):
        if heading.startswith("Quality gate: "):
            verdict = heading.removeprefix("Quality gate: ")
            css = "pass" if verdict == "PASSED" else "fail"
            body.append(f'<h2>Quality gate <span class="verdict {css}">{verdict}</span></h2>')
        else:
            body.append(f"<h2>{html.escape(heading)}</h2>")
        if isinstance(content, Chart):
            data = base64.b64encode(content.png).decode()
            body.append(
                f'<img alt="{html.escape(content.title)}" src="data:image/png;base64,{data}">'
            )
        elif isinstance(content, tuple):
            body.append(_html_table(content))
        else:
            body.append(f"<p>{html.escape(str(content))}</p>")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def write_report(
    document: EvaluationDocument,
    directory: Path,
    *,
    curves: LossCurves | None = None,
    title: str | None = None,
) -> ReportFiles:
    """Write ``report.md``, ``report.html`` and ``charts/*.png`` under ``directory``."""
    title = title or f"Evaluation report: {document.tuned.model_id}"
    charts = build_charts(document, curves)
    chart_dir = directory / CHARTS_DIR
    chart_dir.mkdir(parents=True, exist_ok=True)
    chart_paths = []
    for chart in charts:
        path = chart_dir / chart.filename
        path.write_bytes(chart.png)
        chart_paths.append(path)
    markdown = directory / REPORT_MARKDOWN
    markdown.write_text(render_markdown(document, charts, title), encoding="utf-8")
    page = directory / REPORT_HTML
    page.write_text(render_html(document, charts, title), encoding="utf-8")
    return ReportFiles(directory, markdown, page, chart_paths)


CONTENT_TYPES = {
    ".md": "text/markdown; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".png": "image/png",
    ".json": "application/json",
}


def upload_report(
    files: Sequence[Path], root: Path, s3_uri: str, s3_client: Any, *, kms_key_id: str | None = None
) -> list[str]:
    """Copy report files to ``s3_uri`` keeping their layout under ``root``; returns their URIs."""
    if not s3_uri.startswith("s3://"):
        raise ValueError(f"report destination: expected an s3:// URI, got {s3_uri!r}")
    bucket, _, prefix = s3_uri.removeprefix("s3://").partition("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    uris = []
    for path in files:
        key = prefix + path.relative_to(root).as_posix()
        extra: dict[str, str] = {
            "ContentType": CONTENT_TYPES.get(path.suffix, "binary/octet-stream")
        }
        if kms_key_id:
            extra |= {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id}
        s3_client.upload_file(str(path), bucket, key, ExtraArgs=extra)
        uris.append(f"s3://{bucket}/{key}")
    return uris
