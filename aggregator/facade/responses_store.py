"""Where `/v1/responses` keeps responses for `previous_response_id`, retrieval and input items.

`ResponseStore` is the interface (a PostgreSQL store for several hub replicas can implement it
next to this one); `SQLiteResponseStore` is the embedded default, one file in the data dir
(`responses.sqlite3`), or memory when the facade has no data dir. Each row is one response as
JSON: the response object, its input items, and the whole conversation up to and including it,
so a follow-up needs one read however long the chain. Rows belong to the key that created them:
another key reads them as absent.

SQLite calls are short and local; they run on the event loop (a thread hop would cost more than
the query).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson

FILE_NAME = "responses.sqlite3"


@dataclass(frozen=True)
class StoredResponse:
    response: dict[str, Any]
    input_items: list[dict[str, Any]]
    conversation: list[dict[str, Any]]  # every item so far: earlier turns, this input, this output


class ResponseStore(Protocol):
    def put(self, owner: str, stored: StoredResponse) -> None: ...

    def get(self, owner: str, response_id: str) -> StoredResponse | None: ...

    def delete(self, owner: str, response_id: str) -> bool: ...


class SQLiteResponseStore:
    def __init__(self, path: Path | None) -> None:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(":memory:" if path is None else str(path), check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # No fsync per response: WAL with synchronous=NORMAL survives a crash of the hub, and at worst
        # loses the last responses on a power cut (a client then gets a 404 for previous_response_id).
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS responses ("
            " id TEXT PRIMARY KEY, owner TEXT NOT NULL, created_at REAL NOT NULL, data BLOB NOT NULL)"
        )
        self._db.commit()

    def put(self, owner: str, stored: StoredResponse) -> None:
        data = orjson.dumps(
            {"response": stored.response, "input_items": stored.input_items, "conversation": stored.conversation}
        )
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO responses (id, owner, created_at, data) VALUES (?, ?, ?, ?)",
                (stored.response["id"], owner, time.time(), data),
            )

    def get(self, owner: str, response_id: str) -> StoredResponse | None:
        row = self._db.execute("SELECT data FROM responses WHERE id = ? AND owner = ?", (response_id, owner)).fetchone()
        if row is None:
            return None
        data = orjson.loads(row[0])
        return StoredResponse(data["response"], data["input_items"], data["conversation"])

    def delete(self, owner: str, response_id: str) -> bool:
        with self._db:
            cursor = self._db.execute("DELETE FROM responses WHERE id = ? AND owner = ?", (response_id, owner))
        return cursor.rowcount > 0

    def close(self) -> None:
        self._db.close()


def open_store(data_dir: Path | None) -> SQLiteResponseStore:
    return SQLiteResponseStore(None if data_dir is None else data_dir / FILE_NAME)
