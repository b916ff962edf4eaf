"""``oml report RUN_DIR``: one self-contained HTML page about a training run (plots drawn with matplotlib,
images embedded as data URIs, no script or file from elsewhere).

Example:
    >>> from oml_core.report import write_report
    >>> write_report("runs/tiny-train-20260101-120000-000000")   # doctest: +SKIP
    PosixPath('runs/tiny-train-20260101-120000-000000/report.html')
"""

from oml_core.report.analysis import RetrievalAnalysis, analyse
from oml_core.report.data import ReportError, RunData, load_run_data
from oml_core.report.page import write_report

__all__ = ["ReportError", "RetrievalAnalysis", "RunData", "analyse", "load_run_data", "write_report"]
