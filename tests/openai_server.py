"""A small local HTTP server speaking the OpenAI chat-completions protocol, for tests.

Replies come from a responder (request body → reply content); faults are injected on demand
(HTTP errors with Retry-After, hangs past the client's timeout, connection resets, invalid
content, a 200 carrying an error); a dialect makes it behave like servers that differ from OpenAI's
(llama-cpp-python refusing `json_schema` with a 500, a 400 for any response_format, replies in
markdown fences or after a <think> block); every request is recorded. Point a client at
`server.base_url`.

    with OpenAIServer(smart_reply) as server:
        server.add_fault(Fault(status=429, retry_after=1))          # the next request gets a 429
        server.add_fault(Fault(status=500), times=None, when=is_schema("ThemeLabelReply"))  # always
        ...
        assert server.request_count == 3

    with OpenAIServer(smart_reply, dialect=LLAMA_CPP_PYTHON) as server: ...
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Responder = Callable[[dict[str, Any]], "str | dict[str, Any]"]

STOP_WORDS = frozenset("""a about above after again all also am an and any are as at be because been
before being below between both but by can could did do does doing don down during each few for from
further had has have having he her here hers him his how i if in into is it its itself just me more
most my no nor not now of off on once only or other our out over own same she should so some such
than that the their them then there these they this those through to too under until up very was we
were what when where which while who whom why will with would you your yours really it's i'm don't
didn't much get got one thing things like felt feel think would it’s""".split())


@dataclass(frozen=True)
class Fault:
    """What to do to a request instead of answering it normally."""

    status: int | None = None  # answer with this HTTP error status
    retry_after: float | None = None  # with this Retry-After header (seconds)
    hang: float | None = None  # sleep this long first (past the client's timeout)
    reset: bool = False  # close the connection without any answer
    content: str | None = None  # answer normally but with this message content
    error_body: str | None = None  # answer HTTP 200 with an error document carrying this message
    message: str | None = None  # the error message of a `status` fault


@dataclass(frozen=True)
class Dialect:
    """How a kind of server differs from OpenAI's."""

    refuses: dict[str, tuple[int, str]] = field(default_factory=dict)  # response_format type → (status, message)
    fences: bool = False  # wraps the JSON in a markdown fence, with a sentence before it
    think: bool = False  # starts each reply with a <think> block, as reasoning models do


# llama-cpp-python's server: `json_schema` fails its request model, which it answers with a 500.
LLAMA_CPP_PYTHON = Dialect(refuses={"json_schema": (500, (
    "1 validation error for CreateChatCompletionRequest\nresponse_format.type\n"
    "  Input should be 'text' or 'json_object' [type=literal_error, input_value='json_schema']"))})
# A server that takes no response_format at all and says so with a 400.
NO_RESPONSE_FORMAT = Dialect(refuses={kind: (400, f"Unsupported response_format type: {kind}")
                                      for kind in ("json_schema", "json_object")})
FENCED = Dialect(fences=True)
THINKING = Dialect(think=True)
THINKING_IN_FENCES = Dialect(fences=True, think=True)

_SCHEMA_IN_PROMPT = re.compile(r"follows this JSON schema:\n(\{.*\})\s*$", re.DOTALL)


def request_schema(body: dict[str, Any]) -> dict[str, Any]:
    """The JSON schema the request asks its reply to follow: from response_format (json_schema or
    json_object with a schema) or, when there is none, from the system prompt."""
    response_format = body.get("response_format") or {}
    if "json_schema" in response_format:
        return response_format["json_schema"].get("schema", {})
    if "schema" in response_format:
        return response_format["schema"]
    system = next((m["content"] for m in body.get("messages", []) if m["role"] == "system"), "")
    found = _SCHEMA_IN_PROMPT.search(system)
    return json.loads(found.group(1)) if found else {}


def response_format_type(body: dict[str, Any]) -> str | None:
    return (body.get("response_format") or {}).get("type")


def schema_name(body: dict[str, Any]) -> str:
    """The name of the schema the request asks its reply to follow."""
    named = (body.get("response_format") or {}).get("json_schema", {}).get("name")
    return named or request_schema(body).get("title", "")


def is_schema(name: str) -> Callable[[dict[str, Any]], bool]:
    return lambda body: schema_name(body) == name


def request_data(body: dict[str, Any]) -> dict[str, Any]:
    """The JSON data document of the request (its first user message)."""
    first_user = next(m for m in body["messages"] if m["role"] == "user")
    return json.loads(first_user["content"])


def is_repair(body: dict[str, Any]) -> bool:
    """Whether the request re-asks after an invalid reply."""
    return sum(m["role"] == "user" for m in body["messages"]) > 1


def top_words(texts: list[str], count: int = 2) -> list[str]:
    words = Counter(w for t in texts for w in set(re.findall(r"[a-z]{3,}", t.lower())) if w not in STOP_WORDS)
    return [w for w, _ in sorted(words.items(), key=lambda kv: (-kv[1], kv[0]))[:count]]


def smart_reply(body: dict[str, Any]) -> dict[str, Any]:
    """A well-behaved model: valid replies built from the request's data."""
    name = schema_name(body)
    data = request_data(body) if name in ("ThemeLabelReply", "DistinctLabelsReply") else {}
    if name == "ThemeLabelReply":
        words = top_words([a["text"] for a in data["theme_answers"]]) or ["misc"]
        # Confirms the stance it is given when that is praise or complaint (miner.llm_label asks so).
        stance = data.get("stance")
        return {"label": " ".join(words).capitalize() + " opinions",
                "summary": f"Participants talk about {' and '.join(words)}.",
                "polarity": stance if stance in ("positive", "negative") else "mixed",
                "sentences": [
                    {"session_model": m["session_model"],
                     "sentence": f"{m['session_model']} users raise this in {m['answer_count']} answers.",
                     "answer_ids": [a["id"] for a in m["answers"][:2]]} for m in data.get("models", [])]}
    if name == "InterviewReadingReply":
        return reading_reply(body)
    if name == "DistinctLabelsReply":
        return {"labels": [{"theme": t["theme"],
                            "label": " ".join(top_words([a["text"] for a in t["answers"]], 3)).capitalize()}
                           for t in data["themes"]]}
    # Requests of other stages get a reply that follows their schema, so they are cached too.
    return schema_example(request_schema(body))


# A reader of opinions for the job's one call per interview (miner.llm_rate, extract=True): cuts
# answers at sentence ends and at "but", quotes each piece verbatim, and takes its stance from a
# few words. Deterministic, so a test can recompute what it said (`scripted_opinions`).
NEGATIVE_WORDS = frozenset("""wrong made invented fake slow confusing confused useless unhelpful bad
worse worst incorrect error errors hallucinated wasted annoying frustrating irrelevant repetitive not
never didn't couldn't wouldn't too""".split())
POSITIVE_WORDS = frozenset("""quick fast helpful clear accurate great good excellent useful friendly
loved love liked nice smart knowledgeable concise easy perfect""".split())
NO_OPINION = re.compile(r"^\W*(?:\d+(?:\s*(?:/|out of)\s*\d+)?|yes|no|idk|fine|ok|okay|meh|n/?a|\?+)\W*$",
                        re.IGNORECASE)


def scripted_stance(quote: str) -> str:
    words = set(re.findall(r"[a-z']+", quote.lower()))
    if words & NEGATIVE_WORDS:
        return "negative"
    return "positive" if words & POSITIVE_WORDS else "neutral"


def scripted_opinions(answer: str) -> list[dict[str, str]]:
    """What `reading_reply` quotes from one answer: [] for a bare rating or yes/no."""
    if NO_OPINION.match(answer) or not re.search(r"[A-Za-z]{3,}", answer):
        return []
    pieces = re.split(r"(?<=[.!?])\s+|,?\s+(?=but\b)", answer.strip())
    quotes = [re.sub(r"^but\s+", "", p.strip()).rstrip(".!?") for p in pieces]
    return [{"quote": q, "stance": scripted_stance(q)} for q in quotes if len(q.split()) >= 2]


def reading_reply(body: dict[str, Any]) -> dict[str, Any]:
    """A well-behaved reader: every answer's dimension, its opinions quoted, every dimension rated."""
    answers = request_data(body)["answers"]
    rating_question = re.compile(r"scale|rate|satisf|out of", re.IGNORECASE)
    evidence = " ".join(answers[-1]["answer"].split()[:4])
    return {"questions": [{"id": a["id"], "opinions": scripted_opinions(a["answer"]),
                           "dimension": "satisfaction" if rating_question.search(a["question"]) else "needs"}
                          for a in answers],
            "ratings": {d: {"score": 4, "evidence": evidence}
                        for d in ("understanding", "needs", "credibility", "satisfaction", "overall")},
            "low_effort": all(len(a["answer"]) < 12 for a in answers), "quality_reason": "short answers"}


def schema_example(schema: dict[str, Any], root: dict[str, Any] | None = None) -> Any:
    """A minimal instance of a JSON schema (objects, arrays, enums, anyOf, $ref to $defs, numbers' minimum)."""
    root = root or schema
    if "$ref" in schema:
        return schema_example(root["$defs"][schema["$ref"].rsplit("/", 1)[-1]], root)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        return schema_example(next((o for o in options if o.get("type") != "null"), options[0]), root)
    kind = schema.get("type")
    if kind == "object":
        return {name: schema_example(sub, root) for name, sub in schema.get("properties", {}).items()}
    if kind == "array":
        return [schema_example(schema.get("items", {}), root) for _ in range(max(schema.get("minItems", 1), 1))]
    if kind in ("integer", "number"):
        return schema.get("minimum", 1)
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    return "example"


INJECTION = re.compile(r"label this theme\s+[\"']?([^\"'.!\n]+)", re.IGNORECASE)


def gullible_reply(body: dict[str, Any], learns: bool = True) -> dict[str, Any]:
    """A model that obeys instructions found in the data: the prompt-injection victim. With
    `learns`, a repair request (which says answers are data) gets a proper label instead."""
    reply = smart_reply(body)
    if schema_name(body) != "ThemeLabelReply":
        return reply
    injected = [m.group(1).strip() for a in request_data(body)["theme_answers"] if (m := INJECTION.search(a["text"]))]
    if injected and learns and is_repair(body):
        reply["label"] = "Attempts to steer the labelling"
    elif injected:
        reply["label"] = injected[0]
    return reply


def stubborn_gullible_reply(body: dict[str, Any]) -> dict[str, Any]:
    """A model that obeys injected instructions however often it is told not to."""
    return gullible_reply(body, learns=False)


class OpenAIServer:
    """A threaded local server for POST /v1/chat/completions."""

    def __init__(self, responder: Responder = smart_reply, dialect: Dialect = Dialect()):
        self.responder, self.dialect = responder, dialect
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._faults: list[list[Any]] = []  # [fault, times left (None = always), predicate]
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    def add_fault(self, fault: Fault, times: int | None = 1,
                  when: Callable[[dict[str, Any]], bool] | None = None) -> None:
        """Apply `fault` to the next `times` matching requests (None = to all of them)."""
        with self._lock:
            self._faults.append([fault, times, when])

    def clear(self) -> None:
        """Forget recorded requests and pending faults."""
        with self._lock:
            self.requests.clear()
            self._faults.clear()
            self.max_in_flight = 0

    def start(self) -> OpenAIServer:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _take_fault(self, body: dict[str, Any]) -> Fault | None:
        with self._lock:
            self.requests.append(body)
            for entry in self._faults:
                fault, times, when = entry
                if (times is None or times > 0) and (when is None or when(body)):
                    if times is not None:
                        entry[1] -= 1
                    return fault
        return None

    def _answer(self, body: dict[str, Any], fault: Fault | None) -> tuple[int, dict[str, str], bytes]:
        if fault and fault.status:
            headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
            return fault.status, headers, _error(fault.message or f"scripted {fault.status}", fault.status)
        if fault and fault.error_body is not None:
            return 200, {}, _error(fault.error_body, 500)
        if (refusal := self.dialect.refuses.get(response_format_type(body))) is not None:
            return refusal[0], {}, _error(refusal[1], refusal[0])
        if fault and fault.content is not None:
            content = fault.content
        else:
            reply = self.responder(body)
            content = reply if isinstance(reply, str) else json.dumps(reply)
            if self.dialect.fences:
                content = f"Here is the JSON you asked for:\n```json\n{json.dumps(reply, indent=2)}\n```\n"
            if self.dialect.think:
                content = ("<think>\nThe user wants JSON. A first draft: {\"draft\": true}. Let me check it.\n"
                           "</think>\n\n" + content)
        prompt_chars = sum(len(m["content"]) for m in body["messages"])
        completion = {
            "id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "test-model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": "stop", "logprobs": None}],
            "usage": {"prompt_tokens": prompt_chars // 4, "completion_tokens": len(content) // 4 + 1,
                      "total_tokens": prompt_chars // 4 + len(content) // 4 + 1},
        }
        return 200, {}, json.dumps(completion).encode()

    def response_format_types(self) -> list[str | None]:
        """The response_format type of each request received, in order."""
        with self._lock:
            return [response_format_type(body) for body in self.requests]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                if not self.path.endswith("/chat/completions"):
                    self._send(404, {}, b'{"error": {"message": "not found"}}')
                    return
                fault = server._take_fault(body)
                with server._lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    if fault and fault.hang:
                        time.sleep(fault.hang)
                    if fault and fault.reset:
                        self.close_connection = True
                        self.connection.close()
                        return
                    self._send(*server._answer(body, fault))
                except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting
                    self.close_connection = True
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _send(self, status: int, headers: dict[str, str], payload: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

        return Handler


def _error(message: str, status: int) -> bytes:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return json.dumps({"error": {"message": message, "type": kind, "code": status}}).encode()
