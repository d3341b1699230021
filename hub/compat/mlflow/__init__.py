"""The MLflow tracking REST API (``/api/2.0/mlflow/...``) on top of the hub's tracking app.

The unmodified ``mlflow`` client works against the hub with ``MLFLOW_TRACKING_URI=<hub URL>``
and ``MLFLOW_TRACKING_TOKEN=<hub token>``. An MLflow experiment is a hub project, an MLflow
run is a hub run: data logged through either API is one data set. What MLflow has and the hub's
run record does not (key/value tags, a soft-deleted state, experiment names that are not
project slugs, artifact files) lives in this app's own tables, beside the run or project it
belongs to. Views (``views.py``) parse MLflow's messages and call ``services``/``selectors``
here, which call the tracking app's services and selectors for everything a hub run holds.

The routes follow MLflow's contract, not the hub's: they are left out of the hub's OpenAPI
schema, and their errors use MLflow's shape ``{"error_code": ..., "message": ...}``.
"""
