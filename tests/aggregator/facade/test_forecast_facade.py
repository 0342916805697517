"""The forecast HTTP face over real HTTP on loopback, routed onto the forecast tools."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx2
import numpy as np
import pytest
from starlette.applications import Starlette

from aggregator.config import FacadesConfig
from aggregator.facade import FACADE_MODULES
from aggregator.facade import forecast as forecast_facade
from aggregator.facade.base import DirectFacadeContext
from aggregator.principal import Principal
from servers.kit import Domain
from tests.servers.forecast.conftest import make_domain
from tests.support.asgi import serve_asgi

pytestmark = pytest.mark.anyio

MASTER = {"authorization": "Bearer test-master"}
SERIES = [float(v) for v in np.tile([3.0, 9, 4, 1, 7], 5)]


@pytest.fixture(scope="module")
def domain(tmp_path_factory: pytest.TempPathFactory) -> Domain:
    return make_domain(tmp_path=tmp_path_factory.mktemp("facade-data"))


@pytest.fixture
def facades() -> FacadesConfig:
    return FacadesConfig()


@pytest.fixture
async def client(domain: Domain, facades: FacadesConfig) -> AsyncIterator[httpx2.AsyncClient]:
    keys = {"only-list": Principal(name="lister", allowed_tools=("forecast-list_models",))}
    ctx = DirectFacadeContext({"forecast": domain}, keys=keys, facades=facades)
    app = Starlette(routes=forecast_facade.routes(ctx))
    async with serve_asgi(app) as url, httpx2.AsyncClient(base_url=url, headers=MASTER, timeout=30) as http:
        yield http


def test_the_hub_mounts_the_forecast_facade() -> None:
    assert "aggregator.facade.forecast" in FACADE_MODULES


async def test_post_forecast_returns_the_tool_result(client: httpx2.AsyncClient) -> None:
    body = {"context": [SERIES], "horizon": 5, "season_length": 5, "model": "SeasonalNaive"}
    response = await client.post("/forecast/v1/univariate/forecast", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    data = response.json()
    assert data["model"] == "SeasonalNaive"
    assert data["forecasts"][0]["median"] == [3.0, 9.0, 4.0, 1.0, 7.0]


async def test_post_ensemble_uses_the_default_ensemble_unless_members_are_named(client: httpx2.AsyncClient) -> None:
    response = await client.post("/forecast/v1/univariate/forecast/ensemble", json={"context": [SERIES], "horizon": 2})
    assert response.status_code == 200, response.text
    assert response.json()["members"] == ["AutoETS", "AutoARIMA", "AutoTheta"]
    named = {"context": [SERIES], "horizon": 2, "weights": {"Naive": 1, "HistoricAverage": 3}}
    response = await client.post("/forecast/v1/univariate/forecast/ensemble", json=named)
    data = response.json()
    assert data["weights"] == {"Naive": 0.25, "HistoricAverage": 0.75}
    assert set(data["individual"]) == {"Naive", "HistoricAverage"}


async def test_ensemble_route_refuses_a_single_model(client: httpx2.AsyncClient) -> None:
    body = {"context": [SERIES], "horizon": 2, "model": "Naive"}
    response = await client.post("/forecast/v1/univariate/forecast/ensemble", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "model"


async def test_multivariate_and_samples_routes_reach_their_tools(client: httpx2.AsyncClient) -> None:
    rng = np.random.default_rng(0)
    channels = [rng.normal(size=40).tolist(), rng.normal(size=40).tolist()]
    multi = await client.post(
        "/forecast/v1/multivariate/forecast", json={"context": [channels], "horizon": 2, "model": "VAR"}
    )
    assert multi.status_code == 200, multi.text
    assert len(multi.json()["forecasts"][0]) == 2
    body = {"context": [SERIES], "horizon": 2, "model": "Naive", "num_samples": 7, "seed": 1}
    samples = await client.post("/forecast/v1/samples/forecast", json=body)
    assert len(samples.json()["forecasts"][0]["samples"]) == 7


async def test_get_models_lists_the_types_models(client: httpx2.AsyncClient) -> None:
    response = await client.get("/forecast/v1/covariates/models")
    assert response.status_code == 200
    data = response.json()
    assert data["type"] == "covariates"
    assert {"ARIMAX", "VARX"} <= {m["name"] for m in data["models"]}


async def test_backtest_route_scores_models(client: httpx2.AsyncClient) -> None:
    body = {"context": [SERIES], "horizon": 5, "season_length": 5, "models": ["SeasonalNaive", "Naive"], "windows": 2}
    response = await client.post("/forecast/v1/univariate/backtest", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["best"] == "SeasonalNaive"
    contradicting = await client.post("/forecast/v1/univariate/backtest", json={**body, "type": "multivariate"})
    assert contradicting.status_code == 400 and contradicting.json()["error"]["field"] == "type"


async def test_nan_in_the_body_is_a_400_naming_the_field(client: httpx2.AsyncClient) -> None:
    raw = b'{"context": [[1.0, NaN, 3.0]], "horizon": 1}'  # what Python's json.dumps writes for nan
    response = await client.post(
        "/forecast/v1/univariate/forecast", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["field"] == "context.0.1" and error["code"] == "invalid_argument"
    assert error["request_id"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"context": [[1.0, 2.0]], "horizon": 0}, "horizon"),
        ({"context": [[1.0, 2.0]], "horizon": 1, "model": "Nope"}, "model"),
        ({"context": [[1.0, 2.0]], "horizon": 1, "weights": {"VAR": 1}}, "weights.VAR"),
    ],
)
async def test_bad_arguments_are_400_with_the_field(
    client: httpx2.AsyncClient, body: dict[str, Any], field: str
) -> None:
    response = await client.post("/forecast/v1/univariate/forecast", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["field"] == field


async def test_an_unavailable_foundation_model_is_503(client: httpx2.AsyncClient) -> None:
    response = await client.post(
        "/forecast/v1/univariate/forecast", json={"context": [[1.0, 2.0, 3.0]], "horizon": 1, "model": "TimesFM"}
    )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "unavailable"


async def test_requests_without_a_valid_key_are_401(client: httpx2.AsyncClient) -> None:
    body = {"context": [[1.0, 2.0]], "horizon": 1}
    missing = await client.post("/forecast/v1/univariate/forecast", json=body, headers={"authorization": ""})
    wrong = await client.post("/forecast/v1/univariate/forecast", json=body, headers={"authorization": "Bearer nope"})
    assert missing.status_code == 401 and wrong.status_code == 401


async def test_a_key_scoped_to_listing_cannot_forecast(client: httpx2.AsyncClient) -> None:
    scoped = {"authorization": "Bearer only-list"}
    assert (await client.get("/forecast/v1/univariate/models", headers=scoped)).status_code == 200
    body = {"context": [[1.0, 2.0]], "horizon": 1}
    response = await client.post("/forecast/v1/univariate/forecast", json=body, headers=scoped)
    assert response.status_code == 404


async def test_unknown_types_are_404_and_wrong_bodies_400(client: httpx2.AsyncClient) -> None:
    unknown = await client.post("/forecast/v1/hourly/forecast", json={"context": [[1.0]], "horizon": 1})
    assert unknown.status_code == 404 and "univariate" in unknown.json()["error"]["message"]
    assert (await client.post("/forecast/v1/samples/backtest", json={})).status_code == 404
    not_json = await client.post("/forecast/v1/univariate/forecast", content=b"{nope")
    assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["error"]["message"]
    a_list = await client.post("/forecast/v1/univariate/forecast", json=[1, 2])
    assert a_list.status_code == 400


async def test_bodies_over_the_limit_are_413(
    client: httpx2.AsyncClient, facades: FacadesConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(facades.forecast, "max_body_bytes", 1000)
    body = {"context": [[1.0] * 500], "horizon": 1}
    response = await client.post("/forecast/v1/univariate/forecast", json=body)
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"


async def test_a_slow_call_is_answered_504(
    client: httpx2.AsyncClient, facades: FacadesConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(facades.forecast, "timeout", 0.0)  # expired before the first fit starts
    body = {"context": [[1.0, 2.0]], "horizon": 1, "model": "Naive"}
    response = await client.post("/forecast/v1/univariate/forecast", json=body)
    assert response.status_code == 504 and response.json()["error"]["code"] == "timeout"
