"""Time-series forecasting: statsforecast / statsmodels models, quantiles, weighted ensembles, backtests."""
