"""Schemathesis hooks for .ci/schemathesis: the rules of the API that OpenAPI cannot state.

Every rule a single parameter or field can carry is in the document (patterns, bounds,
enums, formats), and schemathesis checks the server against it. What spans several
parameters, or depends on what the service gave out earlier, is in the operations'
descriptions instead, answered with 400, and kept here: positive cases (those that
schemathesis expects to be accepted) are brought within these rules before they are
sent. Negative cases are left alone.
"""

from __future__ import annotations

import binascii
import itertools
import re
from datetime import date, datetime, timedelta, timezone

import schemathesis

MAX_REPORT_DAYS = 3660
DEFAULT_REPORT_DAYS = 30


def _is_positive(case) -> bool:
    meta = case.meta
    return meta is not None and meta.generation.mode.is_positive


# GET /usage: `from` or `days`, not both; the range [from, to) must not end before it
# starts, must lie within 1970-9998 and span at most 3660 days (`service::money::usage`).


def _instant(raw: str, end: bool) -> datetime | None:
    raw = raw.strip()
    try:
        day = date.fromisoformat(raw) if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw) else None
    except ValueError:
        day = None
    if day is not None:
        if end:
            if day == date.max:
                return None
            day += timedelta(days=1)
        return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    try:
        moment = datetime.fromisoformat(raw.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:
        return None


def _usage_range_is_valid(query: dict) -> bool:
    if "from" in query and "days" in query:
        return False
    now = datetime.now(timezone.utc)
    to = _instant(str(query["to"]), end=True) if "to" in query else now
    if to is None:
        return True  # not a cross-parameter matter: the document's format decides
    if "from" in query:
        start = _instant(str(query["from"]), end=False)
        if start is None:
            return True
    else:
        try:
            days = int(query.get("days", DEFAULT_REPORT_DAYS))
        except ValueError:
            return True
        try:
            start = to - timedelta(days=days)
        except OverflowError:
            return False  # the range would begin before year 1: outside 1970-9998
    return (
        start <= to
        and start.year >= 1970
        and to.year <= 9998
        and to - start <= timedelta(days=MAX_REPORT_DAYS)
    )


def _fit_usage_range(query: dict) -> None:
    # Drop what breaks the range, least informative first; with none of them, the
    # report covers the last 30 days, which is always valid.
    for name in ("days", "from", "to"):
        if _usage_range_is_valid(query):
            return
        query.pop(name, None)


# GET /conversations/{id}/messages: `before_seq` pages backwards, `after_seq` forwards;
# not both.


def _fit_history_direction(query: dict) -> None:
    if "before_seq" in query and "after_seq" in query:
        query.pop("after_seq")


# GET /conversations: `player_id`, `character_id` or both; a list of everything is not
# offered (400).


def _fit_list_owner(query: dict) -> None:
    if "player_id" not in query and "character_id" not in query:
        query["player_id"] = "schemathesis-player"


# Paging cursors are opaque: only those the service gave are valid. A drawn one could be
# any hex; keep it only if it reads as one the service could have made
# (`service::conversations::ListCursor`, `service::money::budgets::BudgetCursor`).

_LIST_CURSOR = re.compile(r"-?\d{1,18}:(.+)", re.DOTALL)
_BUDGET_CURSOR = re.compile(r"\d{1,15}(?:\.\d{1,6})?\|(.+)", re.DOTALL)


def _decoded(cursor: object) -> str | None:
    try:
        return binascii.unhexlify(str(cursor)).decode("utf-8")
    except (binascii.Error, ValueError):
        return None


def _id_pattern(case) -> re.Pattern:
    # The id rule as the document states it (`GameId`), rather than a copy.
    game_id = case.operation.schema.raw_schema["components"]["schemas"]["GameId"]
    return re.compile(game_id["pattern"].rstrip("$") + r"\Z")


def _is_service_cursor(cursor: object, shape: re.Pattern, game_id: re.Pattern) -> bool:
    text = _decoded(cursor)
    match = shape.fullmatch(text) if text is not None else None
    return bool(match and len(match.group(1)) <= 64 and game_id.match(match.group(1)))


def _fit_cursor(case, shape: re.Pattern) -> None:
    query = case.query
    if "cursor" in query and not _is_service_cursor(query["cursor"], shape, _id_pattern(case)):
        query.pop("cursor")


# POST /conversations/{id}/messages[/stream]: an Idempotency-Key names one request; the
# same key with another body is refused (422, documented). Positive cases get a key of
# their own, still within the document's pattern.

_keys_used = itertools.count(1)


def _fit_idempotency_key(headers: dict) -> None:
    for name in list(headers):
        if name.lower() == "idempotency-key":
            key = str(headers[name])[:100]
            headers[name] = f"{key}-{next(_keys_used)}"


# POST /conversations/{id}/import: each `client_id` once per batch, times not decreasing,
# from 1970 to now (`service::import`). Times before the conversation's last message are
# a conflict with its state (409), which schemathesis accepts.

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _import_time(raw: object) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(raw).replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:
        # Its offset takes it past year 1 or 9999 in UTC: out of range whichever way.
        return _EPOCH if moment.year < 1970 else datetime.now(timezone.utc)


def _fit_import(body: object) -> None:
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list):
        return
    now = datetime.now(timezone.utc) - timedelta(seconds=1)
    seen: set[str] = set()
    times = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            continue
        client_id = message.get("client_id")
        if isinstance(client_id, str) and client_id in seen:
            message["client_id"] = f"{client_id[:50]}~{index}"
        seen.add(str(message.get("client_id")))
        moment = _import_time(message.get("created_at"))
        if moment is not None:
            times.append((message, min(max(moment, _EPOCH), now)))
    for message, moment in zip([m for m, _ in times], sorted(t for _, t in times)):
        message["created_at"] = moment.isoformat().replace("+00:00", "Z")


# POST /events: a client_event_id names one event (another under it is a conflict, 409),
# so each case gets its own.

_event_ids = itertools.count()


def _fit_event(body: object) -> None:
    if not isinstance(body, dict):
        return
    client_event_id = body.get("client_event_id")
    if isinstance(client_event_id, str) and client_event_id:
        body["client_event_id"] = f"{client_event_id[:40]}~{next(_event_ids)}"


def _positive_or_stateful(case) -> bool:
    """Stateful scenarios carry no generation mode, yet expect acceptance."""
    try:
        return case.meta.generation.mode.is_positive
    except AttributeError:
        return True


@schemathesis.hook
def map_case(context, case):
    path = case.operation.path
    # Stateful scenarios carry no generation mode, yet expect acceptance. Fitting an
    # import only reorders its times and renames repeated ids: a body the document
    # forbids stays forbidden, so every case is fitted.
    if path == "/conversations/{conversation_id}/import":
        _fit_import(case.body)
        return case
    if path == "/events" and case.method.upper() == "POST":
        if _positive_or_stateful(case):
            _fit_event(case.body)
        return case
    if not _is_positive(case):
        return case
    if case.headers and path.startswith("/conversations/{conversation_id}/messages"):
        _fit_idempotency_key(case.headers)
    if case.query is None and path == "/conversations" and case.method.upper() == "GET":
        case.query = {}
    if case.query is None:
        return case
    if path == "/usage":
        _fit_usage_range(case.query)
    elif path == "/conversations/{conversation_id}/messages" and case.method.upper() == "GET":
        _fit_history_direction(case.query)
    elif path == "/conversations" and case.method.upper() == "GET":
        _fit_list_owner(case.query)
        _fit_cursor(case, _LIST_CURSOR)
    elif path == "/usage/budgets":
        _fit_cursor(case, _BUDGET_CURSOR)
    return case
