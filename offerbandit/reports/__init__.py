"""Reports read from the decision log and the registry: exploration outside each customer's history,
per-version reports in MLflow, evaluation runs, and their plots. Import the module you need
(``offerbandit.reports.exploration``, ``.versions``, ``.evaluation_runs``, ``.plots``); nothing is loaded
here, so importing one report does not import matplotlib or MLflow for the others."""

__all__: list[str] = []
