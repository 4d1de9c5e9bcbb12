"""A local stand-in for Bedrock's OpenAI-compatible fine-tuning endpoint (bedrock-mantle).

It answers the calls ``finetuning.backends.bedrock_openai_rft`` makes, records each request
(method, path, headers, body) and refuses any request whose Authorization header is not
``Bearer <API_KEY>``. Shapes follow fine-tuning-openai-job-create.html and the OpenAI
reference it defers to (see the module under test).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

API_KEY = "bedrock-api-key-abc123-secret"
GRADER = "arn:aws:lambda:us-west-2:123456789012:function:my-reward-function"


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, tuple[str | None, bytes]]:
        """Multipart fields: name -> (filename, content)."""
        message = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode() + self.body
        )
        return {
            part.get_param("name", header="content-disposition"): (
                part.get_filename(),
                part.get_payload(decode=True),
            )
            for part in message.iter_parts()
        }


@dataclass
class FakeMantle:
    """State of the fake endpoint; ``statuses`` is what successive job GETs report."""

    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[str] = field(default_factory=lambda: ["running", "succeeded"])
    fail_with: tuple[int, dict[str, Any]] | None = None
    redirect_to: str | None = None
    job_error: dict[str, Any] | None = None

    def calls(self) -> list[str]:
        return [f"{r.method} {r.path}" for r in self.requests]

    def answer(self, request: Recorded) -> tuple[int, dict[str, Any]]:
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            return 401, {"error": {"message": "Invalid API key", "type": "invalid_request_error"}}
        if self.fail_with is not None:
            return self.fail_with
        path = request.path.removeprefix("/v1")
        if (request.method, path) == ("GET", "/files"):
            return 200, {"object": "list", "data": list(self.files)}
        if (request.method, path) == ("POST", "/files"):
            form = request.form()
            filename, content = form["file"]
            item = {
                "id": f"file-{len(self.files) + 1}",
                "object": "file",
                "bytes": len(content),
                "filename": filename,
                "purpose": form["purpose"][1].decode(),
            }
            self.files.append(item)
            return 200, item
        if (request.method, path) == ("GET", "/fine_tuning/jobs"):
            return 200, {"object": "list", "data": list(reversed(self.jobs)), "has_more": False}
        if (request.method, path) == ("POST", "/fine_tuning/jobs"):
            body = request.json()
            job = {
                "id": f"ftjob-{len(self.jobs) + 1}",
                "object": "fine_tuning.job",
                "model": body["model"],
                "training_file": body["training_file"],
                "method": body["method"],
                "status": "validating_files",
                "created_at": 1764900000,
                "finished_at": None,
                "fine_tuned_model": None,
                "error": None,
            }
            self.jobs.append(job)
            return 200, job
        match = re.fullmatch(r"/fine_tuning/jobs/([^/]+)(/cancel)?", path)
        if match:
            job = next((j for j in self.jobs if j["id"] == match[1]), None)
            if job is None:
                return 404, {"error": {"message": f"No job {match[1]}"}}
            if match[2] and request.method == "POST":
                job["status"] = "cancelled"
            elif request.method == "GET" and self.statuses and job["status"] != "cancelled":
                job["status"] = self.statuses.pop(0)
                if job["status"] == "succeeded":
                    job["fine_tuned_model"] = f"{job['model']}:ft:{job['id']}"
                    job["finished_at"] = 1764903600
                if job["status"] == "failed":
                    job["error"] = self.job_error
            return 200, job
        return 404, {"error": {"message": f"no route {request.method} {path}"}}


@pytest.fixture
def mantle() -> Iterator[FakeMantle]:
    state = FakeMantle()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            parts = urlsplit(self.path)
            request = Recorded(
                method=self.command,
                path=parts.path,
                query=parse_qs(parts.query),
                headers=dict(self.headers.items()),
                body=self.rfile.read(length),
            )
            state.requests.append(request)
            status, payload = state.answer(request)
            data = json.dumps(payload).encode()
            if state.redirect_to and status == 200:
                status = 307
            self.send_response(status)
            if status == 307:
                self.send_header("Location", state.redirect_to)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _serve

        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


# The IAM action each call of the fake endpoint is authorized as: the bedrock-mantle actions
# of the Service Authorization Reference,
# https://docs.aws.amazon.com/service-authorization/latest/reference/list_bedrock-mantle.html
# (read 2026-12-05), one per call the library makes.
IAM_ACTIONS = {
    ("GET", "/files"): "ListFiles",
    ("POST", "/files"): "CreateFile",
    ("GET", "/fine_tuning/jobs"): "ListFineTuningJobs",
    ("POST", "/fine_tuning/jobs"): "CreateFineTuningJob",
}


def iam_operation(method: str, path: str) -> str:
    """The bedrock-mantle action a request to the endpoint is authorized as."""
    path = urlsplit(path).path.split("/v1", 1)[-1]
    if (method, path) in IAM_ACTIONS:
        return IAM_ACTIONS[(method, path)]
    if re.fullmatch(r"/fine_tuning/jobs/[^/]+/cancel", path) and method == "POST":
        return "CancelFineTuningJob"
    if re.fullmatch(r"/fine_tuning/jobs/[^/]+", path) and method == "GET":
        return "GetFineTuningJob"
    raise AssertionError(f"no bedrock-mantle action known for {method} {path}")


def rft_record(index: int) -> dict[str, Any]:
    """One prompt in the format of "Prepare data for open-weight models"."""
    return {
        "messages": [
            {"role": "system", "content": "Answer with the number only."},
            {"role": "user", "content": f"What is {index} + 1?"},
        ],
        "reference_answer": str(index + 1),
    }


def rft_jsonl(count: int = 100) -> bytes:
    return "".join(json.dumps(rft_record(i)) + "\n" for i in range(count)).encode()
