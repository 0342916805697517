"""The lazy mode's ranker: BM25 over names, descriptions and parameter names, on its own and over
a 1,000-tool catalog (20 third-party-style servers x 50 tools plus the built-ins)."""

from __future__ import annotations

import time
from typing import Any, cast

import pytest

from aggregator import lazy
from aggregator.catalog import Snapshot, ToolEntry
from aggregator.principal import MASTER, Principal, Toolset
from aggregator.protocol import jsonrpc
from aggregator.protocol.jsonrpc import RpcError
from aggregator.search import Bm25Index, terms
from tests.support.big_catalog import catalog_tools


@pytest.fixture(scope="module")
def big() -> Snapshot:
    snapshot = Snapshot()
    for name, wire in catalog_tools().items():
        snapshot.tools[name] = ToolEntry(name, cast(Any, None), name.split("-", 1)[1], wire)
    return snapshot


def top(snapshot: Snapshot, query: str, principal: Principal = MASTER, limit: int = 3) -> list[str]:
    found = lazy.search(snapshot, principal, query, limit)["structuredContent"]["tools"]
    return [t["name"] for t in found]


def test_terms_split_names_stem_plurals_and_drop_stopwords() -> None:
    assert terms("put_object uploadFiles to the Buckets") == ["put", "object", "upload", "file", "bucket"]
    assert terms("Forecasting next month's sales") == ["forecast", "next", "month", "sale"]


def test_bm25_ranks_the_document_that_matches_more_rare_terms_first() -> None:
    index = Bm25Index.build(
        [
            ("a", [("send an email message", 1)]),
            ("b", [("send a chat message to a channel", 1)]),
            ("c", [("delete a channel", 1)]),
        ]
    )
    assert [k for k, _ in index.search("message a channel", 3)] == ["b", "c", "a"]
    assert index.search("nothing matches", 3) == []
    assert [k for k, _ in index.search("channel", 3, admit=lambda key: key != "b")] == ["c"]


def test_the_catalog_has_over_a_thousand_tools(big: Snapshot) -> None:
    assert len(big.tools) >= 1000


def test_upload_a_file_finds_storage_put_object_in_the_top_three(big: Snapshot) -> None:
    assert "storage-put_object" in top(big, "upload a file")


def test_predict_next_months_sales_finds_forecast_univariate_in_the_top_three(big: Snapshot) -> None:
    assert "forecast-univariate" in top(big, "predict next month's sales")


def test_search_never_shows_a_tool_outside_the_callers_view(big: Snapshot) -> None:
    scoped = Principal(name="k", allowed_tools=("gdrive-*", "storage-*"), toolset=Toolset("t", ("storage-*",)))
    found = top(big, "upload a file", scoped, limit=10)
    assert found and all(n.startswith("storage-") for n in found)


def test_search_over_a_thousand_tools_costs_under_two_milliseconds_of_cpu(big: Snapshot) -> None:
    lazy.index_for(big)  # built once per snapshot
    queries = ["upload a file", "predict next month's sales", "create a jira ticket", "send an email"]
    started = time.process_time()
    for _ in range(50):
        for query in queries:
            lazy.search(big, MASTER, query, 8)
    per_search = (time.process_time() - started) / (50 * len(queries))
    assert per_search < 0.002


def test_describe_returns_full_contracts_and_names_the_nearest_for_an_unknown_tool(big: Snapshot) -> None:
    described = lazy.describe(big, MASTER, ["storage-put_object"])["structuredContent"]["tools"]
    assert described[0]["inputSchema"]["properties"]["bucket"]
    with pytest.raises(RpcError) as unknown:
        lazy.describe(big, MASTER, ["storage-put_objet"])
    assert unknown.value.code == jsonrpc.INVALID_PARAMS
    assert "storage-put_object" in unknown.value.data["nearest"]


@pytest.mark.parametrize("arguments", [{"query": ""}, {"query": "x", "limit": 0}, {"query": 3}])
def test_search_refuses_bad_input_naming_the_field(big: Snapshot, arguments: dict[str, Any]) -> None:
    with pytest.raises(RpcError) as bad:
        lazy.search(big, MASTER, arguments.get("query"), arguments.get("limit"))
    assert bad.value.code == jsonrpc.INVALID_PARAMS and bad.value.data["field"] in arguments
