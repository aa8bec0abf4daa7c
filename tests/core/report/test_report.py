"""`stseg report`: a synthetic run fused by the real stage; the page holds eval/'s numbers as written, one overlay
per selected video, no external URL; no ground truth → agreement, said so; bad input → one line or a page note."""

import io
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from stseg_core.errors import BadInputError, MissingArtifactError
from stseg_core.report.build import ReportConfig, build_report
from stseg_core.report.images import TITLE_HEIGHT
from stseg_core.store import open_store

SEED = 5


class Page(HTMLParser):
    """Rows of each table (by id) as {data-* key: [cell texts]}, every img/link attribute, the note ids."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables: dict[str, dict[str, list[str]]] = {}
        self.imgs: list[dict[str, str]] = []
        self.links: list[str] = []
        self.ids: set[str] = set()
        self.text: list[str] = []
        self._table = self._row = None
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        for name in ("src", "href"):
            if name in a:
                self.links.append(a[name])
        if tag == "img":
            self.imgs.append(a)
        elif tag == "table":
            self._table = self.tables.setdefault(a.get("id", ""), {})
        elif tag == "tr" and self._table is not None:
            key = a.get("data-method") or a.get("data-video")
            self._row = self._table.setdefault(key, []) if key else None
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, make_fused_runs):
    root = tmp_path_factory.mktemp("report")
    return root, make_fused_runs(root, SEED)


def _png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(path.read_bytes())).convert("RGB"))


def test_page_holds_eval_numbers_as_written_and_one_overlay_per_selected_video(runs, tmp_path):
    root, models = runs
    result = build_report(ReportConfig(str(root / "run"), out=str(tmp_path / "rep")))
    out = tmp_path / "rep"
    page = Page((out / "index.html").read_text())
    run = open_store(root / "run")
    table2 = run.read_json("eval/table2.json")["table"]
    methods = [*models, "bbox-average", "bbox-max", "pgmr-fused", "pgmr"]
    rows = page.tables["table2"]
    assert list(rows) == methods
    for method in methods:
        header, values = run.read_text(f"eval/{method}/global_results-test.csv").strip().split("\n")
        cells = rows[method]
        # % from table2.json exactly as stored, then every CSV cell exactly as the evaluator wrote it
        assert cells[1:4] == [str(table2[method][k]) for k in ("J&F", "J", "F")]
        assert cells[4:11] == values.split(",") and len(header.split(",")) == 7
    # per-video J&F: results.json's numbers, one row per video, most disputed (largest model spread) first
    per_video = {m: run.read_json(f"eval/{m}/results.json")["videos"] for m in methods}
    videos = page.tables["videos"]
    assert set(videos) == set(per_video["pgmr"]) and len(videos) == 5
    for video, cells in videos.items():
        assert cells[1 : 1 + len(methods)] == [f"{100 * per_video[m][video]['scores']['J&F']:.1f}" for m in methods]
    spreads = {
        v: max(100 * per_video[m][v]["scores"]["J&F"] for m in models)
        - min(100 * per_video[m][v]["scores"]["J&F"] for m in models)
        for v in videos
    }
    assert list(videos) == sorted(spreads, key=lambda v: -spreads[v])
    worst = min(per_video["pgmr"], key=lambda v: per_video["pgmr"][v]["scores"]["J&F"])
    assert worst in result.selected and max(spreads, key=spreads.get) in result.selected
    assert 2 <= len(result.selected) <= 4
    # one overlay strip per selected video: title + frame + ground truth + 4 models + PGMR rows, 4 frames
    overlays = [i["src"] for i in page.imgs if i.get("class") == "overlay"]
    assert overlays == [f"img/{v}-overlay.png" for v in result.selected]
    for src in overlays:
        strip = _png(out / src)
        assert strip.shape[0] == TITLE_HEIGHT + 7 * (64 + 2)
        assert (strip[TITLE_HEIGHT:, 110:] != 255).any(axis=2).mean() > 0.8  # cells are drawn, not blank
    assert len([i for i in page.imgs if i.get("class") == "preview"]) == len(result.selected)
    gif = Image.open(out / f"img/{result.selected[0]}-pgmr.gif")
    assert gif.n_frames >= 8
    # offline: every link is a relative file of the report; nothing missing on a complete run
    assert page.links and all(not link.startswith(("http:", "https:", "//", "data:")) for link in page.links)
    assert all((out / link).is_file() for link in page.links)
    assert "missing" not in page.ids and "no-gt" not in page.ids and result.missing == ()
    text = "".join(page.text)
    assert "seed" in text and f"{SEED} (synthetic data, meta.json)" in text


def test_without_ground_truth_shows_agreement_and_says_so(runs, tmp_path):
    root, models = runs
    result = build_report(
        ReportConfig(str(root / "nogt"), out=str(tmp_path / "rep"), data_root=str(root / "data" / "test"))
    )
    page = Page((tmp_path / "rep" / "index.html").read_text())
    assert "no-gt" in page.ids and "agreement with the PGMR pseudo-label" in "".join(page.text)
    assert any("eval/: no J&F results" in m for m in result.missing)
    rec = open_store(root / "nogt").read_json("recommend.json")["videos"]
    agree = page.tables["table2"]
    for m in models:
        mean = np.mean([100 * rec[v]["agreement"][m] for v in rec])
        assert agree[m][1] == f"{mean:.1f}" and agree[m][2] == str(sum(e["choice"] == m for e in rec.values()))
    assert agree["pgmr-fused"][1:] == ["reference", str(sum(e["choice"] == "pgmr-fused" for e in rec.values()))]
    for video, cells in page.tables["videos"].items():
        assert cells[1 : 1 + len(models)] == [f"{100 * rec[video]['agreement'][m]:.1f}" for m in models]
        assert cells[-2] == rec[video]["choice"]
    for video in result.selected:  # no ground-truth row: title + frame + 4 models + PGMR
        assert _png(tmp_path / "rep" / f"img/{video}-overlay.png").shape[0] == TITLE_HEIGHT + 6 * (64 + 2)
        assert (tmp_path / "rep" / f"img/{video}-frames.png").is_file()


def test_bad_input_one_line_error_or_a_page_that_names_what_is_missing(runs, tmp_path):
    from stseg_cli.main import cli

    root, models = runs
    empty = tmp_path / "empty"
    (empty / "pred").mkdir(parents=True)
    with pytest.raises(MissingArtifactError, match=r"empty: no eval/<method>/results.json and no recommend.json"):
        build_report(ReportConfig(str(empty), out=str(tmp_path / "x")))
    res = CliRunner().invoke(cli, ["report", str(empty), "--out", str(tmp_path / "x")])
    assert res.exit_code == 3 and res.output.count("\n") == 1 and "nothing to report" in res.output
    with pytest.raises(BadInputError, match="--videos: the run has no video"):
        build_report(ReportConfig(str(root / "run"), out=str(tmp_path / "x"), videos=("nope",)))
    # pred/ lacking a model that eval/ scores: the page says so, the strip has no row for it
    partial = tmp_path / "partial"
    shutil.copytree(root / "run", partial)
    shutil.rmtree(partial / "pred" / models[-1])
    video = open_store(partial).read_json("recommend.json")["videos"]
    first = sorted(video)[0]
    res = CliRunner().invoke(cli, ["report", str(partial), "--out", str(tmp_path / "p"), "--videos", first])
    assert res.exit_code == 0, res.output
    assert f"missing: pred/{models[-1]}/: eval/ scores model {models[-1]}" in res.output
    page = Page((tmp_path / "p" / "index.html").read_text())
    assert "missing" in page.ids and f"pred/{models[-1]}/" in "".join(page.text)
    assert _png(tmp_path / "p" / f"img/{first}-overlay.png").shape[0] == TITLE_HEIGHT + 6 * (64 + 2)
    # eval/ without eval/pgmr/: the PGMR row is not dropped silently
    shutil.rmtree(partial / "eval" / "pgmr")
    res = CliRunner().invoke(cli, ["report", str(partial), "--out", str(tmp_path / "q"), "--videos", first])
    assert res.exit_code == 0, res.output
    assert (
        "missing: eval/pgmr/: no J&F of the PGMR output — Table 2 has no PGMR row (score fused/ with "
        "`stseg eval`, or fuse with --gt)"
    ) in res.output


def test_report_written_next_to_a_run_in_s3(runs, s3_bucket):
    root, _models = runs
    run = open_store(f"s3://{s3_bucket}/runs/r1")
    run.upload_dir(root / "run", "", workers=4)
    result = build_report(ReportConfig(run.root, data_root=str(root / "data" / "test"), per_kind=1))
    assert result.index == run.uri("report/index.html")
    page = Page(run.read_text("report/index.html"))
    assert page.links and all(run.exists(f"report/{link}") for link in page.links)
    assert sorted(k for k in run.list("report")) == sorted(f"report/{k}" for k in result.files)
    strip = [i["src"] for i in page.imgs if i.get("class") == "overlay"]
    assert len(strip) == len(result.selected) >= 1
    assert Image.open(io.BytesIO(run.read_bytes(f"report/{strip[0]}"))).size[1] == TITLE_HEIGHT + 7 * (64 + 2)
