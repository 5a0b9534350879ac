"""`flywheel report` on the shared finished run, opened in a real headless Chromium, and the
run's other views for people: `dvc metrics` / `dvc plots` across cycles, Prefect artifacts."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tasks.cli.app import app
from tests.conftest import REPO, dvc

runner = CliRunner()
PLOTS = ("metrics", "rows", "mix", "slices")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


class Page(HTMLParser):
    """What a reader of the page sees that the test checks: the cycle table's cells, the
    images with their load marks, the error box, and the body's marks."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.cells: dict[str, dict[str, Any]] = {}
        self.images: list[dict[str, str | None]] = []
        self.body: dict[str, str | None] = {}
        self.errors: dict[str, str | None] = {}
        self.error_text = ""
        self._row: str | None = None
        self._table: str | None = None
        self._in_errors = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "table":
            self._table = found.get("id")
        if tag == "tr" and "data-cycle" in found and self._table == "cycle-table":
            self._row = found["data-cycle"]
            self.cells[str(self._row)] = {}
        elif tag == "td" and self._row and "data-key" in found:
            self.cells[self._row][str(found["data-key"])] = json.loads(str(found["data-value"]))
        elif tag == "img":
            self.images.append(found)
        elif tag == "body":
            self.body = found
        elif tag == "pre" and found.get("id") == "page-errors":
            self.errors, self._in_errors = found, True

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._row = None
        if tag == "pre":
            self._in_errors = False

    def handle_data(self, data: str) -> None:
        if self._in_errors:
            self.error_text += data


def status_rows(run: Path) -> dict[str, dict[str, Any]]:
    result = runner.invoke(app, ["status", "--json", "--params", str(run / "params.yaml")])
    assert result.exit_code == 0, result.output
    # without `pushed`: the page and the artifacts show each cycle's published record, which
    # is written before its push (`flywheel status` adds it)
    rows = json.loads(result.stdout)
    return {row["cycle"]: {k: v for k, v in row.items() if k != "pushed"} for row in rows}


def chromium(page: Path, profile: Path, *extra: str) -> str:
    """Open `page` in Debian's headless Chromium; its stdout (the DOM after load, with
    --dump-dom). No network is reachable from the page: its own policy forbids every fetch."""
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("chromium is not installed: ./dev.sh test installs Debian's package")
    done = subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def report(finished_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "report.html"
    result = runner.invoke(
        app, ["report", "--out", str(out), "--params", str(finished_run / "params.yaml")]
    )
    assert result.exit_code == 0, result.output
    return out


def test_the_page_opens_in_chromium_with_no_error_every_plot_rendered_and_status_numbers(
    report: Path, finished_run: Path, tmp_path: Path
) -> None:
    page = Page(chromium(report, tmp_path / "profile", "--dump-dom"))
    assert page.body.get("data-checked") == "yes"  # the load handler ran
    assert page.error_text == "" and "hidden" in page.errors
    assert [img["id"] for img in page.images] == [f"plot-{name}" for name in PLOTS]
    for img in page.images:
        assert img["data-loaded"] == "yes", img["id"]
        assert int(str(img["data-natural-width"])) > 0
    assert page.cells == status_rows(finished_run)  # every field of every row, exactly


def test_the_check_in_the_page_reports_a_broken_image_and_any_fetch(
    report: Path, tmp_path: Path
) -> None:
    """The browser test can fail: a corrupt plot and a request for the network are reported."""
    html = report.read_text()
    start = html.index('src="data:image/png;base64,') + len('src="data:image/png;base64,')
    broken = html[:start] + "AAAA" + html[start + 4 :]
    broken = broken.replace("</body>", '<img id="remote" src="http://127.0.0.1:9/x.png"></body>')
    copy = tmp_path / "broken.html"
    copy.write_text(broken)
    page = Page(chromium(copy, tmp_path / "profile", "--dump-dom"))
    assert "hidden" not in page.errors
    assert "image did not load: plot-metrics" in page.error_text
    assert "blocked request: http://127.0.0.1:9/x.png" in page.error_text
    assert page.images[0]["data-loaded"] == "no"


def test_the_plots_lie_beside_the_page_as_the_same_png_files(report: Path) -> None:
    html = report.read_text()
    folder = report.parent / "report_plots"
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{n}.png" for n in PLOTS)
    for name in PLOTS:
        marker = f'id="plot-{name}" '
        tag = html[html.index(marker) :]
        data = tag[tag.index("base64,") + 7 : tag.index('"', tag.index("base64,"))]
        png = (folder / f"{name}.png").read_bytes()
        assert png.startswith(b"\x89PNG") and base64.b64decode(data) == png
    assert "http://" not in html and "https://" not in html  # nothing to fetch


def test_the_page_tells_each_decision_and_has_a_datasheet_per_snapshot(
    report: Path, finished_run: Path
) -> None:
    html = report.read_text()
    for cycle, row in status_rows(finished_run).items():
        assert f'id="datasheet-{cycle}"' in html
        assert row["reason"].replace(">", "&gt;") in html
        assert row["snapshot"] in html


def test_a_screenshot_for_the_readme_is_small(report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    chromium(report, tmp_path / "profile", "--window-size=1100,1500", f"--screenshot={shot}")
    assert shot.read_bytes().startswith(b"\x89PNG")
    assert shot.stat().st_size < 300_000
    docs = REPO / "docs" / "report.png"
    assert docs.read_bytes().startswith(b"\x89PNG") and docs.stat().st_size < 300_000


def _report(run: Path, out: Path) -> Any:
    return runner.invoke(app, ["report", "--out", str(out), "--params", str(run / "params.yaml")])


def test_a_path_it_cannot_write_as_asked_is_refused_and_nothing_is_touched(
    finished_run: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "reports"
    folder.mkdir()
    refused = _report(finished_run, folder)
    assert refused.exit_code == 2 and "is a directory" in refused.output
    assert list(folder.iterdir()) == []
    missing = _report(finished_run, tmp_path / "nowhere" / "r.html")
    assert missing.exit_code == 2 and "does not exist" in missing.output
    (tmp_path / "r_plots").write_text("mine")
    blocked = _report(finished_run, tmp_path / "r.html")
    assert blocked.exit_code == 2 and "is not a folder" in blocked.output
    assert (tmp_path / "r_plots").read_text() == "mine" and not (tmp_path / "r.html").exists()
    params = _report(finished_run, finished_run / "params.yaml")
    assert params.exit_code == 2 and "is the params file" in params.output


def test_a_users_files_in_the_plots_folder_are_kept(finished_run: Path, tmp_path: Path) -> None:
    plots = tmp_path / "mine_plots"
    plots.mkdir()
    (plots / "notes.txt").write_text("keep me")
    (tmp_path / "mine.html").write_text("old report")
    assert _report(finished_run, tmp_path / "mine.html").exit_code == 0
    assert (plots / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in plots.iterdir()) == sorted(
        ["notes.txt", *(f"{n}.png" for n in PLOTS)]
    )
    assert (tmp_path / "mine.html").read_text().startswith("<!doctype html>")


def test_dvc_shows_the_metrics_and_the_curves_across_cycles(
    finished_run: Path, tmp_path: Path
) -> None:
    run = shutil.copytree(finished_run, tmp_path / "repo", symlinks=True)
    rows = status_rows(run)
    clean = dvc(run, "status", "--json")
    assert clean.returncode == 0 and json.loads(clean.stdout) == {}  # the plots file is no out
    metrics = dvc(run, "metrics", "show", "--json")
    assert metrics.returncode == 0, metrics.stderr
    files = json.loads(metrics.stdout)[""]["data"]
    for cycle, row in rows.items():
        assert files[f"cycles/{cycle}/evaluation.json"]["data"]["metric"] == row["metric"]
        promotion = files[f"cycles/{cycle}/promotion.json"]["data"]
        assert promotion["champion"]["metric"] == row["champion_metric"]
    plots = dvc(run, "plots", "show", "--json")
    assert plots.returncode == 0, plots.stderr
    shown = json.loads(plots.stdout)["data"]

    def values(plot: str) -> list[dict[str, Any]]:
        (rendered,) = shown[plot]
        assert rendered["type"] == "vega" and rendered["revisions"] == ["workspace"]
        return rendered["content"]["data"]["values"]

    points = {(p["cycle"], p["field"]): p["dvc_inferred_y_value"] for p in values("cycle-metric")}
    for cycle, row in rows.items():
        index = int(cycle[1:])
        assert float(points[(index, "candidate")]) == row["metric"]
        assert float(points[(index, "champion")]) == row["champion_metric"]
    counts = {(p["cycle"], p["field"]): p["dvc_inferred_y_value"] for p in values("cycle-rows")}
    for cycle, row in rows.items():
        assert int(counts[(int(cycle[1:]), "accepted_rows")]) == row["accepted_rows"]
    repro = dvc(run, "repro", "--dry", "-P")
    assert repro.returncode == 0 and "Running stage" not in repro.stdout, repro.stdout


def test_each_cycle_published_its_status_row_as_a_prefect_artifact(
    finished_run: Path, prefect_api: str
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    rows = status_rows(finished_run)
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[f"cycle-{c}" for c in rows]))
        )
    for cycle, row in rows.items():
        published = [
            (json.loads(a.data) if isinstance(a.data, str) else a.data, str(a.description))
            for a in artifacts
            if a.key == f"cycle-{cycle}" and a.type == "table"
        ]
        # other tests' runs publish under the same keys: this run's row is among them
        descriptions = [d for table, d in published if table == [row]]
        assert descriptions, (cycle, published)
        assert all(str(row["reason"]) in d for d in descriptions)
