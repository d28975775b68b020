"""Render a report notebook: papermill executes it in an explicit kernel with a per-cell time
limit, nbconvert turns it into HTML without code cells, and the notebook's own headline JSON
(and the billing CSV) are kept beside the executed notebook.

All of it is written into a hidden temporary folder inside the output folder and renamed into
place only when every part exists, so a failing notebook leaves no half-written report; the
error names the cell that failed (its tag `cell:<name>` and position) and what it raised.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.config import ReportSettings
from core.errors import ConfigurationError, KommoAgentError
from core.logging import get_logger

log = get_logger(__name__)
KINDS = {"usage": "usage_report.ipynb", "billing": "billing_report.ipynb"}
DEFAULT_NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


class ReportFailed(KommoAgentError):
    code = "report_failed"


@dataclass(frozen=True)
class RenderedReport:
    kind: str
    folder: Path
    html: Path
    notebook: Path
    headline: dict[str, Any]
    csv: Path | None


def report_name(kind: str, params: dict[str, Any]) -> str:
    org = params.get("org_id") or "all"
    period = params.get("month") or f"{params.get('start')}_{params.get('end')}"
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in f"{kind}_{org}_{period}")
    return safe[:120]


def _cell_name(notebook_path: Path, index: int | None) -> str:
    if index is None:
        return "unknown cell"
    try:
        cells = json.loads(notebook_path.read_text(encoding="utf-8"))["cells"]
        # papermill numbers cells before it inserted its own error banners into the output.
        cells = [c for c in cells if "papermill-error-cell-tag" not in c.get("metadata", {}).get("tags", [])]
        tags = cells[index].get("metadata", {}).get("tags", [])
    except (OSError, ValueError, KeyError, IndexError):
        tags = []
    name = next((t.split(":", 1)[1] for t in tags if t.startswith("cell:")), None)
    return f"cell {name!r}" if name else f"cell number {index}"


def check_kernel(name: str) -> None:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel  # noqa: PLC0415 - jupyter loads on use

    try:
        KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel:
        raise ConfigurationError(f"Jupyter kernel {name!r} is not installed: run scripts/bootstrap.sh "
                                 f"(it installs the project's kernel) or set REPORT_KERNEL", kernel=name) from None


def render_report(kind: str, params: dict[str, Any], settings: ReportSettings, out_dir: Path) -> RenderedReport:
    """Execute the `kind` notebook with `params` and publish it as `out_dir/<name>/` (replacing
    an earlier render of the same report). Blocking: callers run it in a thread or a task."""
    # papermill and nbconvert are heavy imports (and pull in the Jupyter stack): only here.
    import papermill  # noqa: PLC0415 - see above
    from nbclient.exceptions import CellTimeoutError, DeadKernelError  # noqa: PLC0415 - see above
    from nbconvert import HTMLExporter  # noqa: PLC0415 - see above
    from papermill.exceptions import PapermillExecutionError  # noqa: PLC0415 - see above

    if kind not in KINDS:
        raise ReportFailed(f"no report {kind!r}; one of {', '.join(KINDS)}")
    source = (settings.notebooks_dir or DEFAULT_NOTEBOOKS) / KINDS[kind]
    if not source.exists():
        raise ConfigurationError(f"report notebook {source} is missing (set REPORT_NOTEBOOKS_DIR)")
    check_kernel(settings.kernel)
    out_dir = out_dir.resolve()  # the kernel runs in the work folder: a relative path would land inside it
    out_dir.mkdir(parents=True, exist_ok=True)
    name = report_name(kind, params)
    work = out_dir / f".tmp-{name}-{uuid.uuid4().hex[:8]}"
    work.mkdir()
    executed = work / f"{kind}_report.ipynb"
    try:
        try:
            papermill.execute_notebook(
                str(source), str(executed), parameters={**params, "output_dir": str(work)},
                kernel_name=settings.kernel, execution_timeout=settings.cell_timeout_s, progress_bar=False,
                log_output=False, cwd=str(work), report_mode=False)
        except PapermillExecutionError as exc:
            where = _cell_name(executed, exc.cell_index)  # papermill wrote it, up to the failure
            raise ReportFailed(f"the {kind} report failed in {where}: {exc.ename}: {exc.evalue}",
                               cell=where, error=exc.ename) from None
        except CellTimeoutError:
            raise ReportFailed(f"the {kind} report ran out of time: a cell took longer than "
                               f"{settings.cell_timeout_s} s (REPORT_CELL_TIMEOUT_S)", error="timeout") from None
        except DeadKernelError as exc:
            raise ReportFailed(f"the {kind} report's kernel died: {exc}", error="dead_kernel") from None
        headline_path = work / "headline.json"
        if not headline_path.exists():
            raise ReportFailed(f"the {kind} report wrote no headline.json", error="no_headline")
        html, _ = HTMLExporter(exclude_input=True, exclude_input_prompt=True,
                               exclude_output_prompt=True).from_filename(str(executed))
        (work / f"{kind}_report.html").write_text(html, encoding="utf-8")
        final = out_dir / name
        if final.exists():
            old = out_dir / f".old-{name}-{uuid.uuid4().hex[:8]}"
            os.replace(final, old)
            os.replace(work, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(work, final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    csv = final / "invoice_lines.csv"
    log.info("report_rendered", kind=kind, folder=str(final))
    return RenderedReport(kind=kind, folder=final, html=final / f"{kind}_report.html",
                          notebook=final / f"{kind}_report.ipynb",
                          headline=json.loads((final / "headline.json").read_text(encoding="utf-8")),
                          csv=csv if csv.exists() else None)
