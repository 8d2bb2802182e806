"""nbtrack as MLflow's backend: real ``import mlflow`` code writes into an nbtrack store.

With ``mlflow`` installed, pyproject's entry points register, for MLflow to load on use:

=================================  ======================================================
``mlflow.tracking_store``          ``nbtrack`` URIs: tracking_store.NbtrackTrackingStore
``mlflow.model_registry_store``    ``nbtrack`` URIs: registry_store.NbtrackRegistryStore
``mlflow.artifact_repository``     ``nbtrack-artifacts`` URIs (a run's files), and ``runs``
                                   (MLflow's, reading nbtrack runs directly): artifact_repo
``mlflow.run_context_provider``    the notebook and ``%%track`` cell: context.NbtrackRunContext
=================================  ======================================================

::

    import mlflow

    mlflow.set_tracking_uri("nbtrack:.nbtrack")  # or MLFLOW_TRACKING_URI=nbtrack:...
    with mlflow.start_run():
        mlflow.log_param("alpha", 0.5)
        mlflow.log_metric("rmse", 0.78)

Nothing here is imported by ``import nbtrack``: MLflow stays an optional extra.
"""
