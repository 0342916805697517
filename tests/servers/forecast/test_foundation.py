"""Foundation-model plugins: detected (package, local weights), listed with a status, used when ready."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from servers.kit import Domain
from tests.servers.forecast.conftest import call, fail, make_domain

pytestmark = pytest.mark.anyio

TOY_PACKAGE = '''
import numpy as np


class Toy:
    """Forecasts the last value plus an offset read from its weights directory."""

    def __init__(self, weights):
        self.offset = float((weights / "offset.txt").read_text())

    def predict_quantiles(self, context, horizon, quantile_levels):
        mean = np.full(horizon, context[-1] + self.offset)
        return mean, np.array([mean + (q - 0.5) for q in quantile_levels])

    def sample(self, context, horizon, num_samples, seed):
        rng = np.random.default_rng(seed)
        return context[-1] + self.offset + rng.normal(size=(num_samples, horizon))


def load(weights):
    if not (weights / "offset.txt").exists():
        raise RuntimeError("weights directory has no offset.txt")
    return Toy(weights)
'''


def toy_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, package: str, *, weights: bool) -> Domain:
    (tmp_path / "site" / package).mkdir(parents=True)
    (tmp_path / "site" / package / "__init__.py").write_text(TOY_PACKAGE)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    weights_dir = tmp_path / "weights"
    if weights:
        weights_dir.mkdir()
        (weights_dir / "offset.txt").write_text("10")
    plugin = {
        "name": "ToyFM",
        "package": package,
        "loader": f"{package}:load",
        "weights": str(weights_dir),
        "samples": True,
    }
    return make_domain({"foundation_models": [plugin]}, tmp_path)


def model_entry(listing: dict, name: str, forecast_type: str = "univariate") -> dict:
    (entry,) = [t for t in listing["types"] if t["type"] == forecast_type]
    (model,) = [m for m in entry["models"] if m["name"] == name]
    return model


@pytest.mark.parametrize(("name", "package"), [("Chronos", "chronos"), ("TimesFM", "timesfm"), ("Moirai", "uni2ts")])
async def test_builtin_foundation_models_report_why_they_cannot_run(tmp_path: Path, name: str, package: str) -> None:
    key = "moirai" if package == "uni2ts" else package
    domain = make_domain({"foundation_weights": {key: str(tmp_path / "w")}}, tmp_path)
    model = model_entry(await call(domain, "list_models", {}), name)
    assert model["kind"] == "foundation" and model["available"] is False
    if importlib.util.find_spec(package) is None:
        assert model["status"].startswith("not installed (pip install ")
    else:
        assert model["status"] == f"no local weights at {tmp_path / 'w'}"
    error = await fail(domain, "univariate", {"context": [[1.0, 2, 3]], "horizon": 1, "model": name})
    assert error.code == "unavailable" and error.field == "model"
    assert model["status"] in error.message


async def test_without_weights_an_installed_plugin_says_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    domain = toy_plugin(tmp_path, monkeypatch, "toyfm_noweights", weights=False)
    model = model_entry(await call(domain, "list_models", {"type": "univariate"}), "ToyFM")
    assert model["status"] == f"no local weights at {tmp_path / 'weights'}"
    error = await fail(domain, "univariate", {"context": [[1.0, 2, 3]], "horizon": 1, "model": "ToyFM"})
    assert error.code == "unavailable"


async def test_a_plugin_with_package_and_weights_forecasts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    domain = toy_plugin(tmp_path, monkeypatch, "toyfm_ready", weights=True)
    listing = await call(domain, "list_models", {})
    assert model_entry(listing, "ToyFM")["status"] == "ready"
    assert model_entry(listing, "ToyFM", "samples")["supports"]["samples"] is True
    out = await call(domain, "univariate", {"context": [[1.0, 2, 3]], "horizon": 2, "model": "toyfm"})
    assert out["model"] == "ToyFM"
    assert out["forecasts"][0]["median"] == [13.0, 13.0]
    assert out["forecasts"][0]["quantiles"]["0.9"] == [13.4, 13.4]
    mixed = await call(domain, "univariate", {"context": [[1.0, 2, 3]], "horizon": 1, "ensemble": ["ToyFM", "Naive"]})
    assert mixed["forecasts"][0]["median"] == [8.0]
    paths = await call(domain, "samples", {"context": [[1.0, 2, 3]], "horizon": 1, "model": "ToyFM", "num_samples": 50})
    assert len(paths["forecasts"][0]["samples"]) == 50


async def test_a_plugin_whose_loader_fails_is_reported_and_then_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    domain = toy_plugin(tmp_path, monkeypatch, "toyfm_broken", weights=False)
    (tmp_path / "weights").mkdir()  # present, but without the file the loader needs
    error = await fail(domain, "univariate", {"context": [[1.0, 2, 3]], "horizon": 1, "model": "ToyFM"})
    assert "weights directory has no offset.txt" in error.message
    model = model_entry(await call(domain, "list_models", {}), "ToyFM")
    assert model["status"] == "failed to load: RuntimeError: weights directory has no offset.txt"
    again = await fail(domain, "univariate", {"context": [[1.0, 2, 3]], "horizon": 1, "model": "ToyFM"})
    assert again.code == "unavailable"
